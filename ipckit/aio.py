"""asyncio channels: the same transports as :class:`ipckit.Channel`, awaited.

``await ch.recv()`` parks the calling task, not a thread: the event loop watches
the transport's descriptor (a pipe, socket, FIFO or POSIX queue descriptor, and
for ``shm://`` a FIFO beside the segment that peers ring only while a loop is
parked on it) and the task tries again, without blocking, when it turns ready.
Every attempt is one non-blocking call of the sync :class:`~ipckit.Channel`, so
framing, errors and crash behaviour are the sync API's own.

- **Cancellation.** A task is only ever cancelled while it waits for readiness,
  never inside an attempt: a cancelled receive has taken nothing (the next
  receive gets the message); a cancelled send sent nothing, except a frame that
  had already started on a byte stream (a message bigger than the kernel buffer),
  which is finished first, because half a frame would end the stream. How many
  messages went out whole is :func:`sent_before` of the ``CancelledError`` (or of
  the ``TimeoutError`` that ``asyncio.timeout()`` raises from it).
- **Timeouts.** ``timeout=`` means what it means in the sync API (``None`` waits
  for ever, ``0`` never waits, raising :class:`~ipckit.Empty`/:class:`~ipckit.Full`),
  and ``asyncio.timeout()`` works around any call.
- **One task at a time per direction.** Concurrent sends on one handle queue up
  in order (so do receives); each waits within its own ``timeout``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from typing_extensions import Buffer

from ipckit import channel as _sync
from ipckit._deadline import FOREVER, NOW, Deadline
from ipckit._transport import Capabilities, Ready, SendParked, Transport
from ipckit.backends._stream import MID_FRAME_GRACE
from ipckit.channel import Channel, ChannelStats, Listener
from ipckit.errors import (
    ChannelClosed,
    ConfigurationError,
    Empty,
    Full,
    HandleClosed,
    IPCError,
    Timeout,
)
from ipckit.serializers import Serializer

__all__ = [
    "AsyncChannel",
    "AsyncListener",
    "connect",
    "listen",
    "open",
    "pipe",
    "sent_before",
]

_T = TypeVar("_T")
#: Sync channels an AsyncChannel owns (each may have only one).
_ADOPTED: weakref.WeakSet[Channel] = weakref.WeakSet()
#: The attribute a cancelled send's CancelledError carries (see sent_before).
_SENT_ATTR = "_ipckit_sent"


def sent_before(exc: BaseException) -> int:
    """How many messages of a send that raised ``exc`` went out whole.

    ``exc`` is what the send raised: :class:`~ipckit.Full` (its ``sent``), the
    ``CancelledError`` of a cancelled send, or the ``TimeoutError`` that
    ``asyncio.timeout()`` raises from one. 0 for a single message that was not
    sent, 1 for one that was; for ``send_many``, how many of the batch, in order.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, Full):
            return cur.sent
        sent = getattr(cur, _SENT_ATTR, None)
        if isinstance(sent, int):
            return sent
        cur = cur.__cause__ or cur.__context__
    return 0


def _deadline(timeout: float | None) -> Deadline:
    return FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Watches:
    """A handle's loop registrations: one per (descriptor, direction), shared by its waiters.

    asyncio keeps one reader (and one writer) callback per descriptor, so two tasks
    of one handle waiting on the same descriptor (a ``poll`` beside a ``recv``, two
    ``accept`` calls) must share a registration, or the second would silently
    replace the first and leave it waiting for ever.
    """

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        #: (fd, writable) -> (the loop it is registered with, the futures waiting on it)
        self._keys: dict[tuple[int, bool], tuple[asyncio.AbstractEventLoop, set[Any]]] = {}

    async def wait(self, fd: int, writable: bool, timeout: float | None) -> None:
        """Until ``fd`` is ready, ``timeout`` passes or :meth:`close`."""
        loop = asyncio.get_running_loop()
        key = (fd, writable)
        entry = self._keys.get(key)
        if entry is None or entry[0] is not loop:
            if entry is not None:
                self._drop(key)  # a loop that ended without the wait's clean-up
            # Registered first, stored second: an entry never exists unregistered.
            if writable:
                loop.add_writer(fd, self._fire, key)
            else:
                loop.add_reader(fd, self._fire, key)
            entry = (loop, set())
            self._keys[key] = entry
        fut: asyncio.Future[None] = loop.create_future()
        waiters = entry[1]
        waiters.add(fut)
        timer = None if timeout is None else loop.call_later(timeout, _wake, fut)
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            waiters.discard(fut)
            if not waiters and self._keys.get(key) is entry:
                self._drop(key)

    def _fire(self, key: tuple[int, bool]) -> None:
        entry = self._keys.get(key)
        if entry is not None:
            for fut in entry[1]:
                _wake(fut)

    def _drop(self, key: tuple[int, bool]) -> None:
        loop, waiters = self._keys.pop(key)
        fd, writable = key
        if not loop.is_closed():
            if writable:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)
        for fut in waiters:
            _wake(fut)

    def close(self) -> None:
        """Unregister everything now (the descriptors are about to close) and wake the waiters."""
        for key in list(self._keys):
            self._drop(key)


