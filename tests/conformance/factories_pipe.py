"""Pair factories for ipckit.pipe()."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ipckit import Channel
from ipckit.backends.pipe import make_pipe_pair
from ipckit.channel import DEFAULT_MAX_MESSAGE_SIZE
from ipckit.testing import PairFactory


def pipe_pair(
    a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
) -> tuple[Channel, Channel]:
    a, b = dict(a or {}), dict(b or {})
    limit = max(
        a.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE),
        b.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE),
    )
    left, right = make_pipe_pair(duplex=True, max_message_size=limit)
    return Channel(left, **a), Channel(right, **b)


FACTORIES: dict[str, PairFactory] = {"pipe": pipe_pair}
