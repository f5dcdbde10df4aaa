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
import threading
import weakref
from collections.abc import Callable
from functools import partial

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

    __slots__ = ("__weakref__", "_child", "_shares_parent", "fd", "held")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.held = False
        self._child = -1
        # A child whose own hold could not be made before the fork: its descriptor is
        # the parent's description, so it can never tell that it is the last.
        self._shares_parent = False
        with _forking:
            _live.add(self)

    def take(self) -> None:
        """Take this handle's shared hold (blocks only while a last-holder check runs)."""
        with _forking:
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            self.held = True

    def is_last_closing(self) -> bool:
        """For a handle that is closing: True if no other handle, anywhere, holds the file.

        When True the file stays locked exclusively until :meth:`close`, so a process
        attaching meanwhile waits until this handle has cleaned up and gone. When False
        this handle's hold is gone already (a refused upgrade drops the shared lock,
        flock(2)), so of two handles closing at once the second finds itself last.
        """
        if self._shares_parent:
            return False
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        """Close the descriptor (the hold goes with it); idempotent."""
        with _forking:
            _live.discard(self)
            for fd in (self.fd, self._child):
                if fd >= 0:
                    os.close(fd)
            self.fd = self._child = -1
            self.held = False

    # -- fork ---------------------------------------------------------------------------

    def _before_fork(self) -> None:
        if not self.held or self._child >= 0:
            return
        try:
            fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._child = _SHARED  # no descriptor to spare: the child shares the hold
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            os.close(fd)
            self._child = _SHARED
            return
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
        elif fd == _SHARED:
            self._shares_parent = True


_SHARED = -2
_live: weakref.WeakSet[Hold] = weakref.WeakSet()
# Held from before a fork until after it, in both processes, and around every change
# of a hold: a hold closed by another thread mid-fork would lose its child twin.
_forking = threading.Lock()
_prepared: list[Hold] = []


def _before_fork() -> None:
    _forking.acquire()
    _prepared[:] = list(_live)
    for hold in _prepared:
        hold._before_fork()


def _after_fork(step: Callable[[Hold], None]) -> None:
    try:
        for hold in _prepared:
            step(hold)
    finally:
        _prepared.clear()
        _forking.release()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=partial(_after_fork, Hold._after_fork_in_parent),
    after_in_child=partial(_after_fork, Hold._after_fork_in_child),
)
