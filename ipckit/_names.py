"""Limits on the names of the OS objects a channel creates, checked once at the API edge.

A channel is several objects: the queue or segment itself, a state file, one-off
out-of-band blocks made later for big messages. Each name must fit the kernel's
limits, or the channel would open and then fail on its first big message. So a
backend lists every name it will ever derive from the user's name (with ``{}``
where the user's name goes, and the widest form of any random part) and calls
:func:`check_names` (or :func:`check_path` for a file path) before creating
anything.

Limits (Linux): a directory entry (in ``/dev/shm``, the mqueue filesystem, a FIFO's
directory) is at most ``NAME_MAX`` = 255 bytes; a path at most ``PATH_MAX`` = 4096
bytes including its terminating NUL. Lengths count bytes of the filesystem encoding
(UTF-8), not characters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ipckit.errors import ConfigurationError

__all__ = ["NAME_MAX", "PATH_MAX", "check_names", "check_path", "encoded_length"]

NAME_MAX = 255
PATH_MAX = 4096


def encoded_length(text: str) -> int:
    """Bytes ``text`` takes in a file name (the filesystem encoding, surrogates escaped)."""
    return len(os.fsencode(text))


def _check_characters(what: str, text: str, kind: str) -> None:
    if "\x00" in text:
        raise ConfigurationError(
            f"{what}: the {kind} {text!r} contains a NUL byte, which no OS name may hold"
        )
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{what}: the {kind} {text!r} cannot be encoded as a file name"
        ) from None


def check_names(
    what: str,
    name: str,
    derived: Sequence[tuple[str, str]],
    *,
    limit: int = NAME_MAX,
    limit_name: str = "NAME_MAX",
) -> None:
    """Check a user's name and every object name derived from it.

    ``derived`` lists ``(description, template)`` pairs; each template holds ``{}``
    once where the name goes, e.g. ``("its state file", "ikmq.{}.ikstate")``.
    Raises :class:`ConfigurationError` naming the longest allowed name and the
    limit when any derived name (in bytes) exceeds ``limit``; also for an empty
    name, a ``/`` or a NUL byte.
    """
    if not name:
        raise ConfigurationError(f"{what}: the name is empty")
    _check_characters(what, name, "name")
    if "/" in name:
        raise ConfigurationError(f"{what}: the name {name!r} contains '/'; use a plain name")
    if name in (".", ".."):
        raise ConfigurationError(f"{what}: {name!r} is not a usable name")
    size = encoded_length(name)
    for description, template in derived:
        overhead = encoded_length(template.replace("{}", ""))
        if size + overhead > limit:
            longest = limit - max(encoded_length(t.replace("{}", "")) for _, t in derived)
            raise ConfigurationError(
                f"{what}: the name is {size} bytes, too long: {description} would be named "
                f"{template.replace('{}', '<name>')} ({size + overhead} bytes), over "
                f"{limit_name}={limit}, the longest name the kernel allows; use a name of at "
                f"most {longest} bytes"
            )


def check_path(what: str, path: str, suffixes: Sequence[str] = ("",)) -> None:
    """Check a file path and the sibling files ``path + suffix`` against the limits.

    Every sibling's basename must fit ``NAME_MAX`` and its whole path ``PATH_MAX``
    (counting the NUL); the path must name a file (not end in ``/``).
    """
    if not path:
        raise ConfigurationError(f"{what}: the path is empty")
    _check_characters(what, path, "path")
    base = os.path.basename(path)
    if not base or base in (".", ".."):
        raise ConfigurationError(f"{what}: the path {path!r} does not name a file")
    base_size = encoded_length(base)
    size = encoded_length(path)
    widest = max(encoded_length(s) for s in suffixes)
    if base_size + widest > NAME_MAX:
        raise ConfigurationError(
            f"{what}: the file name {base[:40]!r}... is {base_size} bytes, too long: with the "
            f"suffix {max(suffixes, key=len)!r} it would exceed NAME_MAX={NAME_MAX}, the "
            f"longest file name the kernel allows; use a file name of at most "
            f"{NAME_MAX - widest} bytes"
        )
    if size + widest + 1 > PATH_MAX:
        raise ConfigurationError(
            f"{what}: the path is {size} bytes, too long: with the suffix "
            f"{max(suffixes, key=len)!r} it would exceed PATH_MAX={PATH_MAX} (counting the "
            f"final NUL); use a path of at most {PATH_MAX - 1 - widest} bytes"
        )