class _Turns:
    """First come, first served turns of one direction of a handle.

    A turn is handed straight to the next waiting task on release, never left free
    while one waits, so a task that finds it free (``try_take``, no await) cannot
    overtake a woken task that has not run yet, and a send that parks mid-frame
    holds its turn until the frame is out.
    """

    __slots__ = ("_busy", "_queue")

    def __init__(self) -> None:
        self._busy = False
        self._queue: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        """Take the turn if it is free now."""
        if self._busy:
            return False
        self._busy = True
        return True

    async def take(self, deadline: Deadline, error: Timeout) -> None:
        """Wait for the turn within ``deadline``; ``error`` when it does not come in time."""
        if self.try_take():
            return
        if deadline.nonblocking or deadline.expired():
            raise error
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        try:
            async with asyncio.timeout(deadline.remaining()):
                await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled():
                self.release()  # handed the turn just as we left: pass it on
            else:
                fut.cancel()
            if isinstance(exc, TimeoutError):
                raise error from None
            raise

    def release(self) -> None:
        """Hand the turn to the next waiting task, or free it."""
        queue = self._queue
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._busy = False


class AsyncChannel:
    """A channel handle whose calls are coroutines; see :mod:`ipckit.aio`.

    Make one with :func:`open`, :func:`pipe`, :meth:`AsyncListener.accept` or
    :func:`connect`, or adopt a sync :class:`~ipckit.Channel` (a handle passed to
    this process, say) with ``AsyncChannel(channel)``: the async handle then owns
    it, and the channel must not be used directly any more. Close it with
    :meth:`aclose` or ``async with``.
    """

    def __init__(self, channel: Channel) -> None:
        if not isinstance(channel, Channel):
            raise TypeError(f"AsyncChannel wraps an ipckit.Channel, not {type(channel).__name__}")
        if channel.closed:
            raise HandleClosed(f"this handle on {channel.url} is closed; open a new one")
        if channel in _ADOPTED:
            raise ConfigurationError(
                f"this handle on {channel.url} already belongs to an AsyncChannel; use that "
                "one (two would replace each other's event-loop registrations)"
            )
        _ADOPTED.add(channel)
        self._ch = channel
        self._t: Transport = channel._transport
        self._send_turns = _Turns()
        self._recv_turns = _Turns()
        #: Rounds in a row that found the transport ready but the attempt still failed
        #: (a lock another process holds): each waits a little longer, up to a recheck.
        self._hot = 0
        self._watches = _Watches()
        #: Waits counted where peers look (shm://), to uncount at aclose().
        self._parked: set[Ready] = set()

    # -- properties -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint this handle is connected to."""
        return self._ch.url

    @property
    def capabilities(self) -> Capabilities:
        """What the transport under this handle can do."""
        return self._ch.capabilities

    @property
    def serializer(self) -> Serializer:
        """The serializer this handle encodes and decodes with."""
        return self._ch.serializer

    @property
    def max_message_size(self) -> int:
        """The largest message, in bytes, this handle sends or accepts."""
        return self._ch.max_message_size

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._ch.closed

    def stats(self) -> ChannelStats:
        """A snapshot of this handle's counters and the channel-wide figures."""
        return self._ch.stats()

    def unlink(self) -> None:
        """Remove the channel's named OS objects; see :meth:`ipckit.Channel.unlink`."""
        self._ch.unlink()

    def fileno(self) -> int:
        """The sync handle's descriptor (readable when a message is ready), where supported."""
        return self._ch.fileno()

    # -- waiting ----------------------------------------------------------------------

    async def _wait(self, sending: bool, deadline: Deadline) -> Ready:
        """Wait until the transport may go on (or one recheck, or the deadline)."""
        ready = self._t.readiness(sending)
        # Known before park() can count it, so aclose() can uncount it whatever happens.
        self._parked.add(ready)
        try:
            if not ready.park():
                # Ready already, yet the attempt failed (a lock held elsewhere): look
                # again at once, then back off so the loop is not spun for nothing.
                self._hot += 1
                await asyncio.sleep(0 if self._hot < 4 else min(0.05, 1e-4 * 2**self._hot))
                return ready
            self._hot = 0
            left = deadline.remaining()
            step = ready.recheck if left is None else min(left, ready.recheck or left)
            await self._watches.wait(ready.fd, ready.writable, step)
        finally:
            self._parked.discard(ready)
            ready.unpark()
        return ready

    def _wake_all(self) -> None:
        self._watches.close()

    # -- sending ----------------------------------------------------------------------

    async def send(self, obj: Any, *, timeout: float | None = None) -> None:
        """Send one object, waiting while it is full; raises as :meth:`ipckit.Channel.send`.

        On ``Full`` or a cancel, :func:`sent_before` says whether it went out (0 or 1).
        """
        ch = self._ch
        await self._sending(lambda _: ch.send(obj, timeout=0), 1, _deadline(timeout))

    async def send_bytes(self, data: Buffer, *, timeout: float | None = None) -> None:
        """Send raw bytes, bypassing the serializer."""
        ch = self._ch
        await self._sending(lambda _: ch.send_bytes(data, timeout=0), 1, _deadline(timeout))

    async def send_many(self, objs: Iterable[Any], *, timeout: float | None = None) -> None:
        """Send several objects in order; on a timeout ``Full.sent`` says how many went out."""
        items = list(objs)
        if not items:
            return
        ch = self._ch
        await self._sending(
            lambda k: ch.send_many(items[k:], timeout=0), len(items), _deadline(timeout)
        )

    async def _sending(
        self, attempt: Callable[[int], None], total: int, deadline: Deadline
    ) -> None:
        turns = self._send_turns
        if not turns.try_take():
            await turns.take(
                deadline,
                Full(f"another task is still sending on {self.url}; timed out waiting", sent=0),
            )
        # A frame the kernel takes in parts waits for room in the loop, not in the call.
        # Set per call: a forked child resets it (its sync users must not see a park).
        self._t.park_mid_frame = True
        sent = 0
        try:
            while True:
                try:
                    attempt(sent)
                    return
                except SendParked as parked:
                    sent += parked.sent
                    sent += await self._finish_frame(parked, deadline, sent)
                    if sent == total:
                        return
                    continue
                except Full as exc:
                    sent += exc.sent
                    if deadline.nonblocking or deadline.expired():
                        if not deadline.nonblocking:
                            exc = Full(
                                f"{self.url} stayed full for timeout={deadline.timeout}; "
                                "receive faster, pass a larger capacity= or a longer timeout=",
                                sent=sent,
                            )
                        exc.sent = sent
                        raise exc from None
                except IPCError:
                    raise
                except BaseException:
                    # Interrupted (Ctrl-C) between parking a frame and saying so: end it
                    # as an interrupted sync send would (a no-op when nothing is parked).
                    self._t.resume_send(give_up=True)
                    raise
                try:
                    await self._wait(True, deadline)
                except asyncio.CancelledError as cancel:
                    setattr(cancel, _SENT_ATTR, sent)
                    raise
        finally:
            turns.release()

    async def _finish_frame(self, parked: SendParked, deadline: Deadline, sent: int) -> int:
        """Write the rest of a started frame, waiting in the loop; 1 once it is out.

        A cancel waits for the frame (half a frame would end the stream), for at most
        ``MID_FRAME_GRACE`` seconds more, then re-raises saying it went out. Anything
        else that stops it abandons the frame, which ends the sending direction.
        """
        left = deadline.remaining()
        finish = deadline if left is None else Deadline(left + MID_FRAME_GRACE)
        cancelled: asyncio.CancelledError | None = None
        try:
            while not self._t.resume_send(give_up=False):
                if finish.expired():
                    raise Full(
                        f"the peer on {self.url} read nothing for {MID_FRAME_GRACE:g} s in "
                        f"the middle of a message, past timeout={deadline.timeout}: the "
                        "message was abandoned and this handle's sending direction is "
                        "closed (the peer gets every whole message before it); close this "
                        "channel",
                        sent=sent,
                    )
                try:
                    await self._wait(True, finish)
                except asyncio.CancelledError as exc:
                    if cancelled is None:
                        cancelled = exc
                        if finish.forever or (finish.remaining() or 0) > MID_FRAME_GRACE:
                            finish = Deadline(MID_FRAME_GRACE)
        except BaseException:
            self._t.resume_send(give_up=True)
            if cancelled is not None:
                setattr(cancelled, _SENT_ATTR, sent)
                raise cancelled from None
            raise
        self._ch._count_sent(1, parked.nbytes)
        if cancelled is not None:
            setattr(cancelled, _SENT_ATTR, sent + 1)
            raise cancelled
        return 1

    # -- receiving --------------------------------------------------------------------

    async def recv(self, *, timeout: float | None = None) -> Any:
        """Receive one object, waiting while none is ready; raises as :meth:`ipckit.Channel.recv`.

        A cancelled or timed-out receive has taken nothing.
        """
        ch = self._ch
        return await self._receiving(lambda: ch.recv(timeout=0), _deadline(timeout))

    async def recv_bytes(self, *, timeout: float | None = None) -> bytes:
        """Receive one message as raw bytes."""
        ch = self._ch
        got: bytes = await self._receiving(lambda: ch.recv_bytes(timeout=0), _deadline(timeout))
        return got

    async def recv_many(self, max_items: int = 100, *, timeout: float | None = None) -> list[Any]:
        """Receive 1..max_items objects: what is ready, waiting only while none is."""
        ch = self._ch
        got: list[Any] = await self._receiving(
            lambda: ch.recv_many(max_items, timeout=0), _deadline(timeout)
        )
        return got

    async def _receiving(self, attempt: Callable[[], _T], deadline: Deadline) -> _T:
        turns = self._recv_turns
        if not turns.try_take():
            await turns.take(
                deadline,
                Empty(f"another task is still receiving on {self.url}; timed out waiting"),
            )
        woke: Ready | None = None
        try:
            while True:
                try:
                    got = attempt()
                except Empty:
                    if deadline.nonblocking:
                        raise
                    if deadline.expired():
                        raise Empty(
                            f"no message on {self.url} within timeout={deadline.timeout}"
                        ) from None
                else:
                    if woke is not None:
                        woke.pass_on()
                    return got
                woke = await self._wait(False, deadline)
        finally:
            turns.release()

    async def poll(self, timeout: float | None = 0.0) -> bool:
        """True when a message (or the end of the stream) is ready; waits up to ``timeout``."""
        deadline = _deadline(timeout)
        ch = self._ch
        while True:
            if ch.poll(0):
                return True
            if deadline.expired():
                return False
            await self._wait(False, deadline)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        """Receive objects until the channel is closed or shut down."""
        while True:
            try:
                yield await self.recv()
            except ChannelClosed:
                return

    # -- lifecycle --------------------------------------------------------------------

    def shutdown(self) -> None:
        """End the stream for everyone; see :meth:`ipckit.Channel.shutdown`."""
        # This handle's own waits first: no descriptor tells them, and shutdown() may close
        # the descriptor they are registered with (whose number is then free for reuse).
        self._wake_all()
        self._ch.shutdown()

    async def aclose(self) -> None:
        """Release this handle; idempotent.

        Tasks waiting on it wake and raise :class:`~ipckit.HandleClosed`.
        """
        if self._ch.closed:
            return
        try:
            # Before the descriptors close: their numbers may be reused at once.
            self._watches.close()
            for ready in list(self._parked):
                ready.unpark()
            self._t.resume_send(give_up=True)  # a frame still parked cannot be finished now
        finally:
            self._ch.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __await__(self) -> Generator[Any, None, Self]:
        # `ch = await aio.open(...)` and `ch = aio.open(...)` are the same: opening
        # never waits, and every coroutine-style call site keeps working.
        return self._self().__await__()

    async def _self(self) -> Self:
        return self

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ipckit.aio.AsyncChannel {self.url} {state}>"


