"""Unique names for OS objects made by tests, so parallel runs never collide."""

from __future__ import annotations

import itertools
import os
import secrets

__all__ = ["NAME_PREFIX", "unique_name"]

#: Every OS object the test suite creates starts with this, so leak checks can find them.
NAME_PREFIX = "ikt"
_counter = itertools.count()


def unique_name(tag: str = "t") -> str:
    """A fresh name like ``ikt-t-12345-7-1a2b3c`` (process id, counter, random)."""
    return f"{NAME_PREFIX}-{tag}-{os.getpid()}-{next(_counter)}-{secrets.token_hex(3)}"
