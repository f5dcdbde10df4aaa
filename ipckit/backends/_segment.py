"""One named POSIX shared-memory segment (``/dev/shm/NAME``), mapped read-write.

The segment is the one ``multiprocessing.shared_memory.SharedMemory(NAME)`` would
open (on Linux ``shm_open`` is an ``open`` under ``/dev/shm``), opened here
directly because ``SharedMemory`` (3.11) gets three things wrong for a queue
that several processes share:

- when ``mmap`` fails while *attaching* (out of descriptors: mmap duplicates
  the descriptor; out of address space) it calls ``unlink()``, destroying a live
  queue for every other process;
- the half-made object stays reachable from the exception's traceback and keeps
  its descriptor open for as long as the caller holds the exception;
- keeping it away from ``resource_tracker`` (which would remove the queue when any
  attached process exits, gh-82300) needs a process-wide patch of
  ``resource_tracker.register`` that two threads opening at once can leave
  patched for good.

Nothing here registers with ``resource_tracker``: a named channel lives until
``unlink()``.
"""

from __future__ import annotations

import mmap
import os

from ipckit._oob import SHM_DIR
from ipckit.backends._hold import Hold, map_unlocked

__all__ = ["Segment"]

_FLAGS = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW


class Segment:
    """A mapped segment: its descriptor, size and a byte view of the whole mapping.

    ``hold`` is the handle's hold on the channel (:mod:`ipckit.backends._hold`),
    which owns the descriptor: a creator takes it at once, an attacher once the
    channel is whole.
    """

    def __init__(self, path: str, hold: Hold, size: int) -> None:
        self.path = path
        self.size = size
        self.hold = hold
        self.ino = os.fstat(hold.fd).st_ino
        self._mmap: mmap.mmap | None = map_unlocked(hold.fd, size)
        self.buf = memoryview(self._mmap)

    @property
    def fd(self) -> int:
        """The segment's descriptor (-1 once closed)."""
        return self.hold.fd

    @classmethod
    def create(cls, name: str, size: int, mode: int) -> Segment:
        """Make ``name`` with ``size`` bytes reserved (``posix_fallocate``) and map it.

        ``FileExistsError`` when the name is taken. Any later failure (a full
        /dev/shm is ``ENOSPC`` from ``posix_fallocate``, out of descriptors is
        ``EMFILE`` from ``mmap``) removes what this call made before it raises.
        """
        path = os.path.join(SHM_DIR, name)
        hold = Hold(os.open(path, _FLAGS | os.O_CREAT | os.O_EXCL, mode))
        try:
            # Held from the first moment: an attacher that finds it unfinished can tell
            # a creator still at work (reserving many GiB takes seconds) from a dead one.
            hold.take()
            os.fchmod(hold.fd, mode)  # the umask must not narrow or widen what was asked
            # Reserve the pages now: a full /dev/shm fails here, not with SIGBUS later.
            os.posix_fallocate(hold.fd, 0, size)
            return cls(path, hold, size)
        except BaseException:
            try:
                _remove_if_same(path, hold.fd)
            finally:
                hold.close()
            raise

    @classmethod
    def attach(cls, name: str) -> Segment | None:
        """Map the existing segment ``name``; None while its creator has not sized it.

        ``FileNotFoundError`` when there is none. A failure never touches the
        segment itself: it belongs to its creator and every other handle.
        """
        path = os.path.join(SHM_DIR, name)
        hold = Hold(os.open(path, _FLAGS))
        try:
            size = os.fstat(hold.fd).st_size
            if size == 0:
                hold.close()
                return None
            return cls(path, hold, size)
        except BaseException:
            hold.close()
            raise

    def close(self) -> None:
        """Unmap and close; idempotent.

        A slice or array made from a lent view may outlive the handle: then the
        mapping is left to it (unmapped when the last view dies) and only the
        descriptor closes now.
        """
        try:
            self.buf.release()
        except BufferError:
            pass  # something holds a buffer of the whole view: the mapping stays with it
        mem, self._mmap = self._mmap, None
        if mem is not None:
            try:
                mem.close()
            except BufferError:
                pass
        self.hold.close()


def _remove_if_same(path: str, fd: int) -> None:
    """Remove ``path`` if it still names the file open on ``fd``: ours, not a newer one."""
    try:
        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass
