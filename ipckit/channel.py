"""The uniform face of every transport: Channel, Listener and the functions that make them.

:func:`open`, :func:`pipe`, :func:`listen` and :func:`connect` build channels;

``Channel`` owns everything the backends share: serialization, the size limit,
timeouts, batching, per-handle thread safety, statistics, closing and pickling.
"""

from __future__ import annotations

import operator
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from typing_extensions import Buffer

from ipckit._critical import Mutex
from ipckit._deadline import FOREVER, NOW, Deadline
from ipckit._framing import Frame
from ipckit._transport import Capabilities, ListenerTransport, OutFrame, Transport
from ipckit._url import Endpoint, OptionSpec, check_attach_options, parse_url, resolve_options
from ipckit.backends import connection_backend, named_backend
from ipckit.errors import (
    ChannelClosed,
    ConfigurationError,
    Empty,
    Full,
    HandleClosed,
    IPCError,
    MessageTooLarge,
    SerializationError,
    Timeout,
)
from ipckit.serializers import (
    PICKLE_ID,
    RAW_ID,
    Serializer,
    resolve_serializer,
    serializer_id_of,
    serializer_name,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Channel",
    "ChannelStats",
    "Listener",
    "MessageView",
    "connect",
    "listen",
    "open",
    "pipe",
]

#: The default ``max_message_size``: 64 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

COMMON_OPTIONS: Mapping[str, OptionSpec] = {
    "serializer": OptionSpec("object", None, "msgpack (default), pickle, json, raw or an object"),
    "max_message_size": OptionSpec("size", DEFAULT_MAX_MESSAGE_SIZE, "largest message accepted"),
}

SerializerSpec = str | Serializer | None


@dataclass(frozen=True)
class ChannelStats:
    """Counters for one handle plus channel-wide figures where the backend knows them.

    ``messages_*``/``bytes_*`` count this handle's traffic (payload bytes).
    ``depth`` (messages waiting), ``capacity`` (bytes, or messages for ``mq://``) and
    ``high_water`` are channel-wide and ``None`` where the transport cannot know.
    ``extra`` holds backend-specific figures (see docs/backends.md).
    """

    url: str
    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    depth: int | None
    capacity: int | None
    high_water: int | None
    extra: Mapping[str, int | float | str] = field(default_factory=dict)


_get_ident = threading.get_ident

# Every open handle, so that a forked child gets free locks: the parent's may be held
# by a thread that does not exist in the child (os.fork(7): only the caller is copied).
_LIVE: weakref.WeakSet[Channel] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for channel in list(_LIVE):
        channel._send_lock.reset()
        channel._recv_lock.reset()
        channel._lent = None  # a view lent in the parent is the parent's to give back


os.register_at_fork(after_in_child=_after_fork_in_child)

# NamedTuple's generated __new__ is a Python function; building through tuple's is
# several times cheaper on the per-message path and gives the same object.
_out_frame = tuple.__new__


def _as_bytes(data: Any) -> tuple[Buffer, int]:
    """A flat byte view of any buffer (arrays, multi-dimensional views), and its size."""
    try:
        view = memoryview(data)
    except TypeError:
        raise SerializationError(
            f"send_bytes takes a bytes-like object, not {type(data).__name__}; "
            "use send() for objects"
        ) from None
    if view.c_contiguous:
        flat = view.cast("B")
        return flat, flat.nbytes
    copy = view.tobytes()  # non-contiguous: one copy makes it a byte string
    return copy, len(copy)


def _nbytes(payload: Buffer) -> int:
    if type(payload) is bytes or type(payload) is bytearray:
        return len(payload)
    return memoryview(payload).nbytes


def _count(max_items: Any) -> int:
    try:
        count = operator.index(max_items)
    except TypeError:
        raise ConfigurationError(
            f"max_items must be a whole number of messages, not {type(max_items).__name__}"
        ) from None
    if count < 1:
        raise ConfigurationError(f"max_items must be at least 1, not {count}")
    return count


