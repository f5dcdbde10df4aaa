"""What a contender is: something that can carry byte messages from one process to another.

A :class:`Contender` is a recipe. For each round the parent calls ``make_link``
to create the OS objects (a pipe, a queue, a shared-memory segment, a listening
socket), then forks the producer and consumer; each child calls
:meth:`Link.endpoint` to get its end. The parent calls :meth:`Link.cleanup`
afterwards whatever happened, so every named object is removed even when a child
crashed or was killed.

Children are made with ``fork`` (see :mod:`ipckit._bench.runner`), so a link may
hold anything, such as queues, descriptors or listeners, without pickling.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from typing_extensions import Buffer

__all__ = [
    "PRODUCER",
    "CONSUMER",
    "Contender",
    "Endpoint",
    "Link",
    "LinkSpec",
    "Role",
    "TempDir",
    "Unit",
]

Role = Literal["producer", "consumer"]
PRODUCER: Role = "producer"
CONSUMER: Role = "consumer"


class Endpoint(ABC):
    """One process's end of a link: sends and receives whole byte messages.

    In a throughput run the producer only sends and the consumer only receives;
    in a ping-pong run both do. ``batch`` above 1 makes the harness use
    :meth:`send_many`/:meth:`recv_many` for throughput.
    """

    batch: int = 1

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Send one message, blocking while the link is full."""

    @abstractmethod
    def recv(self) -> Buffer:
        """Receive one whole message, blocking while the link is empty."""

    def send_many(self, items: Sequence[bytes]) -> None:
        """Send several messages in order (default: one at a time)."""
        for item in items:
            self.send(item)

    def recv_many(self) -> Sequence[Buffer]:
        """Receive at least one message, and up to ``batch`` (default: exactly one)."""
        return [self.recv()]

    def close(self) -> None:  # noqa: B027 - optional hook, most endpoints have nothing to do
        """Release this process's handles (the parent removes named objects)."""


@dataclass(frozen=True)
class Unit:
    """The most payload a transport carries in one native unit; a bigger message goes out of band.

    ``inline_max`` is in payload bytes (the unit minus the frame header);
    ``what`` names the unit for a reader ("one 4096-byte FIFO packet").
    """

    inline_max: int
    what: str


class Link(ABC):
    """The OS objects of one round, made in the parent before the children fork."""

    def unit(self) -> Unit | None:
        """The transport's native unit, or ``None`` for a byte stream (no unit to cross)."""
        return None

    @abstractmethod
    def endpoint(self, role: Role, index: int) -> Endpoint:
        """Open the end for ``role`` (``index`` numbers producers from 0); runs in the child."""

    @abstractmethod
    def cleanup(self) -> None:
        """Close the parent's handles and remove every named object; must not raise."""


@dataclass(frozen=True)
class LinkSpec:
    """What a round needs from a link.

    ``duplex``: messages also flow back (ping-pong). ``max_size``: the largest
    message. ``producers``: how many producer processes will call ``endpoint``.
    """

    duplex: bool
    max_size: int
    producers: int = 1


@dataclass(frozen=True)
class Contender:
    """A named way to move bytes between processes, measured by ``ipckit bench``.

    ``probe`` returns ``None`` when the contender can run here, or why not (the
    row then shows "skipped"); ``supports`` returns ``None`` or why a given
    :class:`LinkSpec` does not apply (the cell shows "n/a"). ``group`` is
    ``"raw"``, ``"peer"`` or ``"ipckit"``.
    """

    name: str
    description: str
    group: str
    make_link: Callable[[LinkSpec], Link]
    probe: Callable[[], str | None] = field(default=lambda: None)
    supports: Callable[[LinkSpec], str | None] = field(default=lambda spec: None)
    many_producers: bool = False


class TempDir:
    """A private temporary directory for socket files and FIFOs, removed by :meth:`remove`."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="ipckit-bench-")
        os.chmod(self.path, 0o700)

    def join(self, name: str) -> str:
        """A path inside the directory."""
        return os.path.join(self.path, name)

    def remove(self) -> None:
        """Remove the directory and everything in it; idempotent."""
        shutil.rmtree(self.path, ignore_errors=True)
