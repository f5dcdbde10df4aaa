"""What the named message queues (``fifo://``, ``mq://``) share: units, OOB, end of stream.

The kernel object carries *units* (a FIFO packet, a POSIX queue message), each
written and read by one system call, so a unit is whole or absent whatever
happens to the process that writes or reads it. A unit holds one or more whole
frames (``send_many`` packs small frames together). A frame too big for a unit
goes out of band (``ipckit._oob``): the payload in a one-off shared-memory block,
a small reference frame (``FLAG_OOB``) in the unit.

Invariants:
- A receiver owns every frame of a unit it read; frames are never split between
  receivers, and a receiver holds no lock, so its death cannot stall the others.
- End of stream lives in :class:`~ipckit.backends._qstate.QueueState` (the truth);
  an end-of-stream frame in the queue is a doorbell. A receiver that reads the
  doorbell puts it back for the next one (so one stays queued for good) and ends;
  a receiver that finds the queue empty ends if the flag is set. Waits are
  bounded slices, so a doorbell lost to a full queue costs latency, never a hang.
- Frames a handle took from the kernel but has not handed out (the rest of a
  batched unit) belong to that handle in the process that read them (a forked
  child's copy is emptied): ``close()`` puts them back into the queue, and says so
  (raises ``Full``) if the queue stayed full and some could not be.
- ``poll()`` never takes a unit out of the kernel: it asks (``poll(2)``).
- An out-of-band block lives while a handle may still read its reference: a sender
  removes it only if the unit holding the reference was surely not written (the
  write records its success inside the same C call, see :meth:`_write_unit`), and
  ``unlink()`` leaves blocks alone; the last handle to close sweeps them once the
  queue that referenced them is gone (``QueueState.last_holder``).
"""

from __future__ import annotations

import os
import select
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import Buffer

from ipckit import _accel
from ipckit._deadline import Deadline
from ipckit._framing import (
    FLAG_EOS,
    FLAG_OOB,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    VERSION,
    Frame,
    decode_header,
    encode_header,
    plain_frame,
)
from ipckit._oob import discard_block, nobody_holds, put_block, resolve, sweep_blocks
from ipckit._transport import Capabilities, OutFrame, TransportStats
from ipckit.backends._qstate import SHUT_BYTE as _SHUT_BYTE
from ipckit.backends._qstate import QueueState
from ipckit.backends._readiness import Readiness
from ipckit.backends._wake import Waits
from ipckit.errors import (
    ChannelClosed,
    ConfigurationError,
    Empty,
    Full,
    HandleClosed,
    ProtocolError,
)

__all__ = ["SLICE", "QueueTransport"]

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
#: Longest single sleep: how late a waiter may notice a shutdown whose doorbell was lost.
SLICE = 0.25
_EOS_FRAME = encode_header(0, FLAG_EOS, 0)
_pack_header = HEADER.pack
#: How long close() waits for room to put buffered frames back into a full queue.
PUT_BACK_WAIT = 1.0

_live: weakref.WeakSet[QueueTransport] = weakref.WeakSet()


