"""How a handle holds its named channel: a shared flock on one file, per process.

Every handle of a named channel keeps ``LOCK_SH`` on one file of it (the ``shm://``
segment, a queue's state file). The kernel drops it when the handle closes or its
process dies, so the last handle can tell it is the last (``LOCK_EX`` is granted)
and ``ipckit gc`` can tell nobody uses a channel.

A flock belongs to an open file description, not to a descriptor, and two things
share descriptions behind the caller's back:

- ``mmap`` keeps a duplicate of the descriptor it maps, so a mapping is mapped
  through a description of its own (:func:`map_unlocked`) that never holds a lock;
- a forked child inherits the parent's descriptor, and with it the parent's lock.
  The child's own hold is taken in the parent *before* the fork, so there is no
  moment when the child's only hold is the parent's (the parent, closing first,
  would think itself the last and remove what the child still reads).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import weakref

__all__ = ["Hold", "map_unlocked"]


def map_unlocked(fd: int, size: int, prot: int = mmap.PROT_READ | mmap.PROT_WRITE) -> mmap.mmap:
    """Map ``fd`` through a fresh open file description, one that never holds a flock."""
    flags = os.O_RDWR if prot & mmap.PROT_WRITE else os.O_RDONLY
    try:
        own = os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
    except OSError:
        return mmap.mmap(fd, size, prot=prot)  # no /proc: the shared description it is
    try:
        return mmap.mmap(own, size, prot=prot)
    finally:
        os.close(own)


class Hold:
    """A descriptor of one channel file this process holds ``LOCK_SH`` on, once taken."""

    __slots__ = ("__weakref__", "_child", "fd", "held")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.held = False
        self._child = -1
        _live.add(self)

    def take(self) -> None:
        """Take this handle's shared hold (blocks only while a last-holder check runs)."""
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        self.held = True

    def is_last(self) -> bool:
        """True if no other handle, in any process, holds the file; keeps this hold."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # A refused upgrade has dropped the shared lock (Linux flock(2)): take it again.
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            return False
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        return True

    def close(self) -> None:
        """Close the descriptor (the hold goes with it); idempotent."""
        _live.discard(self)
        for fd in (self.fd, self._child):
            if fd >= 0:
                os.close(fd)
        self.fd = self._child = -1
        self.held = False

    # -- fork ---------------------------------------------------------------------------

    def _before_fork(self) -> None:
        if self.held and self._child < 0:
            try:
                fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC)
                fcntl.flock(fd, fcntl.LOCK_SH)
            except OSError:
                return  # the child shares the parent's hold, as without this
            self._child = fd

    def _after_fork_in_parent(self) -> None:
        fd, self._child = self._child, -1
        if fd >= 0:
            os.close(fd)

    def _after_fork_in_child(self) -> None:
        fd, self._child = self._child, -1
        if fd >= 0:
            os.close(self.fd)  # the parent's description, and the parent's lock
            self.fd = fd


_live: weakref.WeakSet[Hold] = weakref.WeakSet()


def _before_fork() -> None:
    for hold in list(_live):
        hold._before_fork()


def _after_fork_in_parent() -> None:
    for hold in list(_live):
        hold._after_fork_in_parent()


def _after_fork_in_child() -> None:
    for hold in list(_live):
        hold._after_fork_in_child()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
