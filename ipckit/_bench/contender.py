"""What a contender is: something that can carry byte messages from one process to another.

A :class:`Contender` is a recipe. For each round the parent calls ``make_link``
to create the OS objects (a pipe, a queue, a shared-memory segment, a listening
socket), then forks the producer and consumer; each child calls
:meth:`Link.endpoint` to get its end. The parent calls :meth:`Link.cleanup`
afterwards whatever happened, so every named object is removed even when a child
crashed or was killed.

Children are made with ``fork`` (see :mod:`ipckit._bench.runner`), so a link may
hold anything, such as queues, descriptors or listeners, without pickling.

A link carries byte messages, or Python objects when :attr:`LinkSpec.objects` is
set (the ``small-dict`` workload): then the endpoints' ``send_obj``/``recv_obj``
go through the contender's own serializer (msgpack for ipckit, pickle for the
peers), which is part of what is measured.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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
    :meth:`send_many`/:meth:`recv_many` (or the ``_obj`` pair) for throughput.
    ``implementation`` is ``"native"`` or ``"pure"`` for an ipckit endpoint (which
    code path its handles opened with), ``None`` for everything else.
    """

    batch: int = 1
    implementation: str | None = None

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

    def send_obj(self, obj: Any) -> None:
        """Send one Python object through the contender's serializer (objects links only)."""
        raise NotImplementedError(f"{type(self).__name__} carries bytes only")

    def recv_obj(self) -> Any:
        """Receive one Python object (objects links only)."""
        raise NotImplementedError(f"{type(self).__name__} carries bytes only")

    def send_obj_many(self, items: Sequence[Any]) -> None:
        """Send several objects in order (default: one at a time)."""
        for item in items:
            self.send_obj(item)

    def recv_obj_many(self) -> Sequence[Any]:
        """Receive at least one object, and up to ``batch`` (default: exactly one)."""
        return [self.recv_obj()]

    def flush(self) -> None:  # noqa: B027 - optional hook, most endpoints have nothing to do
        """Return once everything sent is in the link (a queue's feeder thread has written it)."""

    def verify(self) -> str | None:
        """After the round: what this end found wrong with its own work, or ``None``.

        For contenders that check in place (``raw-memcpy`` compares its copy).
        """
        return None

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
    message (for objects: the largest encoded one). ``producers`` and
    ``consumers``: how many processes will call ``endpoint`` in each role (a
    round with several consumers also has one more producer-side process, the
    closer, with ``index == producers``, which ends the stream). ``objects``: the
    endpoints carry Python objects (``send_obj``/``recv_obj``), not bytes.
    """

    duplex: bool
    max_size: int
    producers: int = 1
    consumers: int = 1
    objects: bool = False


@dataclass(frozen=True)
class Contender:
    """A named way to move bytes between processes, measured by ``ipckit bench``.

    ``probe`` returns ``None`` when the contender can run here, or why not (the
    row then shows "skipped"); ``supports`` returns ``None`` or why a given
    :class:`LinkSpec` does not apply (the cell shows "n/a"). ``group`` is
    ``"raw"``, ``"peer"`` or ``"ipckit"``.

    ``many_producers``: several processes may send on one link; ``many_consumers``:
    several may receive, each message going to one of them. ``objects``: it can
    carry Python objects (:attr:`LinkSpec.objects`). ``batch``: messages per call
    on the throughput path (above 1 for the batch variants, whose ratio is taken
    against the workload's batch baseline when it has one). ``solo``: a floor
    measured in one process (``raw-memcpy``): the round runs the producer alone,
    its endpoint does the work in place and checks it in :meth:`Endpoint.verify`,
    and the time is the producer's own.
    """

    name: str
    description: str
    group: str
    make_link: Callable[[LinkSpec], Link]
    probe: Callable[[], str | None] = field(default=lambda: None)
    supports: Callable[[LinkSpec], str | None] = field(default=lambda spec: None)
    many_producers: bool = False
    many_consumers: bool = False
    objects: bool = False
    batch: int = 1
    solo: bool = False


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