class QueueTransport(Waits):
    """Base for named queue transports; subclasses move units through the kernel."""

    capabilities: Capabilities
    url: str
    #: Blocking calls go straight to :meth:`_read_wait`/:meth:`_write_wait`, which then must
    #: return at once when a unit is there (true of a blocking kernel call, not of poll()).
    _wait_first = False

    def __init__(
        self,
        *,
        url: str,
        fd: int,
        unit: int,
        state: QueueState,
        oob_prefix: str,
        max_message_size: int,
        reducer: tuple[Callable[..., Any], tuple[Any, ...]],
    ) -> None:
        self.url = url
        self._fd = fd
        self._unit = unit
        self._inline_max = unit - HEADER_SIZE
        # A reference frame: header, (length, name length), "<prefix>.oob.<16 hex digits>".
        ref_frame = HEADER_SIZE + 9 + len(oob_prefix.encode()) + len(".oob.") + 16
        if ref_frame > unit:
            raise ConfigurationError(
                f"{url}: units of {unit} bytes cannot carry a {ref_frame}-byte reference to "
                "an out-of-band message; use a bigger message_size or a shorter name"
            )
        self._state = state
        self._flag = state.mapping  # read directly on the hot path (a memory load)
        self._oob_prefix = oob_prefix
        self._max = max_message_size
        # A reference frame may be longer than a tiny max_message_size allows.
        self._header_limit = max(max_message_size, unit)
        self._reducer = reducer
        self._ready: deque[Frame] = deque()
        self._eos = False
        # A corrupt unit met after whole frames were taken: raised once those are out.
        self._deferred: ProtocolError | None = None
        self._shut = False
        self._init_waits()
        self._readiness = Readiness()
        self._probe = select.poll()
        self._probe.register(fd, _POLLIN)
        #: The C core's never-waiting paths (ipckit._core.Queue), or None; subclasses
        #: that move units with one plain system call make it (see _make_core).
        self.native_core: Any = None
        _live.add(self)

    def _make_core(self, *, mq: bool, priority: int = 0) -> None:
        """Serve this handle's plain sends and receives in C, if the core is in use.

        It reads and sets this object's fields, so both paths share one state.
        """
        core = _accel.core
        if core is not None:
            self.native_core = core.Queue(self, self._unit, self._max, _SHUT_BYTE, mq, priority)

    # -- subclass hooks ----------------------------------------------------------------

    def _try_read(self) -> bytes | None:
        """One unit, or None when the queue is empty (never blocks)."""
        raise NotImplementedError

    def _try_write(self, data: Buffer, log: list[Any] | None = None) -> bool:
        """Write one unit; False when the queue is full (never blocks).

        With ``log``, the write appends to it inside the same C call that writes
        (``log.extend(map(write, ...))``), so once the unit is in the kernel the log
        says so even if a signal handler raises right after the call returns.
        """
        raise NotImplementedError

    def _put_back_unit(self, data: Buffer) -> bool:
        """Write a unit taken earlier back into the queue (never blocks)."""
        return self._try_write(data)

    def _read_wait(self, deadline: Deadline) -> bytes | None:
        """Wait up to one slice for a unit and take it; None if none came (yet)."""
        if not self._wait(_POLLIN, deadline):
            return None
        return self._try_read()

    def _write_wait(self, data: Buffer, deadline: Deadline, log: list[Any] | None = None) -> bool:
        """Wait up to one slice for room and write the unit; False if it did not fit (yet)."""
        if not self._wait(_POLLOUT, deadline):
            return False
        return self._try_write(data, log)

    def _blocks_orphaned_at_last_close(self) -> bool:
        """True if, with no handle left, nothing can read this queue's blocks any more."""
        raise NotImplementedError

    def _write_doorbell(self) -> None:
        """Queue an end-of-stream frame if there is room (never blocks)."""
        self._try_write(_EOS_FRAME)

    def _close_kernel_object(self) -> None:
        raise NotImplementedError

    def _unlink_kernel_object(self) -> None:
        raise NotImplementedError

    def stats(self) -> TransportStats:
        """Channel-wide figures (subclasses fill in what the kernel tells)."""
        return TransportStats()

    # -- waiting ----------------------------------------------------------------------

    # A shutdown in another process while the queue was full could queue no doorbell:
    # every wait, the event loop's too, looks again after one slice.
    _recheck = SLICE

    def _wait_fd(self, sending: bool) -> int:
        if self._fd < 0:
            raise HandleClosed(f"this handle on {self.url} is closed")
        return self._fd

    def _wait(self, events: int, deadline: Deadline) -> bool:
        """Sleep until the queue may be ready, a wake-up or one slice; False on timeout."""
        poller = self._poller(self._wait_fd(events == _POLLOUT), events)
        if self._interrupted:
            raise HandleClosed(f"this handle on {self.url} was closed")
        if deadline.expired():
            return False
        poller.poll(int(deadline.slice(SLICE) * 1000) + 1)
        if self._interrupted:
            raise HandleClosed(f"this handle on {self.url} was closed")
        return True

    # -- receiving --------------------------------------------------------------------

    def _take(self, unit: bytes) -> None:
        """Split one unit into frames (the sans-I/O part of receiving)."""
        size = len(unit)
        off = 0
        ready = self._ready
        was_empty = not ready
        while off < size:
            ser, flags, length = decode_header(unit, off, self._header_limit)
            body = off + HEADER_SIZE
            end = body + length
            if end > size:
                raise ProtocolError(
                    f"a unit on {self.url} ends inside a frame: a program that is not "
                    "ipckit wrote to this queue"
                )
            if flags & FLAG_EOS:
                self._on_eos()
            else:
                if length > self._max and not flags & FLAG_OOB:
                    raise ProtocolError(
                        f"incoming frame on {self.url} claims {length} bytes, more than "
                        f"max_message_size={self._max}; raise max_message_size on this end"
                    )
                ready.append(Frame(ser, flags, unit[body:end]))
                if was_empty and self._readiness.armed:
                    self._readiness.mark()
                    was_empty = False
            off = end

    def _take_judged(self, unit: bytes) -> None:
        """:meth:`_take` for a receive: an error waits until the whole frames before it are out.

        Those frames (of this unit or of earlier ones in the batch) are handed out
        first and the error is raised by the next receive (the unit itself is gone
        either way), as on the stream transports.
        """
        try:
            self._take(unit)
        except ProtocolError as exc:
            if not self._ready:
                raise
            self._deferred = exc

    def _on_eos(self) -> None:
        self._eos = True
        if self._readiness.armed:
            self._readiness.mark()
        # Put the doorbell back so the next receiver (maybe asleep in poll) ends too.
        try:
            self._write_doorbell()
        except Exception:  # noqa: S110, BLE001 - a full or gone queue: the flag still ends it
            pass

    def _resolve(self, frame: Frame) -> Frame:
        if not frame.flags & FLAG_OOB:
            return frame
        return Frame(frame.serializer_id, 0, resolve(frame.payload, self._max, self.url))

    def recv_frames(self, max_items: int, deadline: Deadline) -> list[Frame]:
        """Return 1..max_items frames; see :class:`~ipckit._transport.Transport`."""
        ready = self._ready
        try_read = self._try_read
        if not ready and not self._eos and not self._interrupted and self._deferred is None:
            if self._wait_first and not deadline.nonblocking and not self._flag[_SHUT_BYTE]:
                unit = self._read_wait(deadline)
            else:
                unit = try_read()
            if unit is not None:
                if max_items == 1:
                    # The common case: one plain frame filling the unit. Anything else
                    # (flags, batches, bad headers) takes the full path.
                    ser = plain_frame(unit, self._max)
                    if ser >= 0:
                        return [Frame(ser, 0, unit[HEADER_SIZE:])]
                self._take_judged(unit)
        while not ready:
            if self._deferred is not None:
                exc, self._deferred = self._deferred, None
                raise exc
            if self._interrupted:
                raise HandleClosed(f"this handle on {self.url} was closed")
            if self._eos:
                raise ChannelClosed(f"{self.url} was shut down and nothing is left")
            shut = self._flag[_SHUT_BYTE]
            if deadline.nonblocking or shut or not self._wait_first:
                unit = try_read()
                if unit is not None:
                    self._take_judged(unit)
                    continue
                if shut:
                    self._eos = True
                    continue
                if deadline.nonblocking:
                    raise Empty(f"no message on {self.url} within timeout={deadline.timeout}")
            unit = self._read_wait(deadline)
            if unit is not None:
                self._take_judged(unit)
            elif deadline.expired():
                raise Empty(f"no message on {self.url} within timeout={deadline.timeout}")
        if max_items == 1:
            frame = ready.popleft()
            if not ready and self._readiness.marked and not self._eos and self._deferred is None:
                self._readiness.clear()
            return [self._resolve(frame)]
        # Take what else is already queued, without waiting, up to max_items.
        while len(ready) < max_items and not self._eos and self._deferred is None:
            unit = try_read()
            if unit is None:
                break
            self._take_judged(unit)
        taken: list[Frame] = []
        while ready and len(taken) < max_items:
            taken.append(ready.popleft())
        if not ready and self._readiness.marked and not self._eos and self._deferred is None:
            self._readiness.clear()
        return [self._resolve(f) for f in taken]

    def poll(self, deadline: Deadline) -> bool:
        """True when a frame or the end of the stream is ready.

        Asks the kernel (``poll(2)`` on the queue's descriptor) and never takes a
        unit out of it, so polling takes no message away from other handles.
        """
        while True:
            if self._ready or self._eos or self._deferred is not None:
                return True
            if self._interrupted:
                raise HandleClosed(f"this handle on {self.url} was closed")
            if self._probe.poll(0):
                return True
            if self._state.shut:
                return True
            if deadline.nonblocking or not self._wait(_POLLIN, deadline):
                return False

    # -- sending ----------------------------------------------------------------------

    def _closed_for_send(self) -> ChannelClosed:
        return ChannelClosed(f"{self.url} was shut down; no more messages can be sent")

    def _write_unit(
        self, data: Buffer, deadline: Deadline, sent: int, log: list[Any] | None = None
    ) -> None:
        """Write one unit, waiting as the deadline allows; raise Full(sent=...).

        ``log`` (see :meth:`_try_write`) is non-empty once the unit is written.
        """
        state = self._state
        if self._try_write(data, log):
            return
        while True:
            if self._shut or state.shut:
                raise self._closed_for_send()
            if deadline.nonblocking:
                raise Full(f"{self.url} stayed full for timeout={deadline.timeout}", sent=sent)
            if self._write_wait(data, deadline, log):
                return
            if deadline.expired():
                raise Full(f"{self.url} stayed full for timeout={deadline.timeout}", sent=sent)

    def _encode(self, frame: OutFrame) -> tuple[bytes, bytes | None]:
        """The bytes of one frame in a unit, and its OOB reference if it went out of band."""
        if frame.nbytes <= self._inline_max:
            header = encode_header(frame.serializer_id, frame.flags, frame.nbytes)
            return header + frame.payload, None
        ref = put_block(self._oob_prefix, [frame.payload])
        return encode_header(frame.serializer_id, frame.flags | FLAG_OOB, len(ref)) + ref, ref

    def send_frames(self, frames: Sequence[OutFrame], deadline: Deadline) -> None:
        """Send every frame in order; ``Full(sent=k)`` if time runs out between units."""
        if self._shut or self._flag[_SHUT_BYTE]:
            raise self._closed_for_send()
        if len(frames) == 1:
            ser, flags, payload, nbytes = frames[0]
            if nbytes <= self._inline_max:
                data = _pack_header(MAGIC, VERSION, ser, flags, nbytes) + payload
                if self._wait_first and not deadline.nonblocking:
                    done = self._write_wait(data, deadline)
                else:
                    done = self._try_write(data)
                if not done:
                    self._write_unit(data, deadline, 0)
                return
        index = 0
        total = len(frames)
        unit = self._unit
        while index < total:
            parts: list[bytes] = []
            refs: list[bytes] = []
            log: list[Any] = []
            size = 0
            stop = index
            try:
                while stop < total:
                    encoded, ref = self._encode(frames[stop])
                    if parts and size + len(encoded) > unit:
                        if ref is not None:
                            discard_block(ref)
                        break
                    parts.append(encoded)
                    if ref is not None:
                        refs.append(ref)
                    size += len(encoded)
                    stop += 1
                self._write_unit(b"".join(parts), deadline, index, log)
            except BaseException:
                # A logged unit is in the kernel: its references will be read, so its
                # blocks must stay (an interrupt right after the write lands here too).
                if not log:
                    for ref in refs:
                        discard_block(ref)
                raise
            index = stop

    # -- lifecycle --------------------------------------------------------------------

    def shutdown(self) -> None:
        """End the stream for every handle; blocked receivers wake and drain."""
        self._shut = True
        self._state.set_shut()
        try:
            self._write_doorbell()
        except Exception:  # noqa: S110, BLE001 - full or gone: the flag and slices still end it
            pass
        self._waker.signal()

    def _put_back(self) -> None:
        """Write the frames this handle took but did not hand out back into the queue.

        Raises ``Full`` if the queue stayed full for :data:`PUT_BACK_WAIT` seconds;
        the frames that did not fit are then lost and their blocks removed.
        """
        ready = self._ready
        if not ready or self._fd < 0:
            return
        give_up = time.monotonic() + PUT_BACK_WAIT
        put = 0
        waiter: select.poll | None = None
        while ready:
            frame = ready[0]
            payload = bytes(frame.payload)
            data = encode_header(frame.serializer_id, frame.flags, len(payload)) + payload
            if self._put_back_unit(data):
                ready.popleft()
                put += 1
                continue
            left = give_up - time.monotonic()
            if left <= 0:
                break
            if waiter is None:
                waiter = select.poll()
                waiter.register(self._fd, _POLLOUT)
            waiter.poll(int(min(left, SLICE) * 1000) + 1)
        if ready:
            lost = len(ready)
            for frame in ready:
                if frame.flags & FLAG_OOB:
                    discard_block(frame.payload)
            ready.clear()
            raise Full(
                f"closing this handle on {self.url}: {lost} message(s) it had taken from "
                f"the queue (the rest of a batch) could not be put back because the queue "
                f"stayed full for {PUT_BACK_WAIT} s; they are lost",
                sent=put,
            )

    def close(self) -> None:
        """Put back what this handle buffered, then release its descriptors and mappings.

        The last handle to close (in any process) removes the queue's out-of-band
        blocks once nothing can read them any more. Raises ``Full`` (after releasing
        everything) if buffered frames could not be put back into a full queue.
        """
        _live.discard(self)
        if self.native_core is not None:
            self.native_core.stop()  # before the descriptor number can be reused
        self._forget_polls()
        try:
            self._put_back()
        finally:
            state = self._state
            try:
                if state.last_holder() and self._blocks_orphaned_at_last_close():
                    sweep_blocks(self._oob_prefix)
            finally:
                self._waker.close()
                self._readiness.close()
                # The kernel object before the state file: an attacher waiting for the
                # hold then finds the old contents gone (see QueueState.attach).
                self._close_kernel_object()
                state.close()

    def unlink(self) -> None:
        """Remove the queue and its state file if they are still this handle's channel.

        Open handles keep working until closed, out-of-band messages included:
        their blocks are removed by the last handle to close, or here when every
        handle closed already. If the name now
        belongs to a newer channel (this one was removed and created again),
        ``unlink()`` does nothing: it never removes a channel this handle was not
        opened on. Idempotent.
        """
        # No handle left (all closed before this): no close() will sweep the blocks of
        # messages nobody took, so this does, once the queue that named them is gone.
        orphaned = self._state.is_current() and nobody_holds(self._state.path)
        self._unlink_kernel_object()
        self._state.unlink()
        if orphaned:
            sweep_blocks(self._oob_prefix)

    def fileno(self) -> int:
        """A descriptor that polls readable whenever a receive would not wait.

        Level-triggered: readable while a unit is queued in the kernel, while this
        handle holds frames it took from the kernel but has not handed out, and
        after the end of the stream. An epoll descriptor, one per handle and
        process; read it only by polling.
        """
        return self._readiness.fileno(
            self._fd, bool(self._ready) or self._eos or self._deferred is not None
        )

    def reducer(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """Rebuild by name and options in the other process (attach, never create)."""
        return self._reducer


def _after_fork_in_child() -> None:
    # Frames buffered before the fork belong to the parent, which hands them out or
    # puts them back; a child's copy must not be delivered (or put back) again.
    for transport in list(_live):
        transport._ready.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
