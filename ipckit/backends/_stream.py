"""Frames over a pair of non-blocking byte-stream descriptors (pipes, sockets).

Invariants:
- A frame is either not started or finished: timeouts and shutdown act only at
  frame boundaries, so the peer never sees a torn frame from a live sender. (A
  sender that dies mid-frame leaves a truncated stream, which the receiver reports
  as ChannelClosed after the complete frames.)
- An interrupt (KeyboardInterrupt, any exception from a signal handler) can escape
  between two writes of one frame. ``_wtorn`` is stored True before a write that
  may leave part of a frame out and False only once the frame is whole, with plain
  stores (a signal handler runs only at calls and backward jumps), so an exception
  escaping in between leaves it set: the handle then ends its sending direction
  (the peer sees the whole frames and then the end of the stream) and every later
  send raises ChannelClosed saying why. Writes the kernel makes all-or-nothing (a
  pipe write of at most PIPE_BUF bytes) need no marker. Each write appends the
  running total to ``_wlog`` inside the same C call, so an interrupt right after
  a write that ended on a frame boundary tears nothing. Reads append their count
  to ``_rlog`` the same way, and the decoder takes each count exactly once
  (``FrameDecoder.commit_from``), so an interrupted receive loses no bytes.
- ``_writing`` is the sender's claim (one sender per handle is the Channel's job;
  the claim only keeps ``shutdown`` from writing end-of-stream into a frame). It
  is taken and released by plain stores, never across a call, so no interrupt can
  leave it held; a forked child drops a claim its parent's thread held.
- The receiver reads in large chunks and decodes every frame in them, so a burst
  of small messages costs one system call, not two per message.
- Waits go through ``poll`` on the data descriptor plus a per-handle eventfd that
  ``interrupt``/``shutdown`` signal; the eventfd is recreated after ``fork`` so a
  child's close never wakes the parent's waiters.
- ``poll`` never reads: with nothing buffered in the handle it asks the kernel, so
  a process that only polls leaves every byte to the other holders of the descriptor.
- ``fileno`` is a :class:`Readiness` (made on first call, per process): readable
  while a frame waits in this handle or bytes in the kernel. Keeping it costs a
  system call only when the handle's buffer turns non-empty or empty, and nothing
  until someone asks for ``fileno``.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

from ipckit import _accel
from ipckit._deadline import Deadline
from ipckit._framing import FLAG_EOS, HEADER_SIZE, Frame, FrameDecoder, encode_header
from ipckit._oserror import os_error_to_ipc
from ipckit._transport import Capabilities, OutFrame, SendParked, TransportStats
from ipckit.backends._fdshare import Offers
from ipckit.backends._readiness import Readiness
from ipckit.backends._wake import Waits
from ipckit.errors import ChannelClosed, Empty, Full, HandleClosed, ProtocolError

__all__ = ["StreamTransport"]

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_POLL_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL
#: Most buffers handed to one writev() (Linux IOV_MAX is 1024).
_IOV_BATCH = 512

_EOS_FRAME = encode_header(0, FLAG_EOS, 0)
_NOSIGNAL = socket.MSG_NOSIGNAL
# The C methods themselves (not bound in Python), so a write is one C call.
_sock_send = socket.socket.send
_sock_sendmsg = socket.socket.sendmsg
#: A write: (function, leading argument iterables, trailing argument iterables).
_WriteCall = tuple[Callable[..., int], tuple[tuple[Any], ...], tuple[tuple[Any], ...]]
#: How long past its deadline a send waits for the peer to take the rest of a frame
#: it has started, before abandoning it (and the stream) rather than hang.
MID_FRAME_GRACE = 5.0

#: Every live transport of this process, for the fork hook.
_LIVE: weakref.WeakSet[StreamTransport] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for transport in list(_LIVE):
        try:
            transport._after_fork()
        except Exception:  # noqa: S110, BLE001 - one handle's trouble must not stop the others
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)


def _ms(deadline: Deadline) -> int | None:
    left = deadline.remaining()
    if left is None:
        return None
    return int(left * 1000) + (0 if left * 1000 == int(left * 1000) else 1)


class StreamTransport(Waits):
    """A duplex (or one-way) frame transport over stream descriptors.

    ``rfd``/``wfd`` may be the same descriptor (a socket) or two (a pipe pair);
    either may be ``None`` for a one-way end. The transport owns them and closes
    them with :meth:`close` (through ``on_close`` when the caller owns an object,
    such as a socket, that must be closed instead).
    """

    def __init__(
        self,
        rfd: int | None,
        wfd: int | None,
        *,
        url: str,
        max_message_size: int,
        capabilities: Capabilities,
        reducer: Callable[[StreamTransport], tuple[Callable[..., object], tuple[object, ...]]]
        | None = None,
        on_close: Callable[[], None] | None = None,
        write: Callable[[int, bytes], int] | None = None,
        writev: Callable[[int, Sequence[bytes | memoryview]], int] | None = None,
        sock: socket.socket | None = None,
        readinto: Callable[[int, memoryview], int] | None = None,
        pending: Callable[[], int] | None = None,
        shutdown_write: Callable[[], None] | None = None,
        write_batch: int = select.PIPE_BUF,
        atomic_writes: bool = False,
        whole_writes: int | None = None,
        is_socket: bool = False,
    ) -> None:
        self.url = url
        self.capabilities = capabilities
        self._rfd = rfd
        self._wfd = wfd
        for fd in {rfd, wfd} - {None}:
            assert fd is not None
            os.set_blocking(fd, False)
        core = _accel.core
        self._decoder: Any = (
            FrameDecoder(max_message_size) if core is None else core.Decoder(max_message_size)
        )
        self._ready: deque[Frame] = deque()
        self._reducer = reducer
        self._on_close = on_close
        # How one write is made: fn(*lead, data, *trail), each given as the iterables
        # map() takes. With a C function the count it returns lands in _wlog in the same
        # C call (see _put); a Python-level writer (TLS) cannot promise that, and then an
        # interrupted send ends the stream whatever the log says (_counted False).
        self._counted = write is None
        target = ((wfd,),)
        if sock is not None:
            # Plain sockets: send/sendmsg themselves, with MSG_NOSIGNAL (no SIGPIPE).
            self._write_call: _WriteCall = (_sock_send, ((sock,),), ((_NOSIGNAL,),))
            self._writev_call: _WriteCall = (_sock_sendmsg, ((sock,),), (((),), (_NOSIGNAL,)))
        elif write is None or writev is None:
            self._write_call = (os.write, target, ())
            self._writev_call = (os.writev, target, ())
        else:
            self._write_call = (write, target, ())
            self._writev_call = (writev, target, ())
        # None: os.readv on the descriptor. A callable serves layers such as TLS, whose
        # bytes must come through an object; it raises BlockingIOError when none are ready.
        self._readinto = readinto
        # Bytes such a layer holds already decrypted (the descriptor cannot show them).
        self._pending = pending
        # Ends the sending direction of a socket (FIN) so the peer sees the end at once.
        self._shutdown_write = shutdown_write
        # Frames are grouped into writes of at most this many bytes. On a pipe,
        # PIPE_BUF makes each write all-or-nothing (pipe(7)), so a timeout never
        # leaves a small frame half-written and needing a reader to finish it.
        self._write_batch = write_batch
        self._atomic = atomic_writes and write_batch <= select.PIPE_BUF
        self._eof = False  # the peer closed its side or sent end-of-stream
        self._broken: ProtocolError | None = None
        self._shut = False  # shutdown() was called on this handle
        self._eos_sent = False
        self._writing = False  # the sender's claim; see the module docstring
        self._wtorn = False  # part of a frame may be out and the rest not
        # Bytes written since the batch began, cumulative, appended by the same C call
        # that writes (see _put); and the totals at which every frame of it is whole.
        self._wlog: list[int] = [0]
        self._wends: list[int] = [0]
        # Byte counts read but not yet recorded by the decoder, appended by the same C
        # call that reads; the decoder takes each exactly once (FrameDecoder.commit_from).
        self._rlog: list[int] = []
        self._init_waits()
        self._flag = Readiness()
        self._offers = Offers()
        #: Park a send that stops mid-frame (SendParked) instead of waiting here: set by
        #: ipckit.aio on the transports it owns.
        self.park_mid_frame = False
        # (rest of the buffers, bytes of the frame left, frames before it, deadline,
        # the frame's payload size).
        self._parked: tuple[list[memoryview], int, int, Deadline, int] | None = None
        # The C core's never-waiting paths (ipckit._core.Stream), or None. It reads and
        # sets this object's fields above, so both paths share one state. Not for
        # layers that must see every byte or frame (TLS, the no-pickle check).
        self.native_core: Any = None
        if core is not None and type(self) is StreamTransport and readinto is None:
            if whole_writes is None:
                # pipe(7): at most PIPE_BUF bytes go into a pipe whole or not at all.
                whole_writes = write_batch if self._atomic else 0
            self.native_core = core.Stream(self, self._decoder, whole_writes, is_socket)
        _LIVE.add(self)

    def _after_fork(self) -> None:
        """In a forked child: drop what belonged to the parent's threads and descriptors."""
        if self._writing:
            # A parent thread was sending: its frame is the parent's to finish, not ours.
            self._writing = False
            self._wtorn = False
            self._parked = None
        self.park_mid_frame = False  # the parent's event loop is not the child's
        offers, self._offers = self._offers, Offers()
        offers.forget()  # our copies of the parent's offered duplicates
        # Frames the parent had already read into this handle are the parent's to hand
        # out (as on mq:// and fifo://): delivering them here too would duplicate them.
        self._ready.clear()

    # -- waiting ----------------------------------------------------------------------

    def _wait_fd(self, sending: bool) -> int:
        fd = self._wfd if sending else self._rfd
        if fd is None:
            if sending and (self._shut or self._eof):
                raise self._closed_for_send()
            raise HandleClosed(f"this end of {self.url} cannot {'send' if sending else 'receive'}")
        return fd

    def _wait(self, fd: int, events: int, deadline: Deadline, reading: bool) -> bool:
        """Wait until ``fd`` is ready; False on timeout. Raises on interrupt."""
        poller = self._poller(fd, events)
        while True:
            if self._interrupted:
                raise HandleClosed(f"this handle on {self.url} was closed")
            result = poller.poll(_ms(deadline))
            if not result:
                return False
            for rfd, _ in result:
                if rfd == fd:
                    return True
            if self._interrupted:
                raise HandleClosed(f"this handle on {self.url} was closed")
            if reading or self._shut:
                return True  # re-check state (shutdown) in the caller

    # -- receiving --------------------------------------------------------------------

    def _read_some(self) -> bool:
        """One non-blocking read; decode what came. False if nothing was ready."""
        rfd = self._rfd
        assert rfd is not None
        decoder = self._decoder
        rlog = self._rlog
        if rlog:
            decoder.commit_from(rlog)  # a read an interrupt cut off from its record
        if self._decode():
            return True  # frames the last read (or the C core's) left in the buffer
        buf = decoder.buffer()
        readinto = self._readinto
        try:
            # The count lands in rlog in the same C call that reads: no interrupt can
            # separate the bytes from their record.
            if readinto is None:
                rlog.extend(map(os.readv, (rfd,), ((buf,),)))
            else:
                rlog.extend(map(readinto, (rfd,), (buf,)))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise os_error_to_ipc(exc, f"reading from {self.url}") from exc
            rlog.append(0)
        del buf
        if rlog[-1] == 0:
            del rlog[-1]
            self._eof = True
            return True
        decoder.commit_from(rlog)
        self._decode()
        return True

    def _decode(self) -> bool:
        """Move every complete frame in the decoder to ``_ready``; True if any (or the end) came."""
        decoder = self._decoder
        ready = self._ready
        got = False
        while True:
            try:
                frame = decoder.next_frame()
            except ProtocolError as exc:
                # Frame boundaries past a bad header are unknowable: the stream is over.
                # The whole frames before it are delivered first (as the C core does).
                self._broken = exc
                if got:
                    return True
                raise
            if frame is None:
                return got
            if frame.flags & FLAG_EOS:
                self._eof = True
                return True
            ready.append(frame)
            got = True

    def _end_of_stream(self) -> ChannelClosed:
        if self._decoder.pending and self._eof:
            return ChannelClosed(
                f"the peer on {self.url} went away in the middle of a message; "
                "every complete message before it was delivered"
            )
        return ChannelClosed(f"end of stream on {self.url}: the peer closed or shut down")

    def _only_sends(self) -> HandleClosed:
        return HandleClosed(f"this end of {self.url} only sends; receive on the other end")

    def recv_frames(self, max_items: int, deadline: Deadline) -> list[Frame]:
        """Return 1..max_items frames; see :class:`~ipckit._transport.Transport`."""
        rfd = self._rfd
        if rfd is None:
            raise self._only_sends()
        ready = self._ready
        try:
            while not ready:
                if self._broken is not None:
                    raise ProtocolError(
                        f"{self.url} is broken by an earlier corrupt frame ({self._broken}); "
                        "close this channel and reconnect"
                    )
                if self._eof:
                    raise self._end_of_stream()
                if self._read_some():
                    continue
                if self._shut:
                    raise ChannelClosed(f"{self.url} was shut down and nothing is left")
                if deadline.nonblocking or not self._wait(rfd, _POLLIN, deadline, True):
                    raise Empty(f"no message on {self.url} within timeout={deadline.timeout}")
            if max_items == 1:
                return [ready.popleft()]
            out: list[Frame] = []
            while ready and len(out) < max_items:
                out.append(ready.popleft())
            return out
        finally:
            if self._flag.armed:
                self._sync_flag()

    def _sync_flag(self) -> None:
        """Keep ``fileno()`` readable exactly while a receive would not wait.

        Lowering re-checks afterwards, because ``shutdown`` in another thread may
        have raised it meanwhile.
        """
        flag = self._flag
        extra = self._pending is not None and self._pending() > 0
        if self._ready or self._eof or self._shut or self._broken or self._rlog or extra:
            flag.mark()
        elif flag.marked:
            flag.clear()
            if self._ready or self._eof or self._shut:
                flag.mark()

    def poll(self, deadline: Deadline) -> bool:
        """True when a frame, the end of the stream or bytes in the kernel are ready.

        Never reads: with nothing buffered in this handle it asks the kernel, so the
        bytes stay there for whichever holder of the descriptor receives them.
        """
        rfd = self._rfd
        if rfd is None:
            raise self._only_sends()
        if self._ready or self._eof or self._shut or self._broken or self._rlog:
            return True
        if self._pending is not None and self._pending() > 0:
            return True
        return self._wait(rfd, _POLLIN, deadline, True)

    # -- sending ----------------------------------------------------------------------

    def _send_torn(self) -> ChannelClosed:
        return ChannelClosed(
            f"a previous send on {self.url} stopped mid-frame (interrupted by KeyboardInterrupt "
            "or another exception from a signal handler, or abandoned because the peer read "
            "nothing), so nothing more can follow it on this stream: the peer receives every "
            "whole message sent before it and then the end of the stream; close this channel "
            "(ChannelClosed: its sending direction is over)"
        )

    def send_frames(self, frames: Sequence[OutFrame], deadline: Deadline) -> None:
        """Write every frame in order; ``Full(sent=k)`` if time runs out between frames."""
        if self._parked is not None:
            raise Full(f"another call is sending on {self.url} (mid-frame, in an event loop)")
        if self._wtorn:
            if not self._writing and self._wfd is not None:
                # Left by the C core, whose write the kernel tore although it should
                # take it whole: end the stream as an interrupted write here would.
                self._writing = True
                try:
                    self._end_writes()
                finally:
                    self._writing = False
            raise self._send_torn()
        wfd = self._wfd
        if wfd is None:
            if self._shut or self._eof:
                raise self._closed_for_send()
            raise HandleClosed(f"this end of {self.url} only receives")
        if self._writing:
            if self._shut:
                raise self._closed_for_send()
            raise Full(f"another call is sending on {self.url} (a signal handler mid-send?)")
        self._writing = True
        try:
            if len(frames) == 1 and frames[0].nbytes + HEADER_SIZE <= self._write_batch:
                self._send_one_small(wfd, frames[0], deadline)
            else:
                self._send_vectored(wfd, frames, deadline)
        finally:
            # An interrupt right after a write returned: the log says whether it ended on
            # a frame boundary (then nothing is torn). Loads and a test only, no call.
            # (mypy narrows _wtorn to False from the check above; a write changes it.)
            if self._wtorn and self._counted and self._wlog[-1] in self._wends:  # type: ignore[unreachable]
                self._wtorn = False  # type: ignore[unreachable]
            # No call between the test and the release, so shutdown() sees either the
            # claim still held (we write its end-of-stream) or released (it writes it).
            # (mypy narrows _parked to None from the check above; a write may park.)
            if self._parked is not None:
                pass  # type: ignore[unreachable]  # mid-frame in a loop: resume_send()'s claim
            elif self._wtorn or (self._shut and not self._eos_sent):
                try:
                    self._end_writes()
                finally:
                    self._writing = False
            else:
                self._writing = False

    def resume_send(self, give_up: bool) -> bool:
        """Write more of the frame a :class:`SendParked` left; True once it is out whole.

        See :meth:`ipckit._transport.Transport.resume_send`. Holds the sender's claim
        from the send that parked until the frame is out or abandoned. ``give_up``
        abandons it without raising (False); a later call for it raises
        ``ChannelClosed``, as every later send does.
        """
        parked = self._parked
        if parked is None:
            if give_up or self._wfd is not None:
                return True  # nothing parked: nothing to finish or abandon
            raise self._send_torn()  # abandoned meanwhile (aclose() from another task)
        bufs, remaining, sent, deadline, nbytes = parked
        wfd = self._wfd
        try:
            self._parked = None
            if give_up:
                return False  # _wtorn stays set: the release below ends the direction
            if wfd is None or self._interrupted:
                raise HandleClosed(f"this handle on {self.url} was closed mid-message")
            self._write_rest(wfd, bufs, deadline, sent=sent, until=remaining, nbytes=nbytes)
            self._wtorn = False
            return True
        except SendParked:
            return False
        finally:
            # send_frames's release, written out again on purpose: as a helper it would
            # put a Python call (where a signal handler can run) between the claim's
            # test and its release, and an interrupt there would keep the claim for ever.
            if self._wtorn and self._counted and self._wlog[-1] in self._wends:
                self._wtorn = False
            if self._parked is not None:
                pass  # parked again: still ours
            elif self._wtorn or (self._shut and not self._eos_sent):
                try:
                    self._end_writes()
                finally:
                    self._writing = False
            else:
                self._writing = False

    def _closed_for_send(self) -> ChannelClosed:
        if self._shut:
            return ChannelClosed(f"{self.url} was shut down; no more messages can be sent")
        return ChannelClosed(f"the peer on {self.url} has closed or shut down the channel")

    def _send_one_small(self, wfd: int, frame: OutFrame, deadline: Deadline) -> None:
        data = encode_header(frame.serializer_id, frame.flags, frame.nbytes) + frame.payload
        guard = not self._atomic
        while True:
            if self._shut or self._eof:
                raise self._closed_for_send()
            self._wtorn = guard
            self._wlog = [0]
            self._wends = [0, len(data)]
            try:
                n = self._put(self._write_call, data)
            except (BlockingIOError, InterruptedError):
                self._wtorn = False  # nothing was written
                if deadline.nonblocking or not self._wait(wfd, _POLLOUT, deadline, False):
                    raise Full(f"{self.url} stayed full for timeout={deadline.timeout}") from None
                continue
            except OSError as exc:
                self._wtorn = False
                raise os_error_to_ipc(exc, f"writing to {self.url}") from exc
            if n < len(data):
                # A socket took part of it: finish the frame whatever the deadline.
                self._write_rest(wfd, [memoryview(data)[n:]], deadline, sent=0, nbytes=frame.nbytes)
            self._wtorn = False
            return

    def _send_vectored(self, wfd: int, frames: Sequence[OutFrame], deadline: Deadline) -> None:
        index = 0
        total = len(frames)
        atomic = self._atomic
        while index < total:
            if self._shut or self._eof:
                raise self._closed_for_send()
            stop = min(total, index + _IOV_BATCH // 2)
            bufs: list[bytes | memoryview] = []
            ends: list[int] = []
            size = 0
            limit = self._write_batch
            for f in frames[index:stop]:
                step = HEADER_SIZE + f.nbytes
                if ends and size + step > limit:
                    break
                bufs.append(encode_header(f.serializer_id, f.flags, f.nbytes))
                if f.nbytes:
                    bufs.append(memoryview(f.payload).cast("B"))
                size += step
                ends.append(size)
            self._wtorn = not atomic or size > limit
            self._wlog = [0]
            self._wends = [0, *ends]
            try:
                n = self._put(self._writev_call, bufs)
            except (BlockingIOError, InterruptedError):
                self._wtorn = False  # nothing was written
                if deadline.nonblocking or not self._wait(wfd, _POLLOUT, deadline, False):
                    raise Full(
                        f"{self.url} stayed full for timeout={deadline.timeout}", sent=index
                    ) from None
                continue
            except OSError as exc:
                self._wtorn = False
                raise os_error_to_ipc(exc, f"writing to {self.url}") from exc
            done = 0
            while done < len(ends) and ends[done] <= n:
                done += 1
            if done < len(ends) and n > (ends[done - 1] if done else 0):
                # Part of a frame is out: finish that frame, ignoring the deadline.
                self._write_rest(
                    wfd,
                    _skip(bufs, n),
                    deadline,
                    sent=index + done,
                    until=ends[done] - n,
                    nbytes=frames[index + done].nbytes,
                )
                done += 1
            self._wtorn = False
            index += done

    def _put(self, call: _WriteCall, data: Any) -> int:
        """Write once; the running total lands in ``_wlog`` in the same C call."""
        fn, lead, trail = call
        log = self._wlog
        before = log[-1]
        log.extend(accumulate(map(fn, *lead, (data,), *trail), initial=before))
        del log[-2]  # the initial value accumulate repeats
        return log[-1] - before

    def _write_rest(
        self,
        wfd: int,
        bufs: list[memoryview],
        deadline: Deadline,
        *,
        sent: int,
        until: int | None = None,
        nbytes: int = 0,
    ) -> None:
        """Finish a started frame: write ``until`` more bytes (default: all of ``bufs``).

        A started frame is finished past the caller's deadline (a socket can take
        part of a frame; the rest must follow or the stream is torn), but not for
        ever: if the peer reads nothing for ``MID_FRAME_GRACE`` seconds beyond it,
        the frame is abandoned, the sending direction ends (the peer sees every whole
        message, then the end) and ``Full`` says so. ``timeout=None`` waits for ever.
        """
        left = deadline.remaining()
        finish = deadline if left is None else Deadline(left + MID_FRAME_GRACE)
        remaining = sum(b.nbytes for b in bufs) if until is None else until
        while remaining:
            take: list[memoryview] = []
            size = 0
            for b in bufs:
                if size >= remaining:
                    break
                piece = b[: remaining - size]
                take.append(piece)
                size += piece.nbytes
            try:
                n = self._put(self._writev_call, take)
            except (BlockingIOError, InterruptedError):
                if self.park_mid_frame:
                    # An event loop waits for room instead of this thread; one store
                    # records everything resume_send() needs.
                    self._parked = (bufs, remaining, sent, deadline, nbytes)
                    raise SendParked(
                        f"{self.url}: mid-frame, waiting for room", sent=sent, nbytes=nbytes
                    ) from None
                if not self._wait_writable(wfd, finish):
                    raise self._abandoned(deadline, sent) from None
                continue
            except OSError as exc:
                err = os_error_to_ipc(exc, f"writing to {self.url}")
                if isinstance(err, ChannelClosed):
                    self._wtorn = False  # the reader is gone: no stream is left to protect
                raise err from exc
            remaining -= n
            bufs = _skip(take, n)

    def _abandoned(self, deadline: Deadline, sent: int) -> Full:
        return Full(
            f"the peer on {self.url} read nothing for {MID_FRAME_GRACE:g} s in the "
            "middle of a message, past timeout="
            f"{deadline.timeout}: the message was abandoned and this handle's "
            "sending direction is closed (the peer gets every whole message "
            "before it); close this channel",
            sent=sent,
        )

    def _wait_writable(self, wfd: int, deadline: Deadline) -> bool:
        """Wait until ``wfd`` takes bytes (or fails); False when ``deadline`` passes."""
        poller = self._poller(wfd, _POLLOUT)
        while True:
            ready = poller.poll(_ms(deadline))
            if not ready and deadline.expired():
                return False
            for fd, events in ready:
                if fd == wfd and events & (_POLLOUT | _POLL_BAD):
                    return True
            if self._interrupted:
                # Mid-frame and the handle is closing: the frame cannot be finished.
                raise HandleClosed(f"this handle on {self.url} was closed mid-message")

    # -- lifecycle --------------------------------------------------------------------

    def _end_writes(self) -> None:
        """Under the sender's claim: end-of-stream after shutdown, or abandon a torn frame."""
        if self._wtorn:
            self._eos_sent = True  # an end-of-stream frame inside a frame would be garbage
            self._close_write()
        elif self._shut and not self._eos_sent:
            self._finish_shutdown()

    def _finish_shutdown(self) -> None:
        self._eos_sent = True
        wfd = self._wfd
        if wfd is None:
            return
        fn, lead, trail = self._write_call
        try:
            fn(*(x for (x,) in lead), _EOS_FRAME, *(x for (x,) in trail))
        except OSError:
            pass  # peer gone or pipe full: closing the descriptor below still ends the stream
        self._close_write()

    def _close_write(self) -> None:
        wfd, self._wfd = self._wfd, None
        self._forget_polls()
        if wfd is None:
            return
        if wfd != self._rfd:
            os.close(wfd)
        elif self._shutdown_write is not None:
            try:
                self._shutdown_write()
            except OSError:
                pass  # not connected any more: the peer has seen the end already

    def shutdown(self) -> None:
        """Send end-of-stream to the peer and stop sending; receivers drain, then end."""
        if self._shut:
            return
        self._shut = True
        if not self._writing:
            # No sender: take the claim (a store right after the test, no call between).
            self._writing = True
            try:
                if not self._eos_sent and not self._wtorn:
                    self._finish_shutdown()
            finally:
                self._writing = False
        self._waker.signal()
        if self._flag.armed:
            self._sync_flag()

    def close(self) -> None:
        """Close every descriptor this handle owns."""
        if self.native_core is not None:
            self.native_core.stop()  # before the descriptor numbers can be reused
        rfd, wfd = self._rfd, self._wfd
        self._rfd = self._wfd = None
        self._forget_polls()
        self._offers.revoke()
        self._flag.close()
        self._waker.close()
        _LIVE.discard(self)
        if self._on_close is not None:
            self._on_close()
            return
        for fd in {rfd, wfd} - {None}:
            assert fd is not None
            os.close(fd)

    def unlink(self) -> None:
        """Nothing to remove: stream channels have no name that outlives them."""

    def stats(self) -> TransportStats:
        """Streams know no message counts beyond this handle's own."""
        return TransportStats()

    def fileno(self) -> int:
        """A descriptor that polls readable while a frame is ready here or in the kernel.

        Level-triggered and exact for frames this handle has already decoded; bytes
        of an incomplete frame in the kernel also make it readable (a receive then
        finds nothing whole, as with any stream). Made in each process on first use.
        """
        rfd = self._rfd
        if rfd is None:
            raise HandleClosed(f"this end of {self.url} has no receiving descriptor")
        flag = self._flag
        if flag.armed:
            return flag.fileno(rfd, False)
        fd = flag.fileno(rfd, False)
        self._sync_flag()
        return fd

    def read_fd(self) -> int | None:
        """The receiving descriptor, or None (for reducers)."""
        return self._rfd

    def write_fd(self) -> int | None:
        """The sending descriptor, or None (for reducers)."""
        return self._wfd

    def pickled_fds(self, fds: tuple[int | None, ...]) -> object:
        """A picklable handle on ``fds`` (see ``_fdshare``); offers die with this handle."""
        return self._offers.pickled(fds, self.url)

    def reducer(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        """How to rebuild this end in a child process."""
        if self._reducer is None:
            raise TypeError(f"a channel on {self.url} cannot be passed to another process")
        return self._reducer(self)


def _skip(bufs: Sequence[bytes | memoryview], n: int) -> list[memoryview]:
    """The buffers left after the first ``n`` bytes of ``bufs`` were written."""
    out: list[memoryview] = []
    for b in bufs:
        view = b if isinstance(b, memoryview) else memoryview(b)
        if n >= view.nbytes:
            n -= view.nbytes
            continue
        out.append(view[n:])
        n = 0
    return out
