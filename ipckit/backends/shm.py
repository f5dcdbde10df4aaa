"""``shm://NAME``: a bounded many-producer many-consumer queue in shared memory.

One POSIX shared-memory segment (:mod:`ipckit.backends._segment`) holds the header and a ring of
variable-size records (layout and invariants in :mod:`ipckit.backends._ring`).
Producers share one lock and consumers another (the two-lock queue of Michael
and Scott), so a sender and a receiver never wait for each other. Each lock is
a POSIX semaphore whose holder records its pid in the header; survivors take a
dead holder's lock over (:class:`ipckit._sync.RobustLock`). Two more semaphores
are doorbells that wake sleeping receivers and senders. Messages bigger than
half the ring travel out of band in one-off blocks (:mod:`ipckit._oob`).

Recovery needs no repair step: a producer publishes ``tail`` only after its
record is complete and a consumer moves ``head`` only after copying, so a
process killed at any point leaves either the old state or the new one. A dirty
mark set under each lock counts such deaths in ``stats().extra["recoveries"]``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import stat
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ipckit import _accel, _oob
from ipckit._critical import run_all
from ipckit._deadline import Deadline
from ipckit._framing import FLAG_OOB, Frame
from ipckit._names import check_names
from ipckit._oserror import no_space_error, translate_os_errors
from ipckit._sync import WAIT_SLICE, Doorbell, LockBusy, RobustLock
from ipckit._transport import Capabilities, NamedBackend, OutFrame, TransportStats
from ipckit._url import Endpoint, OptionSpec
from ipckit.backends import _ring as ring
from ipckit.backends._loopbell import LoopBell
from ipckit.backends._segment import Segment
from ipckit.errors import (
    ChannelClosed,
    ChannelExists,
    ChannelNotFound,
    ConfigurationError,
    Empty,
    Full,
    HandleClosed,
    MessageTooLarge,
    ProtocolError,
)

__all__ = ["BACKENDS", "ShmBackend", "ShmTransport"]

_T = TypeVar("_T")
_A = TypeVar("_A")

SHM_CAPABILITIES = Capabilities(
    native_message_size=None,
    many_producers=True,
    many_consumers=True,
    has_fileno=False,
    named=True,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
#: Every object one channel makes, by the name it takes in /dev/shm (semaphores are
#: "sem." files there), so a name too long for any of them is refused before any is made.
NAME_TEMPLATES = (
    ("its segment", "ikshm.{}"),
    ("its semaphores", "sem.ikshm.{}~items"),
    ("its lock recovery files", "ikshm.{}~srecover"),
    ("its event-loop doorbells", "ikshm.{}~rbell"),
    ("its out-of-band blocks", "ikshm.{}~0123456789abcdef.oob.0123456789abcdef"),
)
# Header words are read and written through memoryviews cast to "Q"/"I": an item
# store is one aligned machine-word copy, so another process never sees a torn
# index. struct.pack_into is not safe here: CPython zeroes the target before
# packing into it (s_pack_internal), and a reader could see the zero.
_ATTACH_WAIT = 2.0
#: How much longer an attacher waits for a creator that is alive but not done yet.
_CREATOR_STALL = 60.0
# References to a lent window while nothing else views it: the _Lend's slot and
# getrefcount's argument.
_WINDOW_REFS = 2
#: ``wait`` of :meth:`ShmTransport._locked` (by identity) that goes on with a critical
#: section a lend kept open: the lock is held already and the dirty mark set.
_LENT = Deadline(0.0)

# Word indices of the header fields in the "Q" (8-byte) and "I" (4-byte) views.
_HEAD = ring.HEAD // 8
_TAIL = ring.TAIL // 8
_MSGS_IN = ring.MSGS_IN // 8
_MSGS_OUT = ring.MSGS_OUT // 8
_BYTES_IN = ring.BYTES_IN // 8
_BYTES_OUT = ring.BYTES_OUT // 8
_HIGH_WATER = ring.HIGH_WATER // 8
_RECOVERIES_SEND = ring.RECOVERIES_SEND // 8
_RECOVERIES_RECV = ring.RECOVERIES_RECV // 8
_BLOCKED_SEND = ring.BLOCKED_SEND // 8
_BLOCKED_RECV = ring.BLOCKED_RECV // 8
_READY = ring.READY // 4
_FLAGS = ring.FLAGS // 4
_SEND_WAITERS = ring.SEND_WAITERS // 4
_RECV_WAITERS = ring.RECV_WAITERS // 4
_DIRTY_SEND = ring.DIRTY_SEND // 4
_DIRTY_RECV = ring.DIRTY_RECV // 4
_SEND_OWNER = ring.SEND_OWNER // 4
_SEND_GEN = ring.SEND_GEN // 4
_RECV_OWNER = ring.RECV_OWNER // 4
_RECV_GEN = ring.RECV_GEN // 4
_ASYNC_RECV = ring.ASYNC_RECV_WAITERS // 4
_ASYNC_SEND = ring.ASYNC_SEND_WAITERS // 4


class _Names:
    """Every OS object one channel uses, derived from its name."""

    def __init__(self, name: str) -> None:
        check_names(f"shm://{name}", name, NAME_TEMPLATES)
        if not _NAME_RE.match(name) or name in (".", ".."):
            raise ConfigurationError(
                f"shm:// name {name!r} must be letters, digits, '.', '_' or '-' only"
            )
        self.name = name
        # "~" cannot appear in a name, so no object of one channel can be mistaken for
        # another channel's ("a~srecover" is never the segment of a channel "a.srecover").
        self.segment = f"ikshm.{name}"
        self.items = f"/ikshm.{name}~items"
        self.space = f"/ikshm.{name}~space"
        self.send_sem = f"/ikshm.{name}~slock"
        self.recv_sem = f"/ikshm.{name}~rlock"
        self.send_recovery = f"{_oob.SHM_DIR}/ikshm.{name}~srecover"
        self.recv_recovery = f"{_oob.SHM_DIR}/ikshm.{name}~rrecover"
        self.data_bell = f"{_oob.SHM_DIR}/ikshm.{name}~rbell"
        self.room_bell = f"{_oob.SHM_DIR}/ikshm.{name}~sbell"
        self.oob_prefix = f"ikshm.{name}~"


class _Lend:
    """A record ``recv_view`` lent in place; while it is ``lock.lent`` the lock stays held.

    Calling it (``forced``) gives the record back, see :meth:`ShmTransport._give_back`:
    the object is its own give-back callable, which costs less per view than a
    ``partial`` over a method.
    """

    __slots__ = ("after", "forced", "keep", "length", "transport", "unmap", "view", "window")

    def __init__(  # noqa: PLR0917 - one per lent view, built in one place
        self,
        transport: ShmTransport,
        after: int,
        length: int,
        view: memoryview,
        window: Any,
        unmap: Callable[[], None] | None,
    ) -> None:
        self.transport = transport
        self.after = after  # the head once the record is taken
        self.length = length
        self.view = view
        self.window = window  # the in-place window (see _borrow), or None
        self.unmap = unmap  # unmaps and removes an out-of-band block, or None
        self.forced = False  # give back whatever still views the bytes (close())
        self.keep = False  # end the lend without taking the record

    def __call__(self, forced: bool) -> None:
        self.forced = forced
        t = self.transport
        if t._locked(t._recv_lock, _DIRTY_RECV, _RECOVERIES_RECV, _LENT, _END_LEND, self):
            t._wake(False)


_LIVE: weakref.WeakSet[ShmTransport] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for transport in list(_LIVE):
        transport._reopen_locks()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ShmTransport:
    """One handle on a shared-memory queue."""

    capabilities = SHM_CAPABILITIES
    park_mid_frame = False  # records are committed whole: nothing ever parks mid-frame

    def __init__(
        self,
        names: _Names,
        *,
        create: bool,
        capacity: int,
        max_message_size: int,
        spin: float,
        mode: int,
    ) -> None:
        self.url = f"shm://{names.name}"
        self._names = names
        self._spin = spin
        self._mode = mode
        self._interrupted = False
        self._closed = False
        self._shm: Segment | None = None
        self._locks: list[RobustLock] = []
        self._bells: list[Doorbell] = []
        # The FIFOs event loops wait on (ipckit.aio), or None for a channel made without
        # them; see ipckit.backends._loopbell.
        self._data_bell: LoopBell | None = None
        self._room_bell: LoopBell | None = None
        self._made_segment = False
        self._saw_oob = False
        self._committed = 0
        self._max = max_message_size
        self._ino = -1  # the segment's inode: which channel of this name is ours
        # The C core's never-waiting paths over the same segment and semaphores, or None.
        self.native_core: Any = None
        try:
            if create:
                self._create(capacity, max_message_size)
            else:
                self._attach()
        except BaseException:
            self._release()
            if self._made_segment and self._still_ours():
                # Only what this call created: a clash must not remove the owner's queue,
                # nor a channel made under the name after this one was removed.
                remove(self._names.name, blocks=False)
            raise

    # -- lifecycle --------------------------------------------------------------------

    def _create(self, capacity: int, max_message_size: int) -> None:
        names = self._names
        capacity = ring.align(capacity)
        if capacity < ring.MIN_CAPACITY:
            raise ConfigurationError(
                f"capacity must be at least {ring.MIN_CAPACITY} bytes (4KiB), not {capacity}"
            )
        size = ring.DATA_OFFSET + capacity
        shm_path = f"{_oob.SHM_DIR}/{names.segment}"
        with translate_os_errors(f"creating {self.url}"):
            try:
                self._shm = shm = Segment.create(names.segment, size, self._mode)
                self._ino = shm.ino
                self._made_segment = True
            except FileExistsError:
                raise ChannelExists(
                    f"{self.url} already exists; attach with ipckit.open({self.url!r}) or "
                    "remove it with unlink() (or `ipckit rm`)"
                ) from None
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise no_space_error(
                        f"creating {self.url} (pass a smaller capacity=)", shm_path, size
                    ) from exc
                raise
        buf = shm.buf
        ring.META.pack_into(
            buf, 0, ring.MAGIC, ring.VERSION, 0, capacity, max_message_size, 0, os.getpid()
        )
        self._setup(buf, capacity, max_message_size)
        self._open_sync(create=True, words=self._w)
        self._w[_READY] = 1  # last: attachers wait for this

    def _attach(self) -> None:
        names = self._names
        deadline = time.monotonic() + _ATTACH_WAIT
        while True:
            shm = self._map_existing(names, deadline)
            size = shm.size
            buf = shm.buf
            # A creator between shm_open and writing the header shows a short or zeroed
            # segment for a moment: that is "not ready yet", not "not ours".
            try:
                if size >= ring.DATA_OFFSET and bytes(buf[:8]) != bytes(8):
                    ready, capacity, max_message = ring.check_meta(buf, size)
                    if ready:
                        break
            except BaseException:
                shm.close()  # not ours: a ProtocolError, with nothing left open
                raise
            shm.close()
            if self._creator_gone(deadline):
                raise self._never_finished()
            time.sleep(0.005)
        self._shm = shm
        info = os.fstat(shm.fd)
        self._ino = info.st_ino
        # Blocks this handle makes get the creator's permission bits, not a default.
        self._mode = stat.S_IMODE(info.st_mode)
        self._setup(buf, capacity, max_message)
        self._open_sync(create=False, words=self._w)

    def _creator_gone(self, deadline: float) -> bool:
        """Past the wait, and no process holds the unfinished segment (its creator died).

        A live creator holds it from the moment it exists: reserving many GiB takes
        seconds, so it gets up to _CREATOR_STALL more before it counts as stalled.
        """
        now = time.monotonic()
        if now <= deadline:
            return False
        held = not _oob.nobody_holds(f"{_oob.SHM_DIR}/{self._names.segment}")
        return not held or now > deadline + _CREATOR_STALL

    def _never_finished(self) -> ProtocolError:
        return ProtocolError(
            f"{self.url} exists but was never finished: its creator died (or stalled) while "
            "creating it; remove it with unlink() (or `ipckit rm`/`ipckit gc`) and "
            "create it again"
        )

    def _map_existing(self, names: _Names, deadline: float) -> Segment:
        while True:
            with translate_os_errors(f"attaching to {self.url}"):
                try:
                    shm = Segment.attach(names.segment)
                except FileNotFoundError:
                    raise ChannelNotFound(
                        f"{self.url} does not exist; create it with "
                        f"ipckit.open({self.url!r}, create=True)"
                    ) from None
            if shm is not None:
                return shm
            # An empty segment: its creator has not sized it yet, or died first.
            if self._creator_gone(deadline):
                raise self._never_finished()
            time.sleep(0.001)

    def _open_sync(self, create: bool, words: memoryview) -> None:
        names = self._names
        self._send_lock = RobustLock(
            names.send_sem,
            names.send_recovery,
            words,
            _SEND_OWNER,
            _SEND_GEN,
            create=create,
            mode=self._mode,
        )
        self._locks.append(self._send_lock)
        self._recv_lock = RobustLock(
            names.recv_sem,
            names.recv_recovery,
            words,
            _RECV_OWNER,
            _RECV_GEN,
            create=create,
            mode=self._mode,
        )
        self._locks.append(self._recv_lock)
        self._items = Doorbell(names.items, create=create, mode=self._mode)
        self._bells.append(self._items)
        self._space = Doorbell(names.space, create=create, mode=self._mode)
        self._bells.append(self._space)
        try:
            with translate_os_errors(f"opening the event-loop doorbells of {self.url}"):
                self._data_bell = LoopBell(names.data_bell, create=create, mode=self._mode)
                self._room_bell = LoopBell(names.room_bell, create=create, mode=self._mode)
        except ChannelNotFound:
            if create:
                raise
            # Made by an ipckit without them: only event loops go without (readiness()).
        # Every handle holds a shared flock on its segment descriptor (dropped by the
        # kernel when the process dies), so the last one can tell it is the last.
        assert self._shm is not None
        self._shm.hold.take()
        # Out-of-band blocks of this channel (not of a later one of the same name).
        self._oob_prefix = f"{names.oob_prefix}{self._ino:x}"
        _LIVE.add(self)
        self.native_core = self._make_core()

    def _make_core(self) -> Any:
        core = _accel.core
        if core is None:
            return None
        names = self._names
        try:
            native = core.Ring(
                self._buf,
                self._capacity,
                self._segment_max,
                self._max,
                names.send_sem,
                names.recv_sem,
                names.items,
                names.space,
                self._send_lock.pid,
                self._send_lock.token,
                self._recv_lock.token,
            )
        except (OSError, ValueError):
            return None  # the pure path serves this handle
        # With spin= the pure path spins before it sleeps; without, the core sleeps on
        # the doorbell itself (the same waiter count and semaphores as _send_some and
        # recv_frames), which saves the Python round on every wake-up.
        native.set_waits(not self._spin)
        if self._data_bell is not None and self._room_bell is not None:
            native.set_bells(self._data_bell.fd, self._room_bell.fd)
        return native

    def _reopen_locks(self) -> None:
        """After fork: the child's own lock descriptors and its own holder lock."""
        for lock in self._locks:
            lock.reopen()
        if self.native_core is not None:
            self.native_core.rebind(self._send_lock.pid)
        # The segment's hold is the child's own already (ipckit.backends._hold).

    def _last_holder(self) -> bool:
        """True when no other handle (in any process) has this channel open."""
        shm = self._shm
        return shm is not None and shm.hold.is_last_closing()

    def _still_ours(self) -> bool:
        """True while the name leads to the segment this handle made or attached."""
        return not self._renamed()

    def _renamed(self) -> bool:
        """True when the name no longer leads to this handle's segment (unlinked)."""
        try:
            return os.stat(f"{_oob.SHM_DIR}/{self._names.segment}").st_ino != self._ino
        except FileNotFoundError:
            return True

    def _setup(self, buf: memoryview, capacity: int, segment_max: int) -> None:
        self._buf = buf
        self._q = buf.cast("Q")
        self._w = buf.cast("I")
        self._capacity = capacity
        # The creator's limit bounds every record structurally; this handle's own
        # max_message_size (an attacher's may be smaller) is what it accepts.
        self._segment_max = segment_max
        self._inline = ring.inline_limit(capacity)

    def _release(self) -> None:
        _LIVE.discard(self)
        native, self.native_core = self.native_core, None
        if native is not None:
            native.release()  # its buffer export would keep the segment from closing
        recv_lock: RobustLock | None = getattr(self, "_recv_lock", None)  # None: opening failed
        if recv_lock is not None and recv_lock.lent is not None:
            # A lend the Channel never got hold of (an interrupt struck between the
            # borrow and the view's making): the message goes to another receiver.
            self._drop_lend(forced=True)
        for lock in self._locks:
            lock.close()
        for bell in self._bells:
            bell.close()
        self._locks.clear()
        self._bells.clear()
        for loop_bell in (self._data_bell, self._room_bell):
            if loop_bell is not None:
                loop_bell.close()  # after native.release(): the core writes to them
        shm, self._shm = self._shm, None
        if shm is not None:
            for view in ("_q", "_w"):
                if hasattr(self, view):
                    getattr(self, view).release()
            self._buf = self._q = self._w = memoryview(b"")
            shm.close()

    def close(self) -> None:
        """Detach this handle; the queue lives on for the others.

        The last handle of an unlinked channel removes the out-of-band blocks of big
        messages nobody took (unlink() leaves them while handles are open).
        """
        if not self._closed:
            self._closed = True
            try:
                if self._shm is not None and self._renamed() and self._last_holder():
                    _oob.sweep_blocks(self._oob_prefix)
            finally:
                self._release()

    def unlink(self) -> None:
        """Remove the segment, semaphores, lock files and any out-of-band blocks.

        Handles already open keep working, big (out-of-band) messages included;
        the last of them to close removes what is left. Idempotent. Does nothing
        when the name now belongs to another channel (removed and created again
        since this handle opened it): a stale handle never removes a newer channel.
        """
        try:
            ino = os.stat(f"{_oob.SHM_DIR}/{self._names.segment}").st_ino
        except FileNotFoundError:
            return
        if ino != self._ino:
            return
        # Handles still open keep receiving, big messages included: their blocks go
        # with the last of them (close()), unless none is left: this one is the last,
        # or every handle closed before the unlink (then no close() will come).
        segment = f"{_oob.SHM_DIR}/{self._names.segment}"
        # An open handle leaves the blocks to the last close() (it may still receive
        # them), as mq:// and fifo:// do.
        orphaned = self._shm is None and _oob.nobody_holds(segment)
        remove(self._names.name, blocks=False)
        if orphaned:
            _oob.sweep_blocks(self._oob_prefix)

    def interrupt(self) -> None:
        """Wake this handle's blocked calls (they poll the flag every slice)."""
        self._interrupted = True
        if self.native_core is not None:
            self.native_core.stop()
        if self._bells:
            self._items.ring()
            self._space.ring()

    def shutdown(self) -> None:
        """Mark the queue finished for every handle and wake every sleeper."""
        w = self._w

        def mark(_t: object = None, _: None = None) -> bool:
            w[_FLAGS] = w[_FLAGS] | ring.SHUT_FLAG
            return True

        # Under the send lock, so no record is committed after receivers saw the end; a
        # lock that stays busy for a second (a SIGSTOPped holder) must not stop shutdown.
        if (
            self._locked(self._send_lock, _DIRTY_SEND, _RECOVERIES_SEND, Deadline(1.0), mark, None)
            is None
        ):
            mark()
        self._items.ring(w[_RECV_WAITERS] + 1)
        self._space.ring(w[_SEND_WAITERS] + 1)
        for loop_bell in (self._data_bell, self._room_bell):
            if loop_bell is not None:
                loop_bell.ring()

    def _is_shut(self) -> bool:
        return bool(self._w[_FLAGS] & ring.SHUT_FLAG)

    def _gone(self) -> bool:
        return self._interrupted

    # -- the critical section ---------------------------------------------------------

    def _locked(  # noqa: PLR0917 - positional on purpose: every message runs it
        self,
        lock: RobustLock,
        dirty_at: int,
        recoveries_at: int,
        wait: Deadline | None,
        work: Callable[[ShmTransport, _A], _T],
        arg: _A,
    ) -> _T | None:
        """Run ``work(self, arg)`` holding ``lock``: the one critical section of this module.

        ``wait=None`` takes the lock only if it is free now. Returns ``None`` when the
        lock was not taken in time (``work`` must not return ``None`` itself). The
        lock is taken and its owner recorded in one step, and given back by plain
        stores and one call first in ``finally``, so no interrupt (Ctrl-C) at any
        point can leave it held (see :mod:`ipckit._critical`).

        A work that lends the held lock on (``recv_view``) stores the lend in
        ``lock.lent`` as its last step: ``finally`` then leaves the lock held, and
        the lend finishes the section later through ``wait=_LENT`` with ``arg`` the
        lend, whose work clears ``lock.lent`` in the same run of plain stores that
        completes it. Either the lend is recorded or the lock is given back, with no
        point in between where an interrupt could lose it. ``wait=_LENT`` for a lend
        given back already returns ``None`` and touches nothing.

        ``work`` is a plain function of the transport (the hot ones are taken from
        the class once, ``_PUT_ONE`` and its neighbours), not a bound method or a
        closure made per call. Measured on the pure path, in-process: a 64-byte
        send_bytes+recv_bytes pair through here costs 6.6 us, as it did with the
        section written out inline in each fast path (binding ``self.method`` per
        call and a ``try_acquire`` call cost 4% more).
        """
        w = self._w
        if wait is _LENT and lock.lent is not arg:
            return None  # given back already: the lock is not this call's to release
        try:
            if wait is None:
                try:
                    run_all(lock.take_steps)  # lock.try_acquire(), without its Python call
                except LockBusy:
                    return None
            elif wait is _LENT:
                return work(self, arg)
            elif not lock.acquire(wait, self._gone):
                if self._interrupted:
                    raise HandleClosed(f"this handle on {self.url} was closed")
                return None
            if w[dirty_at]:
                # The previous holder died inside its critical section. Nothing it wrote
                # was published, so there is nothing to undo: count it and go on.
                self._q[recoveries_at] += 1
            w[dirty_at] = 1
            return work(self, arg)
        finally:
            if lock.lent is None and w[lock.owner_at] == lock.pid and w[lock.gen_at] == lock.token:
                w[dirty_at] = 0
                w[lock.owner_at] = 0
                lock.give()

    def _wake(self, receivers: bool) -> None:
        """Ring for the other side's sleepers and event-loop waiters, if any are counted.

        ``receivers`` after a commit, not after records were taken (then: senders).
        """
        w = self._w
        if receivers:
            bell, waiting, loop_bell, parked = (
                self._items,
                w[_RECV_WAITERS],
                self._data_bell,
                w[_ASYNC_RECV],
            )
        else:
            bell, waiting, loop_bell, parked = (
                self._space,
                w[_SEND_WAITERS],
                self._room_bell,
                w[_ASYNC_SEND],
            )
        if waiting:
            bell.ring_if_below(waiting)
        if parked and loop_bell is not None:
            loop_bell.ring()

    # -- sending ----------------------------------------------------------------------

    def send_frames(self, frames: Sequence[OutFrame], deadline: Deadline) -> None:
        """Append frames to the ring; see :class:`~ipckit._transport.Transport`."""
        start = 0
        native = self.native_core
        if native is not None:
            # The inline prefix that fits now, in C; the rest (waits, out-of-band
            # blocks, a busy lock) takes the pure path below from where it stopped.
            start = native.try_send(frames)
            if start == len(frames):
                return
        elif len(frames) == 1:
            f = frames[0]
            if (
                f.nbytes <= self._inline
                and not self._interrupted
                and self._locked(self._send_lock, _DIRTY_SEND, _RECOVERIES_SEND, None, _PUT_ONE, f)
            ):
                w = self._w
                if w[_RECV_WAITERS] or w[_ASYNC_RECV]:  # a pre-check: the call costs 0.04 us
                    self._wake(True)
                return
        oob: dict[int, bytes] = {}
        # How many frames are committed (published in the ring): set by a store right
        # after the store that publishes them, so an interrupt anywhere leaves it exact.
        self._committed = start
        try:
            for i, f in enumerate(frames[start:], start):
                if f.nbytes > self._inline:
                    oob[i] = _oob.put_block(self._oob_prefix, [f.payload], self._mode)
            total = len(frames)
            while self._committed < total:
                self._send_some(frames, self._committed, oob, deadline)
        except BaseException:
            committed = self._committed
            for index, ref in oob.items():
                if index >= committed:  # blocks of committed records belong to receivers now
                    _oob.discard_block(ref)
            raise

    def _put_one(self, f: OutFrame) -> bool:
        """Work of the one-frame fast path: write an inline frame if it fits now.

        False sends the caller down the general path (ring full, shut down), which
        then waits or says why.
        """
        if self._w[_FLAGS] & ring.SHUT_FLAG:
            return False  # shut down: the general path says so
        q = self._q
        ser, flags, payload, length = f  # one unpack: cheaper than four attribute reads
        head = q[_HEAD]
        tail = ring.write_one(
            self._buf, head, q[_TAIL], self._capacity, ser, flags, payload, length
        )
        if tail < 0:
            return False
        q[_TAIL] = tail  # publish; the next store records it (see _write_records)
        self._committed = 1
        q[_MSGS_IN] += 1
        q[_BYTES_IN] += length
        q[_HIGH_WATER] = max(q[_HIGH_WATER], tail - head)
        return True

    def _send_some(
        self, frames: Sequence[OutFrame], start: int, oob: dict[int, bytes], deadline: Deadline
    ) -> None:
        w = self._w
        q = self._q
        # While registered we count in SEND_WAITERS; we uncount in the next critical
        # section we enter anyway, rather than taking the lock once more for it.
        state = {"spun": False, "registered": False, "slept": 0.0}

        def step(_t: object, _: None) -> int:
            # Checked under the lock that shutdown() also takes, so no record can be
            # committed after receivers were told the stream has ended.
            if self._is_shut():
                raise ChannelClosed(f"{self.url} was shut down; no more messages can be sent")
            if state["registered"]:
                w[_SEND_WAITERS] = max(w[_SEND_WAITERS] - 1, 0)
                q[_BLOCKED_SEND] += int(state["slept"] * 1e9)
                state["registered"], state["slept"] = False, 0.0
            index = self._write_records(self._buf, frames, start, oob)
            if index == start:
                if deadline.nonblocking or deadline.expired():
                    raise Full(
                        f"{self.url} is full (capacity={self._capacity} bytes) and stayed "
                        f"full for timeout={deadline.timeout}; pass a larger capacity= or "
                        "receive faster",
                        sent=start,
                    )
                if state["spun"] or not self._spin:
                    w[_SEND_WAITERS] += 1
                    state["registered"] = True
            return index

        try:
            while True:
                if self._interrupted:
                    raise HandleClosed(f"this handle on {self.url} was closed")
                index = self._locked(
                    self._send_lock, _DIRTY_SEND, _RECOVERIES_SEND, deadline, step, None
                )
                if index is None:
                    raise Full(f"{self.url}: timed out waiting for the send lock", sent=start)
                if index > start:
                    self._wake(True)
                    return
                if not state["registered"]:
                    state["spun"] = True
                    self._spin_until(lambda: self._free_bytes() > 0, deadline)
                    continue
                started = time.perf_counter()
                self._space.wait(deadline.slice(WAIT_SLICE))
                state["slept"] = float(state["slept"]) + time.perf_counter() - started
        finally:
            if state["registered"]:
                self._unregister(self._send_lock, _SEND_WAITERS, _DIRTY_SEND, _RECOVERIES_SEND)

    def _unregister(self, lock: RobustLock, waiters_at: int, dirty_at: int, recov_at: int) -> None:
        """Uncount a waiter that leaves without entering the critical section again."""
        if self._shm is None:
            return
        w = self._w

        def uncount(_t: object, _: None) -> bool:
            w[waiters_at] = max(w[waiters_at] - 1, 0)
            return True

        # Not taken within a second: a stale count only causes a spare wake-up later.
        self._locked(lock, dirty_at, recov_at, Deadline(1.0), uncount, None)

    def _free_bytes(self) -> int:
        q = self._q
        used: int = q[_TAIL] - q[_HEAD]
        return self._capacity - used

    def _write_records(
        self, buf: memoryview, frames: Sequence[OutFrame], start: int, oob: dict[int, bytes]
    ) -> int:
        """Copy as many frames as fit (ring.write_records), then publish; return the next index."""
        q = self._q
        head = q[_HEAD]
        records = (
            (f.serializer_id, f.flags, f.payload, f.nbytes)
            if (ref := oob.get(i)) is None
            else (f.serializer_id, f.flags | FLAG_OOB, ref, len(ref))
            for i, f in enumerate(frames[start:], start)
        )
        count, tail, nbytes = ring.write_records(buf, head, q[_TAIL], self._capacity, records)
        if count:
            index = start + count
            # Publish: everything before this store is complete. The next store records
            # it for send_frames; no interrupt can fall between two stores.
            q[_TAIL] = tail
            self._committed = index
            q[_MSGS_IN] = q[_MSGS_IN] + count
            q[_BYTES_IN] = q[_BYTES_IN] + nbytes
            q[_HIGH_WATER] = max(q[_HIGH_WATER], tail - head)
        return start + count

    # -- receiving --------------------------------------------------------------------

    def recv_frames(self, max_items: int, deadline: Deadline) -> list[Frame]:
        """Take 1..max_items records; see :class:`~ipckit._transport.Transport`."""
        q = self._q
        w = self._w
        native = self.native_core
        if native is not None:
            fast = native.try_recv(max_items)
            if fast is not None:
                return [self._resolve(f) for f in fast] if native.saw_oob else fast
        elif q[_TAIL] != q[_HEAD] and not self._interrupted:
            # Data is there: try once without the waiting machinery.
            taken = self._locked(
                self._recv_lock, _DIRTY_RECV, _RECOVERIES_RECV, None, _READ_RECORDS, max_items
            )
            if taken:
                if w[_SEND_WAITERS] or w[_ASYNC_SEND]:  # a pre-check, as in send_frames
                    self._wake(False)
                return [self._resolve(f) for f in taken] if self._saw_oob else taken
        if self._recv_lock.lent is not None:
            self._drop_lend(forced=False)  # see recv_view
        state = {"spun": False, "registered": False, "slept": 0.0}  # see _send_some

        def step(_t: object, _: None) -> list[Frame]:
            if state["registered"]:
                w[_RECV_WAITERS] = max(w[_RECV_WAITERS] - 1, 0)
                q[_BLOCKED_RECV] += int(state["slept"] * 1e9)
                state["registered"], state["slept"] = False, 0.0
            # The flag first: if it was set, every commit precedes it and shows in the
            # tail read next, so "nothing left" is really nothing left.
            shut = self._is_shut()
            out = self._read_records(max_items)
            if not out:
                if shut:
                    raise ChannelClosed(f"{self.url} was shut down and nothing is left")
                if deadline.nonblocking or deadline.expired():
                    raise Empty(f"no message on {self.url} within timeout={deadline.timeout}")
                if state["spun"] or not self._spin:
                    w[_RECV_WAITERS] += 1
                    state["registered"] = True
            return out

        try:
            while True:
                if self._interrupted:
                    raise HandleClosed(f"this handle on {self.url} was closed")
                out = self._locked(
                    self._recv_lock, _DIRTY_RECV, _RECOVERIES_RECV, deadline, step, None
                )
                if out is None:
                    raise Empty(f"{self.url}: timed out waiting for the receive lock")
                if out:
                    self._wake(False)
                    return [self._resolve(f) for f in out] if self._saw_oob else out
                if not state["registered"]:
                    state["spun"] = True
                    self._spin_until(self._has_data, deadline)
                    continue
                started = time.perf_counter()
                self._items.wait(deadline.slice(WAIT_SLICE))
                state["slept"] = float(state["slept"]) + time.perf_counter() - started
        finally:
            if state["registered"]:
                self._unregister(self._recv_lock, _RECV_WAITERS, _DIRTY_RECV, _RECOVERIES_RECV)

    def _resolve(self, frame: Frame) -> Frame:
        if not frame.flags & FLAG_OOB:
            return frame
        payload = _oob.resolve(frame.payload, self._max, self.url)
        return Frame(frame.serializer_id, frame.flags & ~FLAG_OOB, payload)

    def _has_data(self) -> bool:
        q = self._q
        return q[_TAIL] != q[_HEAD] or self._is_shut()

    def _read_records(self, max_items: int) -> list[Frame]:
        """Copy out up to ``max_items`` records (ring.read_records), then publish the head."""
        q = self._q
        buf = self._buf
        head = q[_HEAD]
        tail = q[_TAIL]
        if head == tail:
            self._saw_oob = False
            return []
        try:
            out, head, nbytes, saw, too_large = ring.read_records(
                buf, head, tail, self._capacity, self._segment_max, self._max, max_items
            )
        except ProtocolError:
            # Record boundaries past a corrupt record are unknowable: drop what was
            # committed so the queue can go on, and tell this receiver why.
            q[_HEAD] = q[_TAIL]
            raise
        q[_HEAD] = head
        q[_MSGS_OUT] += len(out) + (too_large >= 0)
        q[_BYTES_OUT] += nbytes
        # Only this handle's one receiving thread reads it, right after this call.
        self._saw_oob = bool(saw & FLAG_OOB)
        if too_large >= 0:
            raise MessageTooLarge(
                f"incoming message on {self.url} has {too_large} bytes, more than this "
                f"handle's max_message_size={self._max}; it was dropped: open this end with a "
                "larger max_message_size="
            )
        return out

    def recv_view(self, deadline: Deadline) -> tuple[Frame, Callable[[bool], None], bool]:
        """Borrow the next record in place; the callable gives it back.

        The receive lock stays held until then, so other receivers wait: keep the
        view briefly. ``head`` moves only on release, so if this process dies
        holding the view the message goes to another receiver. The third item says
        the bytes are the ring's own (reused once given back).

        The lend is recorded on the lock in the critical section that borrows (see
        :meth:`_locked`), so an interrupt anywhere leaves either the lock given back
        or the lend recorded. A lend recorded but never handed out (an interrupt
        struck after the borrow, before the caller held the callable) is dropped at
        this handle's next receive or close: the lock is given back and the message
        stays in the ring for the next receiver.

        Raises:
            BufferError: a lend this handle never gave back still has a live view.
        """
        lock = self._recv_lock
        if lock.lent is not None:
            self._drop_lend(forced=False)
        while True:
            if not self.poll(deadline):
                raise Empty(f"no message on {self.url} within timeout={deadline.timeout}")
            found = self._locked(lock, _DIRTY_RECV, _RECOVERIES_RECV, deadline, _BORROW, None)
            if found is None:
                raise Empty(f"{self.url}: timed out waiting for the receive lock")
            if found is not True and found is not False:
                return found
            if found:
                raise ChannelClosed(f"{self.url} was shut down and nothing is left")

    def _borrow(self, _: None) -> tuple[Frame, Callable[[bool], None], bool] | bool:
        """Work of recv_view: lend the next record, or say whether the queue is shut."""
        shut = self._is_shut()  # before looking at the ring: see recv_frames
        q, buf = self._q, self._buf
        head, tail = q[_HEAD], q[_TAIL]
        while head != tail:
            try:
                ser, flags, start, length, after = ring.read_record(
                    buf, head, tail, self._capacity, self._segment_max
                )
            except ProtocolError:
                q[_HEAD] = q[_TAIL]
                raise
            if length >= 0:
                break
            head = q[_HEAD] = after  # a pad record: skip it now
        else:
            return shut
        window: Any = None
        if flags & FLAG_OOB:
            try:
                view, unmap = _oob.open_block(
                    bytes(buf[start : start + length]), self._max, self.url
                )
            except BaseException:
                q[_HEAD] = after  # the block is gone: do not offer this record again
                raise
            flags &= ~FLAG_OOB
            in_place = False  # a private block: a slice kept past release stays valid
        else:
            if length > self._max:
                q[_HEAD] = after
                raise MessageTooLarge(
                    f"incoming message on {self.url} has {length} bytes, more than this "
                    f"handle's max_message_size={self._max}; it was dropped: open this "
                    "end with a larger max_message_size="
                )
            # A window of its own over the record: every view, slice or array made from
            # it holds a reference to the window, so the give-back can tell whether one
            # still reads bytes that are about to be reused (a slice of a memoryview
            # would not show in its exports).
            window = (ctypes.c_ubyte * length).from_buffer(buf, start) if length else b""
            view, unmap = memoryview(window).cast("B").toreadonly(), None
            in_place = True
        lend = _Lend(self, after, length, view, window, unmap)
        frame = Frame(ser, flags, view)
        self._recv_lock.lent = lend  # last: from here the lock is the lend's to give back
        return frame, lend, in_place

    def _drop_lend(self, *, forced: bool) -> None:
        """Give the receive lock back from a lend nobody holds; the record stays queued."""
        lend = self._recv_lock.lent
        if isinstance(lend, _Lend):
            lend.forced = forced
            lend.keep = True
            self._locked(self._recv_lock, _DIRTY_RECV, _RECOVERIES_RECV, _LENT, _END_LEND, lend)

    def _end_lend(self, lend: _Lend) -> bool:
        """Work ending a lend: the record is taken, or with ``keep`` left for the next receiver.

        Giving back (calling the lend) is idempotent. Unforced, it raises
        ``BufferError`` while a view of in-place bytes is alive, and the message
        stays lent; a give-back cut short by an interrupt leaves the lend recorded,
        so calling again finishes it.
        """
        if lend.unmap is None:
            try:
                lend.view.release()
            except BufferError:
                if not lend.forced:
                    raise
            if not lend.forced and lend.length and sys.getrefcount(lend.window) > _WINDOW_REFS:
                raise BufferError(f"a view of a message lent by {self.url} is still alive")
        elif lend.keep:
            with contextlib.suppress(BufferError):
                lend.view.release()  # unmapped when collected; the block stays queued
        else:
            lend.unmap()  # a private block: slices kept past this stay valid
        # Plain loads and stores from here to the end: no interrupt falls between
        # taking the record and clearing the lend, so the record is taken once.
        if not lend.keep:
            q = self._q
            q[_HEAD] = lend.after
            q[_MSGS_OUT] += 1
            q[_BYTES_OUT] += lend.length
        self._recv_lock.lent = None
        return True

    # -- waiting ----------------------------------------------------------------------

    def _spin_until(self, ready: Callable[[], bool], deadline: Deadline) -> None:
        # Yield now and then: when the peer shares our CPU that lets it run instead of
        # burning its time slice (measured on one CPU: 130 us round trips without
        # yielding, 19 us with), while across CPUs a rare yield costs next to nothing.
        end = time.perf_counter() + self._spin
        turns = 0
        while not ready() and not self._interrupted:
            turns += 1
            if turns & 15 == 0:
                if time.perf_counter() >= end or deadline.expired():
                    return
                os.sched_yield()

    def poll(self, deadline: Deadline) -> bool:
        """True when a message (or the end of the stream) is ready."""
        if self._shm is None:
            raise HandleClosed(f"this handle on {self.url} is closed")
        while True:
            if self._has_data():
                return True
            if deadline.nonblocking or deadline.expired():
                return False
            if self._interrupted:
                raise HandleClosed(f"this handle on {self.url} was closed")
            time.sleep(min(0.001, deadline.slice(0.001)))

    def readiness(self, sending: bool) -> _ShmReady:
        """The event-loop wait for room (``sending``) or a record; see :mod:`._loopbell`."""
        bell = self._room_bell if sending else self._data_bell
        if self._shm is None or self._interrupted:
            raise HandleClosed(f"this handle on {self.url} is closed")
        if bell is None:
            raise ConfigurationError(
                f"{self.url} was created without event-loop doorbells (by an older ipckit); "
                "recreate it to use it from ipckit.aio"
            )
        return _ShmReady(self, bell, sending)

    def resume_send(self, give_up: bool) -> bool:
        """A record is committed whole or not at all: nothing ever waits mid-frame."""
        return True

    def _count_parked(self, ready: _ShmReady, park: bool, stale: bool) -> None:
        """Count ``ready`` in (``park``) or out of its side's event-loop waiters.

        Under that side's lock, taken only if it is free now: an event loop must not
        block on a lock another process holds (a lend, a stopped process). The count
        and ``ready``'s record of it change together, plain stores in one function, so
        no interrupt can leave one without the other. ``stale``: the FIFO was full, so
        nobody drained it for 64 KiB of rings and the count is left by dead waiters:
        this waiter becomes the only one counted (live ones, if any, still recheck).
        """
        at = _ASYNC_SEND if ready._head >= 0 else _ASYNC_RECV
        w = self._w

        def count(_t: object, _: None) -> bool:
            if park:
                w[at] = 1 if stale else w[at] + 1
                ready._counted = True
            elif ready._counted:
                w[at] = max(w[at] - 1, 0)
                ready._counted = False
            return True

        if ready._head >= 0:
            lock, dirty, recov = self._send_lock, _DIRTY_SEND, _RECOVERIES_SEND
        else:
            lock, dirty, recov = self._recv_lock, _DIRTY_RECV, _RECOVERIES_RECV
        self._locked(lock, dirty, recov, None, count, None)

    # -- the rest ---------------------------------------------------------------------

    def stats(self) -> TransportStats:
        """Channel-wide counters from the header."""
        q = self._q
        head, tail = q[_HEAD], q[_TAIL]
        messages_in, messages_out = q[_MSGS_IN], q[_MSGS_OUT]
        return TransportStats(
            depth=max(messages_in - messages_out, 0),
            capacity=self._capacity,
            high_water=q[_HIGH_WATER],
            extra={
                "messages_in": messages_in,
                "messages_out": messages_out,
                "bytes_in": q[_BYTES_IN],
                "bytes_out": q[_BYTES_OUT],
                "used_bytes": tail - head,
                "blocked_send_seconds": q[_BLOCKED_SEND] / 1e9,
                "blocked_recv_seconds": q[_BLOCKED_RECV] / 1e9,
                "recoveries": q[_RECOVERIES_SEND] + q[_RECOVERIES_RECV],
                "max_inline_message": self._inline,
            },
        )

    def fileno(self) -> int:
        """Shared-memory queues have no descriptor to poll."""
        raise ConfigurationError(f"{self.url} has no file descriptor; use poll() instead")

    def reducer(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """Rebuild by attaching to the same name in the other process."""
        return _attach, (self._names.name, self._spin, self._mode, self._max)


# The works of the single-message critical sections, as plain functions (see _locked).
_PUT_ONE = ShmTransport._put_one
_READ_RECORDS = ShmTransport._read_records
_BORROW = ShmTransport._borrow
_END_LEND = ShmTransport._end_lend


#: Bytes a FIFO holds before a write fails (Linux's default pipe buffer): a waiter that
#: drains this many finds a count nobody has served for a long time.
_FIFO_FULL = 65536
#: A parked event-loop wait looks again after this long even if no FIFO byte came:
#: a publisher killed between its commit and its ring leaves no byte behind.
_PARK_RECHECK = 0.05
#: How long an event-loop wait watches the ring before it parks on the FIFO.
_PARK_SPIN = 20e-6


class _ShmReady:
    """One event-loop wait on a ring (:class:`ipckit._transport.Ready`)."""

    __slots__ = ("_bell", "_counted", "_head", "_t", "fd", "recheck", "writable")

    def __init__(self, transport: ShmTransport, bell: LoopBell, sending: bool) -> None:
        self._t = transport
        self._bell = bell
        self.fd = bell.fd
        self.writable = False  # a FIFO byte says "look again", in either direction
        self.recheck: float | None = _PARK_RECHECK
        self._counted = False
        # A send waits for the head to move (room of the right size is the send's to
        # judge); a receive for any record.
        self._head = transport._q[_HEAD] if sending else -1

    def _ready(self) -> bool:
        t = self._t
        if t._shm is None or t._interrupted or t._is_shut():
            return True
        if self._head >= 0:
            return bool(t._q[_HEAD] != self._head)
        return t._has_data()

    def park(self) -> bool:
        """Count this wait, then look again: whoever publishes after the count rings."""
        t = self._t
        # Watch the ring a few microseconds first, as the sync waits do (10 us in C): a
        # peer on another CPU usually answers within that, and a wake-up through the
        # FIFO and the loop costs far more (see docs/asyncio.md for the figures).
        # Yielding now and then lets a peer on this same CPU run (see _spin_until).
        end = time.perf_counter() + _PARK_SPIN
        turns = 0
        while not self._ready():
            turns += 1
            if turns & 7 == 0:
                if time.perf_counter() >= end:
                    break
                os.sched_yield()
        else:
            return False
        stale = self._bell.drain() >= _FIFO_FULL
        t._count_parked(self, True, stale)
        if not self._counted:
            self.recheck = 0.001  # the lock was busy: uncounted, so look again soon
        # Ready now: the caller's unpark() uncounts. Not ready: wait for a ring.
        return not self._ready()

    def unpark(self) -> None:
        """Drain the FIFO, uncount, and pass on a wake-up this wait no longer needs."""
        if self._t._shm is None:
            return
        self._bell.drain()
        if self._counted:
            self._t._count_parked(self, False, False)
        self.pass_on()

    def pass_on(self) -> None:
        """Something is left and other loops wait: the byte this wait drained is theirs too."""
        t = self._t
        if t._shm is None:
            return
        sending = self._head >= 0
        if t._w[_ASYNC_SEND if sending else _ASYNC_RECV] and (
            t._free_bytes() > 0 if sending else t._has_data()
        ):
            self._bell.ring()


def remove(name: str, *, blocks: bool = True) -> None:
    """Remove every OS object of ``shm://name``; missing ones are skipped.

    ``blocks=False`` leaves the out-of-band blocks (of every channel that had the
    name) for the handles still reading them.
    """
    names = _Names(name)
    for path in (
        f"{_oob.SHM_DIR}/{names.segment}",
        names.send_recovery,
        names.recv_recovery,
        names.data_bell,
        names.room_bell,
    ):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    for sem in (names.items, names.space, names.send_sem, names.recv_sem):
        Doorbell.unlink(sem)
    if blocks:
        # Blocks of every channel that had the name: "~" ends the name, so nothing else
        # starts with this prefix.
        try:
            found = os.listdir(_oob.SHM_DIR)
        except FileNotFoundError:
            found = []
        for entry in found:
            if entry.startswith(names.oob_prefix) and ".oob." in entry:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{_oob.SHM_DIR}/{entry}")


def _attach(name: str, spin: float, mode: int, max_message_size: int) -> ShmTransport:
    return ShmTransport(
        _Names(name),
        create=False,
        capacity=0,
        max_message_size=max_message_size,
        spin=spin,
        mode=mode,
    )


class ShmBackend:
    """The ``shm://`` scheme."""

    scheme = "shm"
    options: Mapping[str, OptionSpec] = {
        "capacity": OptionSpec(
            "size", 1024 * 1024, "ring size in bytes (creator only)", creator_only=True
        ),
        "spin": OptionSpec("float", 0.0, "seconds to busy-wait before sleeping"),
        "mode": OptionSpec(
            "mode", 0o600, "permission bits of the OS objects (creator only)", creator_only=True
        ),
    }

    def open(self, endpoint: Endpoint, create: bool, options: Mapping[str, Any]) -> ShmTransport:
        """Create or attach to ``shm://NAME``."""
        spin = float(options["spin"])
        if spin < 0 or spin > 1:
            raise ConfigurationError(f"spin must be between 0 and 1 second, not {spin}")
        return ShmTransport(
            _Names(endpoint.address),
            create=create,
            capacity=int(options["capacity"]),
            max_message_size=int(options["max_message_size"]),
            spin=spin,
            mode=int(options["mode"]),
        )


BACKENDS: dict[str, NamedBackend] = {"shm": ShmBackend()}