class _Pair(tuple[AsyncChannel, AsyncChannel]):
    """The two ends of :func:`pipe`; awaiting it gives the pair itself."""

    def __await__(self) -> Generator[Any, None, tuple[AsyncChannel, AsyncChannel]]:
        return self._self().__await__()

    async def _self(self) -> tuple[AsyncChannel, AsyncChannel]:
        return self[0], self[1]


class AsyncListener:
    """Accepts connections as :class:`AsyncChannel` objects; see :func:`listen`."""

    def __init__(self, listener: Listener) -> None:
        self._lst = listener
        self._watches = _Watches()

    @property
    def url(self) -> str:
        """The bound address (with the real port for ``tcp://...:0``)."""
        return self._lst.url

    def fileno(self) -> int:
        """Readable while a connection whose handshake finished waits for :meth:`accept`."""
        return self._lst.fileno()

    async def accept(self, *, timeout: float | None = None) -> AsyncChannel:
        """The next client (handshake done); :class:`~ipckit.Timeout` when none comes in time."""
        deadline = _deadline(timeout)
        while True:
            try:
                return AsyncChannel(self._lst.accept(timeout=0))
            except Timeout:
                if deadline.nonblocking:
                    raise
                if deadline.expired():
                    raise Timeout(
                        f"no client completed a handshake on {self.url} within "
                        f"timeout={deadline.timeout}"
                    ) from None
            await self._watches.wait(self._lst.fileno(), False, deadline.remaining())

    async def aclose(self) -> None:
        """Stop listening and remove the address; idempotent."""
        self.close()

    def close(self) -> None:
        """Stop listening and remove the address; idempotent. Waiting accepts wake and raise."""
        self._watches.close()
        self._lst.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __await__(self) -> Generator[Any, None, Self]:
        return self._self().__await__()

    async def _self(self) -> Self:
        return self

    def __repr__(self) -> str:
        return f"<ipckit.aio.AsyncListener {self.url}>"


