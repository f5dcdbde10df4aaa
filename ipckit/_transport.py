"""The internal contract between :class:`~ipckit.Channel` and a backend.

A transport moves frames and knows nothing about objects. ``Channel`` guarantees
that at most one thread of a handle sends and at most one receives at a time, so
a transport only has to be safe between processes and between its one sender and
its one receiver (and against :meth:`Transport.interrupt` from any thread).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from typing_extensions import Buffer

from ipckit._deadline import Deadline
from ipckit._framing import Frame
from ipckit._url import Endpoint, OptionSpec
from ipckit.errors import Full

__all__ = [
    "ConnectionBackend",
    "Capabilities",
    "ListenerTransport",
    "NamedBackend",
    "OutFrame",
    "Ready",
    "SendParked",
    "Transport",
    "TransportStats",
]


class OutFrame(NamedTuple):
    """A frame to send: serializer id, flags, payload and its length in bytes."""

    serializer_id: int
    flags: int
    payload: Buffer
    nbytes: int


@dataclass(frozen=True)
class Capabilities:
    """What a transport can do, for the Channel, the tests and the docs."""

    #: Largest frame carried in one native unit (None: a byte stream, no unit).
    native_message_size: int | None
    #: Several handles may send at once (a queue), not only one peer.
    many_producers: bool
    #: Several handles may receive at once, each message going to one of them.
    many_consumers: bool
    #: ``fileno()`` returns a descriptor that polls readable when a message is ready.
    has_fileno: bool
    #: Addressed by a name in the OS (``open``), rather than a connection.
    named: bool


@dataclass(frozen=True)
class TransportStats:
    """Channel-wide figures a transport knows (``None`` where it cannot know)."""

    depth: int | None = None
    capacity: int | None = None
    high_water: int | None = None
    extra: Mapping[str, int | float | str] = field(default_factory=dict)


class SendParked(Full):
    """A send stopped in the middle of a frame because the kernel would block.

    Raised only by a transport whose ``park_mid_frame`` is true (``ipckit.aio``
    sets it on the transports it owns): the frame's first bytes are out, so the
    transport keeps the rest and stays claimed for sending until
    :meth:`Transport.resume_send` finishes it. ``sent`` counts the frames before
    it that went out whole and ``nbytes`` the parked frame's payload size. Never
    reaches users.
    """

    def __init__(self, message: str, *, sent: int, nbytes: int) -> None:
        super().__init__(message, sent=sent)
        self.nbytes = nbytes


class Ready(Protocol):
    """One wait of an event loop on a transport: the readiness hook of ``ipckit.aio``.

    The loop watches ``fd`` (for writing when ``writable``), after :meth:`park`
    said the wait is needed, and tries the call again (non-blocking) when the
    descriptor fires, after ``recheck`` seconds at the latest when that is not
    ``None`` (a wake-up that no descriptor carries: a peer that died, a shutdown
    in another process while a queue was full).
    """

    fd: int
    writable: bool
    recheck: float | None

    def park(self) -> bool:
        """Count this wait where peers look before they signal; False: ready now, do not wait."""
        ...

    def unpark(self) -> None:
        """End the wait (woken, timed out or cancelled): drain the descriptor, uncount."""
        ...

    def pass_on(self) -> None:
        """After a call that had parked succeeded: wake another parked waiter if still ready."""
        ...


class Transport(Protocol):
    """Moves frames for one channel handle."""

    capabilities: Capabilities
    url: str
    #: Raise :class:`SendParked` instead of blocking mid-frame (``ipckit.aio`` sets it;
    #: only byte streams ever stop mid-frame).
    park_mid_frame: bool

    def send_frames(self, frames: Sequence[OutFrame], deadline: Deadline) -> None:
        """Send every frame in order, or raise ``Full(sent=k)`` when time runs out.

        Raises ``ChannelClosed`` when the channel was shut down or the peer is gone.
        """
        ...

    def recv_frames(self, max_items: int, deadline: Deadline) -> list[Frame]:
        """Return 1..max_items frames, raise ``Empty`` on timeout, ``ChannelClosed`` at end.

        Frames already committed by senders are always returned before ``ChannelClosed``.
        """
        ...

    def poll(self, deadline: Deadline) -> bool:
        """True when a frame (or the end of the stream) is ready to receive."""
        ...

    def shutdown(self) -> None:
        """Mark the end of the stream for every handle and wake all waiters."""
        ...

    def interrupt(self) -> None:
        """Make calls blocked in this handle return soon with ``HandleClosed``."""
        ...

    def close(self) -> None:
        """Release this handle's resources; called once, with no call in progress."""
        ...

    def unlink(self) -> None:
        """Remove the named OS objects; idempotent; no-op for unnamed transports."""
        ...

    def stats(self) -> TransportStats:
        """Channel-wide figures."""
        ...

    def fileno(self) -> int:
        """A descriptor that polls readable when a frame is ready."""
        ...

    def reducer(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """How to rebuild this transport in another process (for pickling)."""
        ...

    def readiness(self, sending: bool) -> Ready:
        """How an event loop waits until a send (``sending``) or a receive can go on."""
        ...

    def resume_send(self, give_up: bool) -> bool:
        """Write more of a frame a :class:`SendParked` left; True once it is out whole.

        ``give_up`` abandons it instead, without raising: the sending direction ends,
        and later sends raise ``ChannelClosed``. With nothing parked: True. Transports
        that never park always return True.
        """
        ...


class ListenerTransport(Protocol):
    """Accepts connections and turns each into a :class:`Transport`."""

    url: str

    def accept(self, deadline: Deadline) -> Transport:
        """Wait for a client and finish its handshake; raise ``Timeout`` on time-out."""
        ...

    def fileno(self) -> int:
        """The listening descriptor (readable when a client is waiting)."""
        ...

    def close(self) -> None:
        """Stop listening and remove the address (socket file)."""
        ...


class NamedBackend(Protocol):
    """A transport family whose channels have names: ``ipckit.open()`` (shm, mq, fifo)."""

    scheme: str
    #: Options this backend accepts, beyond ``serializer`` and ``max_message_size``.
    options: Mapping[str, OptionSpec]

    def open(self, endpoint: Endpoint, create: bool, options: Mapping[str, Any]) -> Transport:
        """Create (``create=True``) or attach to a named channel."""
        ...


class ConnectionBackend(Protocol):
    """A transport family of connections: ``ipckit.listen()`` and ``ipckit.connect()``."""

    scheme: str
    #: Options this backend accepts, beyond ``serializer`` and ``max_message_size``.
    options: Mapping[str, OptionSpec]

    def listen(self, endpoint: Endpoint, options: Mapping[str, Any]) -> ListenerTransport:
        """Bind and listen at ``endpoint``."""
        ...

    def connect(
        self, endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline
    ) -> Transport:
        """Connect to a listener at ``endpoint``."""
        ...