class Channel:
    """One handle on a channel: send and receive messages, whatever the transport.

    Make one with :func:`ipckit.open`, :func:`ipckit.pipe`, :meth:`Listener.accept`
    or :func:`ipckit.connect`. A handle is safe to share between threads. Close it
    with :meth:`close` or a ``with`` block; an unclosed handle warns
    (``ResourceWarning``) when garbage-collected, like an unclosed file.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        serializer: SerializerSpec = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._transport = transport
        self._serializer_spec = serializer
        ser = resolve_serializer(serializer)
        self._serializer = ser
        self._ser_id = serializer_id_of(ser)
        self._dumps = ser.dumps
        self._loads = ser.loads
        self._max = max_message_size
        self._send_lock = Mutex()
        self._recv_lock = Mutex()
        self._closed = False
        # The give-back of a lent MessageView, held here (not the view itself) so a
        # view that is dropped is collected and gives its message back.
        self._lent: Callable[[bool], None] | None = None
        self._messages_sent = 0
        self._messages_received = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        # Frames taken from the transport but not yet handed out: a batch whose decoding
        # failed part-way keeps the rest here for the next receive, so none is lost.
        self._pending: list[Frame] = []
        # The transport's C core (ipckit.native), or None. Each fast call below does the
        # whole operation (waiting in C while the kernel would block) or nothing, and
        # then the pure path runs with the same deadline: same checks, same errors.
        self._core: Any = getattr(transport, "native_core", None)
        if self._core is not None:
            codec = getattr(ser, "native_codec", None)
            pack, unpacker = codec() if codec is not None else (None, None)
            self._core.bind(
                self._send_lock,
                self._recv_lock,
                self._dumps,
                self._loads,
                self._ser_id,
                self._max,
                pack,
                unpacker,
            )
        _LIVE.add(self)

    # -- properties -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint this handle is connected to."""
        return self._transport.url

    @property
    def capabilities(self) -> Capabilities:
        """What the transport under this handle can do (a frozen dataclass)."""
        return self._transport.capabilities

    @property
    def serializer(self) -> Serializer:
        """The serializer this handle encodes and decodes with."""
        return self._serializer

    @property
    def max_message_size(self) -> int:
        """The largest message, in bytes, this handle sends or accepts."""
        return self._max

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    # -- sending ----------------------------------------------------------------------

    def _encode(self, obj: Any) -> OutFrame:
        try:
            payload = self._dumps(obj)
        except SerializationError:
            raise
        except Exception as exc:
            raise self._encode_failed(obj, exc) from exc
        return self._frame(payload)

    def _encode_failed(self, obj: Any, exc: Exception) -> SerializationError:
        return SerializationError(
            f"serializer {serializer_name(self._ser_id)} could not encode "
            f"{type(obj).__name__}: {exc}"
        )

    def _frame(self, payload: Buffer) -> OutFrame:
        n = _nbytes(payload)
        if n > self._max:
            raise self._too_large(n)
        return _out_frame(OutFrame, (self._ser_id, 0, payload, n))

    def _too_large(self, n: int) -> MessageTooLarge:
        return MessageTooLarge(
            f"message of {n} bytes exceeds max_message_size={self._max} on {self.url}; "
            "pass a larger max_message_size= to both ends, or split the message"
        )

    def send(self, obj: Any, *, timeout: float | None = None) -> None:
        """Send one object, encoded by this handle's serializer.

        Blocks while the channel is full: ``timeout=None`` waits forever, ``0`` never
        waits, a number waits that many seconds.

        Raises:
            SerializationError: the serializer cannot encode ``obj`` (nothing is sent).
            MessageTooLarge: the encoded message exceeds ``max_message_size``.
            Full: the channel stayed full until the timeout.
            ChannelClosed: the channel was shut down or the peer is gone.
        """
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        core = self._core
        if core is not None:
            try:
                done = core.send(obj, deadline)
            except SerializationError:
                raise
            except Exception as exc:
                raise self._encode_failed(obj, exc) from exc
            if done is True:
                return
            if done is not False:  # encoded, but it must wait or go out of band
                if self._closed:
                    raise self._closed_error()
                self._send((self._frame(done),), deadline)
                return
        if self._closed:
            raise self._closed_error()
        self._send((self._encode(obj),), deadline)

    def send_bytes(self, data: Buffer, *, timeout: float | None = None) -> None:
        """Send raw bytes, bypassing the serializer. Raises as :meth:`send`."""
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        core = self._core
        if core is not None and core.send_bytes(data, deadline):
            return
        if self._closed:
            raise self._closed_error()
        if type(data) is bytes or type(data) is bytearray:
            n = len(data)
        else:
            data, n = _as_bytes(data)
        if n > self._max:
            raise self._too_large(n)
        self._send((_out_frame(OutFrame, (RAW_ID, 0, data, n)),), deadline)

    def send_many(self, objs: Iterable[Any], *, timeout: float | None = None) -> None:
        """Send several objects in order with one synchronisation where the backend can.

        Every object is encoded before anything is sent, so an encoding error or an
        oversized message sends nothing. If time runs out part-way, :class:`Full` is
        raised and its ``sent`` attribute says how many went out.
        """
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        core = self._core
        if core is not None:
            items = objs if type(objs) is list or type(objs) is tuple else list(objs)
            try:
                done = core.send_many(items)
            except Exception:
                done = None  # the pure path encodes again and raises the one documented error
            if done is not None:
                sent, payloads = done
                if sent == len(payloads):
                    return
                rest = [self._frame(p) for p in payloads[sent:]]
                try:
                    self._send(rest, deadline)
                except Full as exc:
                    exc.sent += sent
                    raise
                return
            objs = items
        if self._closed:
            raise self._closed_error()
        frames = [self._encode(obj) for obj in objs]
        if frames:
            self._send(frames, deadline)

    def _count_sent(self, messages: int, nbytes: int) -> None:
        """Count messages a transport finished after the call that sent them returned.

        (A frame ``ipckit.aio`` parked mid-way and finished in the event loop.)
        """
        self._messages_sent += messages
        self._bytes_sent += nbytes

    def _reentered(self, doing: str) -> IPCError:
        return IPCError(
            f"this thread is already {doing} on {self.url} (a signal handler or finaliser "
            "called back into the same handle, or a MessageView is still lent): release "
            "the view, or use another handle"
        )

    def _busy(self, error: type[Timeout], doing: str) -> Timeout:
        return error(f"another thread is still {doing} on {self.url}; timed out waiting")

    # The send and receive paths below follow the interrupt-safe lock pattern of
    # ipckit._critical (take inside the try; plain loads, a store and the release
    # call first in the finally); keep them that way when editing.

    def _send(self, frames: tuple[OutFrame, ...] | list[OutFrame], deadline: Deadline) -> None:
        lock = self._send_lock
        me = _get_ident()
        if lock.owner == me:
            raise self._reentered("sending")
        try:
            if not lock.take(me, deadline.remaining()):
                raise self._busy(Full, "sending")
            if self._closed:
                raise self._closed_error()
            self._transport.send_frames(frames, deadline)
            if len(frames) == 1:
                self._messages_sent += 1
                self._bytes_sent += frames[0].nbytes
            else:
                self._messages_sent += len(frames)
                self._bytes_sent += sum([f.nbytes for f in frames])
        except Full as exc:
            self._messages_sent += exc.sent
            self._bytes_sent += sum(f.nbytes for f in frames[: exc.sent])
            raise
        finally:
            if lock.owner == me:
                lock.owner = 0
                lock.release()

    # -- receiving --------------------------------------------------------------------

    def _recv_frames(self, max_items: int, deadline: Deadline) -> list[Frame]:
        lock = self._recv_lock
        me = _get_ident()
        if lock.owner == me:
            raise self._reentered("receiving")
        try:
            if not lock.take(me, deadline.remaining()):
                raise self._busy(Empty, "receiving")
            if self._closed:
                raise self._closed_error()
            pending = self._pending
            if pending:
                frames = pending[:max_items]
                del pending[:max_items]
                return frames  # counted when they were taken
            frames = self._transport.recv_frames(max_items, deadline)
            count = len(frames)
            self._messages_received += count
            if count == 1:
                self._bytes_received += _nbytes(frames[0].payload)
            else:
                self._bytes_received += sum([_nbytes(f.payload) for f in frames])
            return frames
        finally:
            if lock.owner == me:
                lock.owner = 0
                lock.release()

    def _decode(self, frame: Frame) -> Any:
        ident = frame.serializer_id
        if ident == self._ser_id:
            try:
                return self._loads(frame.payload)
            except SerializationError as exc:
                if exc.payload is None:
                    exc.payload = bytes(frame.payload)
                    exc.serializer_id = ident
                raise
            except Exception as exc:
                raise SerializationError(
                    f"serializer {serializer_name(ident)} could not decode a message: {exc}",
                    payload=bytes(frame.payload),
                    serializer_id=ident,
                ) from exc
        if ident == RAW_ID:
            return bytes(frame.payload)
        if ident == PICKLE_ID:
            raise SerializationError(
                "refused a pickle message: unpickling runs code chosen by the sender; open "
                "this end with serializer='pickle' if you trust the peer",
                payload=bytes(frame.payload),
                serializer_id=ident,
            )
        raise SerializationError(
            f"the sender used serializer {serializer_name(ident)} but this end uses "
            f"{serializer_name(self._ser_id)}; open both ends with the same serializer= "
            "(the message is in this exception's payload attribute)",
            payload=bytes(frame.payload),
            serializer_id=ident,
        )

    def _decode_batch(self, frames: list[Frame], decoded: list[Any]) -> list[Any]:
        """Decode ``frames`` after ``decoded``; at a failure, keep the rest for later.

        The messages before a bad one are returned now and the bad one raises on the
        next receive (or now, when it is first); those after it wait in ``_pending``.
        """
        for i, frame in enumerate(frames):
            try:
                decoded.append(self._decode(frame))
            except SerializationError:
                rest = frames[i:] if decoded else frames[i + 1 :]
                self._pending[:0] = rest
                if decoded:
                    return decoded
                raise
        return decoded

    def recv(self, *, timeout: float | None = None) -> Any:
        """Receive one object, decoded by this handle's serializer.

        A message sent with :meth:`send_bytes` comes back as ``bytes``.

        Raises:
            Empty: nothing arrived before the timeout (``0``: nothing was ready).
            ChannelClosed: the peer is gone or the stream ended, and nothing is left.
            SerializationError: the message cannot be decoded (it is consumed, and its
                bytes are in the exception's ``payload``); the channel stays usable.
            ProtocolError: the peer sent a corrupt frame.
        """
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        core = self._core
        if core is not None and not self._pending:
            got = core.recv_many(1, deadline)
            if got is not None:
                return got[0] if type(got) is list else self._decode(got[1][0])
        return self._decode(self._recv_frames(1, deadline)[0])

    def recv_bytes(self, *, timeout: float | None = None) -> bytes:
        """Receive one message's raw payload, whatever serializer encoded it."""
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        core = self._core
        if core is not None and not self._pending:
            frame = core.recv_frame(deadline)
            if frame is not None:
                fast: bytes = frame.payload
                return fast
        payload = self._recv_frames(1, deadline)[0].payload
        return payload if type(payload) is bytes else bytes(payload)

    def recv_view(self, *, timeout: float | None = None) -> MessageView:
        """Receive one message's raw payload as a read-only view, copying nothing if possible.

        On ``shm://`` the view points into shared memory (or into the out-of-band
        block of a big message), so not one byte is copied; other transports hand
        over the buffer they received into. Use it as a context manager, or call
        :meth:`MessageView.release`: until then this handle cannot receive again,
        and on ``shm://`` other receivers wait too, so keep views brief. Raises as
        :meth:`recv_bytes`.
        """
        lock = self._recv_lock
        me = _get_ident()
        if lock.owner == me:
            raise self._reentered("receiving")
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        lent = False
        try:
            if not lock.take(me, deadline.remaining()):
                raise self._busy(Empty, "receiving")
            if self._closed:
                raise self._closed_error()
            borrow = getattr(self._transport, "recv_view", None)
            counted = bool(self._pending)  # pending frames were counted when taken
            if counted:
                frame = self._pending.pop(0)
                give_back, in_place = None, False
            elif borrow is not None:
                frame, give_back, in_place = borrow(deadline)
            else:
                frame = self._transport.recv_frames(1, deadline)[0]
                give_back, in_place = None, False
            done = [False]

            def release(forced: bool) -> None:
                # Idempotent, from any thread; forced at close(), whatever is still exported.
                if done[0]:
                    return
                if forced:
                    try:
                        data.release()
                    except BufferError:
                        pass  # an array made from it lives on; the transport copes
                if give_back is not None:
                    give_back(forced)  # BufferError (unforced): a slice still reads the bytes
                done[0] = True
                self._lent = None
                if lock.owner == me:
                    lock.owner = 0
                    lock.release()

            data = memoryview(frame.payload).toreadonly()
            view = MessageView(data, frame.serializer_id, release, in_place=in_place)
            self._lent = release
            lent = True
        finally:
            # Until the view exists the lock is this call's to give back; from then on the view's.
            if not lent and lock.owner == me:
                lock.owner = 0
                lock.release()
        if not counted:
            self._messages_received += 1
            self._bytes_received += view.data.nbytes
        return view

    def recv_many(self, max_items: int = 100, *, timeout: float | None = None) -> list[Any]:
        """Receive between 1 and ``max_items`` objects with one synchronisation.

        Waits (up to ``timeout``) for the first message, then takes whatever else is
        already there without waiting. Raises as :meth:`recv`. A message that fails
        to decode ends the batch: the ones before it are returned, and it raises on
        the next receive (at once when it is the first); none after it is lost.
        """
        count = _count(max_items)
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        core = self._core
        if core is not None and not self._pending:
            got = core.recv_many(count, deadline)
            if got is not None:
                if type(got) is list:
                    return got
                return self._decode_batch(got[1], got[0])
        return self._decode_batch(self._recv_frames(count, deadline), [])

    def recv_bytes_into(
        self, buffer: Buffer, offset: int = 0, *, timeout: float | None = None
    ) -> int:
        """Receive one message's raw payload into ``buffer`` at ``offset``; return its size.

        ``buffer`` is any writable buffer (a ``bytearray``, a preallocated numpy
        array); on ``shm://`` the bytes are copied straight out of shared memory.

        Raises:
            MessageTooLarge: the message does not fit; ``needed`` says how many bytes
                (from ``offset``) it takes, and ``payload`` holds the message, which is
                consumed: nothing is lost.
            ValueError: ``buffer`` is read-only or ``offset`` is outside it.
            Empty, ChannelClosed, ProtocolError: as :meth:`recv_bytes`.
        """
        target = memoryview(buffer)
        if target.readonly:
            raise ConfigurationError("recv_bytes_into needs a writable buffer, not a read-only one")
        target = target.cast("B") if target.c_contiguous else target
        if not target.c_contiguous:
            raise ConfigurationError("recv_bytes_into needs a contiguous buffer")
        offset = operator.index(offset)
        room = target.nbytes - offset
        if offset < 0 or room < 0:
            raise ConfigurationError(
                f"offset={offset} is outside the buffer of {target.nbytes} bytes"
            )
        with self.recv_view(timeout=timeout) as view:
            size = view.data.nbytes
            if size > room:
                raise MessageTooLarge(
                    f"a message of {size} bytes does not fit in the {room} bytes left in "
                    f"the buffer from offset={offset}; the message is in this exception's "
                    "payload attribute, pass a larger buffer for the next one",
                    needed=size,
                    payload=bytes(view.data),
                )
            target[offset : offset + size] = view.data
        return size

    def poll(self, timeout: float | None = 0.0) -> bool:
        """True if a message (or the end of the stream) is ready to receive."""
        if self._closed:
            raise self._closed_error()
        if self._pending:
            return True
        return self._transport.poll(
            FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        )

    def __iter__(self) -> Iterator[Any]:
        """Receive objects until the channel is closed or shut down."""
        while True:
            try:
                yield self.recv()
            except ChannelClosed:
                return

    # -- lifecycle --------------------------------------------------------------------

    def _closed_error(self) -> HandleClosed:
        return HandleClosed(f"this handle on {self.url} is closed; open a new one")

    def shutdown(self) -> None:
        """End the stream for everyone.

        Blocked peers wake, senders get :class:`ChannelClosed`, receivers drain what
        is left and then get :class:`ChannelClosed` too.
        """
        if self._closed:
            raise self._closed_error()
        self._transport.shutdown()

    def close(self) -> None:
        """Release this handle; idempotent. Other handles and the channel live on.

        Threads blocked in this handle wake with :class:`HandleClosed`.
        """
        if self._closed:
            return
        self._closed = True
        lent = self._lent
        if lent is not None:
            # A lent view holds the receive lock: give it back, or close would wait forever.
            lent(True)
        self._transport.interrupt()
        # Wait for calls in progress on other threads (interrupt() wakes them). A lock this
        # thread holds (close() from a signal handler that interrupted a call) is not waited for.
        me = _get_ident()
        send, recv = self._send_lock, self._recv_lock
        wait_send = send.owner != me
        wait_recv = recv.owner != me
        try:
            if wait_send:
                send.take(me, None)
            if wait_recv:
                recv.take(me, None)
            self._transport.close()
        finally:
            if wait_recv and recv.owner == me:
                recv.owner = 0
                recv.release()
            if wait_send and send.owner == me:
                send.owner = 0
                send.release()

    def unlink(self) -> None:
        """Remove the channel's named OS objects (the creator's job); idempotent.

        Handles already open keep working until closed; new attaches fail. A no-op
        for unnamed channels (pipes, sockets).
        """
        self._transport.unlink()

    def fileno(self) -> int:
        """A descriptor that polls readable when a message is ready (where supported)."""
        if self._closed:
            raise self._closed_error()
        return self._transport.fileno()

    def stats(self) -> ChannelStats:
        """A snapshot of this handle's counters and the channel-wide figures."""
        if self._closed:
            raise self._closed_error()
        ts = self._transport.stats()
        sent, sent_bytes, received, received_bytes = (
            (0, 0, 0, 0) if self._core is None else self._core.counters()
        )
        return ChannelStats(
            url=self.url,
            messages_sent=self._messages_sent + sent,
            messages_received=self._messages_received + received,
            bytes_sent=self._bytes_sent + sent_bytes,
            bytes_received=self._bytes_received + received_bytes,
            depth=ts.depth,
            capacity=ts.capacity,
            high_water=ts.high_water,
            extra=dict(ts.extra),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        warnings.warn(
            f"unclosed ipckit channel {self.url}; call close() or use a with block",
            ResourceWarning,
            stacklevel=2,
            source=self,
        )
        try:
            self.close()
        except Exception:  # noqa: S110 - nothing useful to do while collecting garbage
            pass

    def __reduce__(self) -> tuple[Callable[..., Channel], tuple[Any, ...]]:
        if self._closed:
            raise self._closed_error()
        rebuild, args = self._transport.reducer()
        return _rebuild_channel, (rebuild, args, self._serializer_spec, self._max)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ipckit.Channel {self.url} {serializer_name(self._ser_id)} {state}>"


class MessageView:
    """A received payload lent in place; see :meth:`Channel.recv_view`.

    ``data`` is a read-only ``memoryview`` valid until :meth:`release` (or the end
    of the ``with`` block); copy what you need to keep with ``bytes(view.data)``.
    A view that is dropped unreleased gives its message back when it is collected,
    with a ``ResourceWarning``.

    On ``shm://`` the bytes live in the ring and are reused once given back, so
    :meth:`release` refuses (``BufferError``) while a slice or array made from
    ``data`` is still alive: nothing can read another message's bytes through it.
    Elsewhere such a slice keeps its memory valid and release goes ahead.
    """

    def __init__(
        self,
        data: memoryview,
        serializer_id: int,
        release: Callable[[bool], None],
        *,
        in_place: bool = False,
    ) -> None:
        self.data = data
        self.serializer_id = serializer_id
        self._in_place = in_place
        self._release: Callable[[bool], None] | None = release
        self._left_by_error = False  # the with block raised: collected later, no warning

    def release(self) -> None:
        """Give the payload back; idempotent. ``data`` is unusable afterwards.

        Raises:
            BufferError: on ``shm://``, a slice, array or view made from ``data`` is
                still alive; delete it (copy what you need first) and release again.
                The message stays lent meanwhile.
        """
        release = self._release
        if release is None:
            return
        try:
            try:
                self.data.release()
            except BufferError:
                if self._in_place:
                    raise
                # Elsewhere the exporter keeps its own memory alive: nothing can go stale.
            release(False)
        except BufferError:
            raise BufferError(
                "a slice, array or view made from this MessageView's data is still "
                "alive, and the bytes are about to be reused for other messages: "
                "delete it (copy what you need with bytes() first), then release() "
                "again; until then the message stays lent and other receivers wait"
            ) from None
        self._release = None

    def __len__(self) -> int:
        return self.data.nbytes

    def __bytes__(self) -> bytes:
        return bytes(self.data)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.release()
            return
        try:
            self.release()
        except BufferError:
            # The block raised while something made from the data was alive (its
            # traceback keeps the block's variables): that error is the one to see. The
            # view is given back when it and those objects are collected.
            self._left_by_error = True
            exc.add_note(
                "ipckit: the MessageView was not given back yet because an array or view "
                "made from its data is still alive; it is released when they are collected"
            )

    def __del__(self) -> None:
        if getattr(self, "_release", None) is not None:
            try:
                self.release()
            except BufferError:
                pass  # an array made from it lives on: the handle's close() gives it back
            except Exception:  # noqa: S110 - nothing useful to do while collecting garbage
                pass
            if getattr(self, "_left_by_error", False):
                return  # its with block ended by an exception and said so in a note
            warnings.warn(
                "an ipckit MessageView was never released; use it in a with block "
                "or call release()",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )


def _rebuild_channel(
    rebuild: Callable[..., Transport],
    args: tuple[Any, ...],
    serializer: SerializerSpec,
    max_message_size: int,
) -> Channel:
    return Channel(rebuild(*args), serializer=serializer, max_message_size=max_message_size)


class Listener:
    """Accepts connections on a ``unix://`` or ``tcp://`` address.

    Options given to :func:`listen` apply to every channel it accepts.
    """

    def __init__(
        self,
        transport: ListenerTransport,
        serializer: SerializerSpec,
        max_message_size: int,
    ) -> None:
        self._transport = transport
        self._serializer = serializer
        self._max = max_message_size
        self._closed = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The bound address (for ``tcp://host:0``, the port actually chosen)."""
        return self._transport.url

    def accept(self, *, timeout: float | None = None) -> Channel:
        """Wait for a client, run the handshake, and return a channel to it.

        Raises:
            Timeout: no client completed a handshake in time.
            HandleClosed: the listener was closed.
        """
        if self._closed:
            raise HandleClosed(f"listener on {self.url} is closed")
        deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
        with self._lock:
            transport = self._transport.accept(deadline)
        return Channel(transport, serializer=self._serializer, max_message_size=self._max)

    def fileno(self) -> int:
        """The listening descriptor: readable when a client is waiting."""
        return self._transport.fileno()

    def close(self) -> None:
        """Stop listening and remove the address; idempotent."""
        if not self._closed:
            self._closed = True
            self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        warnings.warn(
            f"unclosed ipckit listener {self.url}", ResourceWarning, stacklevel=2, source=self
        )
        try:
            self.close()
        except Exception:  # noqa: S110 - nothing useful to do while collecting garbage
            pass

    def __repr__(self) -> str:
        return f"<ipckit.Listener {self.url}{' closed' if self._closed else ''}>"


def _split_options(
    endpoint: Endpoint,
    backend_options: Mapping[str, OptionSpec],
    kwargs: Mapping[str, Any],
    verb: str,
    create: bool = True,
) -> tuple[SerializerSpec, int, dict[str, Any]]:
    specs = {**COMMON_OPTIONS, **backend_options}
    what = f"{verb}({endpoint.scheme}://...)"
    check_attach_options(specs, [*endpoint.query, *kwargs], create, what)
    opts = resolve_options(endpoint.query, kwargs, specs, what)
    serializer = opts.pop("serializer")
    resolve_serializer(serializer)
    max_size = opts.pop("max_message_size")
    if max_size < 1:
        raise ConfigurationError(f"max_message_size must be at least 1 byte, not {max_size}")
    return serializer, max_size, opts


def open(url: str, *, create: bool = False, **options: Any) -> Channel:  # noqa: A001
    """Create (``create=True``) or attach to a named channel: ``shm://``, ``mq://``, ``fifo://``.

    Options may be keywords or URL query parameters (``shm://jobs?capacity=8MiB``).

    Raises:
        FileExistsError: ``create=True`` and the name exists (:class:`ChannelExists`).
        FileNotFoundError: attaching and the name does not exist (:class:`ChannelNotFound`).
        ConfigurationError: an unknown scheme or option, or a bad value.
    """
    endpoint = parse_url(url)
    backend = named_backend(endpoint.scheme)
    serializer, max_size, opts = _split_options(endpoint, backend.options, options, "open", create)
    transport = backend.open(endpoint, create, {**opts, "max_message_size": max_size})
    return Channel(transport, serializer=serializer, max_message_size=max_size)


def listen(url: str, **options: Any) -> Listener:
    """Listen on ``unix://PATH``, ``unix://@name`` or ``tcp://HOST:PORT``."""
    endpoint = parse_url(url)
    backend = connection_backend(endpoint.scheme, "listen")
    serializer, max_size, opts = _split_options(endpoint, backend.options, options, "listen")
    transport = backend.listen(endpoint, {**opts, "max_message_size": max_size})
    return Listener(transport, serializer, max_size)


def connect(url: str, *, timeout: float | None = None, **options: Any) -> Channel:
    """Connect to a listener; ``timeout`` bounds the connection and the handshake."""
    endpoint = parse_url(url)
    backend = connection_backend(endpoint.scheme, "connect")
    serializer, max_size, opts = _split_options(endpoint, backend.options, options, "connect")
    deadline = FOREVER if timeout is None else NOW if timeout == 0 else Deadline(timeout)
    transport = backend.connect(endpoint, {**opts, "max_message_size": max_size}, deadline)
    return Channel(transport, serializer=serializer, max_message_size=max_size)


def pipe(
    *,
    duplex: bool = True,
    serializer: SerializerSpec = None,
    max_message_size: int | str = DEFAULT_MAX_MESSAGE_SIZE,
) -> tuple[Channel, Channel]:
    """A connected pair of channels over anonymous OS pipes, for a parent and its children.

    With ``duplex=False`` the first end only receives and the second only sends,
    as with :func:`multiprocessing.Pipe`. Either end can be passed to a
    ``multiprocessing`` child (fork or spawn); close your copy of the end you gave
    away, so that the other end sees the child's exit as :class:`ChannelClosed`.
    """
    from ipckit.backends.pipe import make_pipe_pair

    max_size = COMMON_OPTIONS["max_message_size"].convert("max_message_size", max_message_size)
    if max_size < 1:
        raise ConfigurationError(f"max_message_size must be at least 1 byte, not {max_size}")
    resolve_serializer(serializer)
    left, right = make_pipe_pair(duplex=duplex, max_message_size=max_size)
    return (
        Channel(left, serializer=serializer, max_message_size=max_size),
        Channel(right, serializer=serializer, max_message_size=max_size),
    )