class _Connecting:
    """What :func:`connect` returns: await it, or ``async with`` it."""

    def __init__(self, url: str, timeout: float | None, options: dict[str, Any]) -> None:
        self._args = (url, timeout, options)
        self._channel: AsyncChannel | None = None

    async def _connect(self) -> AsyncChannel:
        url, timeout, options = self._args
        loop = asyncio.get_running_loop()
        # The handshake is one short exchange (TLS included) done by the sync code in a
        # worker thread; a caller cancelled meanwhile must not leak the connection.
        job = loop.run_in_executor(None, lambda: _sync.connect(url, timeout=timeout, **options))
        try:
            channel = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(_close_orphan)
            raise
        return AsyncChannel(channel)

    def __await__(self) -> Generator[Any, None, AsyncChannel]:
        return self._connect().__await__()

    async def __aenter__(self) -> AsyncChannel:
        self._channel = await self._connect()
        return self._channel

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._channel is not None:
            await self._channel.aclose()


def _close_orphan(job: asyncio.Future[Channel]) -> None:
    if not job.cancelled() and job.exception() is None:
        job.result().close()


def open(url: str, *, create: bool = False, **options: Any) -> AsyncChannel:  # noqa: A001
    """Create (``create=True``) or attach to a named channel; see :func:`ipckit.open`.

    Opening never waits, so the result may be awaited or used as it is.
    """
    return AsyncChannel(_sync.open(url, create=create, **options))


def pipe(**options: Any) -> tuple[AsyncChannel, AsyncChannel]:
    """A connected pair over OS pipes; see :func:`ipckit.pipe`. May be awaited or used as it is."""
    a, b = _sync.pipe(**options)
    return _Pair((AsyncChannel(a), AsyncChannel(b)))


def listen(url: str, **options: Any) -> AsyncListener:
    """Listen on ``unix://`` or ``tcp://``; see :func:`ipckit.listen`.

    Binding never waits, so the result may be awaited or used as it is.
    """
    return AsyncListener(_sync.listen(url, **options))


def connect(url: str, *, timeout: float | None = None, **options: Any) -> _Connecting:
    """Connect to a listener (see :func:`ipckit.connect`): await it, or ``async with`` it."""
    return _Connecting(url, timeout, options)
