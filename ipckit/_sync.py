"""Locks and doorbells for shared-memory structures, with dead-owner recovery.

- :class:`RobustLock` is the mutex: a POSIX semaphore (0.2 us a pair here) whose
  holder records its pid, so survivors can take over a lock whose holder died,
  even by SIGKILL. A plain semaphore mutex would stay taken forever instead (as
  faster-fifo's does). A SIGSTOPped holder is alive and keeps the lock: waiters
  time out rather than rob it.
- :class:`FileLock` is an ``flock`` (about 1 us a pair, five times the semaphore),
  which the kernel drops when its holder dies; RobustLock uses one only on the
  rare takeover path, to let exactly one survivor inherit a dead holder's lock.
- :class:`Doorbell` is a POSIX semaphore that wakes sleepers. It carries no
  state: a woken waiter re-checks the shared header, and waits in bounded slices
  so a lost wake-up costs latency, never a hang.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import time
from collections.abc import Callable
from functools import partial

import posix_ipc

from ipckit._critical import run_all
from ipckit._deadline import Deadline
from ipckit._oserror import translate_os_errors

__all__ = ["WAIT_SLICE", "Doorbell", "FileLock", "LockBusy", "RobustLock", "pid_alive"]

#: Longest single sleep on a doorbell before re-checking shared state (seconds).
WAIT_SLICE = 0.05
#: What running :attr:`RobustLock.take_steps` raises when the lock is taken.
LockBusy = posix_ipc.BusyError

# getpid() is a system call on current glibc; the lock hot path reads this instead,
# and a forked child refreshes it before running any Python code of its own.
_PID = [os.getpid()]


def _refresh_pid() -> None:
    _PID[0] = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)

_LOCK_EX_NB = fcntl.LOCK_EX | fcntl.LOCK_NB
_LOCK_UN = fcntl.LOCK_UN
_flock = fcntl.flock
#: Tells this process's locks apart in the shared ``gen`` word (the pid tells processes).
_TOKENS = itertools.count(1)


class FileLock:
    """An exclusive lock that its holder's death releases (taken without waiting)."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str, *, create: bool, mode: int = 0o600) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        with translate_os_errors(f"opening lock file {path}"):
            self.fd = os.open(path, flags, mode)

    def reopen(self) -> None:
        """Open a fresh descriptor after ``fork``.

        ``flock`` belongs to the open file description, which a forked child
        shares with its parent: without a new one, parent and child would both
        "hold" the lock at once.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # the channel was unlinked; nothing left to protect
        old, self.fd = self.fd, fd
        if old >= 0:
            os.close(old)

    def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting."""
        try:
            _flock(self.fd, _LOCK_EX_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Let the next holder in."""
        _flock(self.fd, _LOCK_UN)

    def close(self) -> None:
        """Close the descriptor (dropping the lock if held)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Doorbell:
    """A named POSIX semaphore used only to wake sleepers."""

    __slots__ = ("_sem", "name")

    def __init__(self, name: str, *, create: bool, mode: int = 0o600) -> None:
        self.name = name
        flags = posix_ipc.O_CREAT if create else 0
        with translate_os_errors(f"opening semaphore {name}"):
            self._sem = posix_ipc.Semaphore(name, flags, mode=mode, initial_value=0)

    def ring(self, times: int = 1) -> None:
        """Wake up to ``times`` sleepers."""
        sem = self._sem
        for _ in range(times):
            sem.release()

    def ring_if_below(self, waiters: int) -> None:
        """Ring once if fewer pending rings than ``waiters`` are outstanding."""
        if self._sem.value < waiters:
            self._sem.release()

    def wait(self, seconds: float) -> bool:
        """Sleep until rung or ``seconds`` pass; True if rung."""
        try:
            self._sem.acquire(seconds)
        except posix_ipc.BusyError:
            return False
        except posix_ipc.SignalError:
            # EINTR: a signal handler runs at the caller's next call (and raises there if
            # it raises at all); for the waiter this is a spurious wake-up, never an error.
            return False
        return True

    def close(self) -> None:
        """Close this process's handle on the semaphore."""
        self._sem.close()

    @staticmethod
    def unlink(name: str) -> None:
        """Remove the named semaphore if it exists."""
        try:
            posix_ipc.unlink_semaphore(name)
        except posix_ipc.ExistentialError:
            pass


def pid_alive(pid: int) -> bool:
    """True if ``pid`` names a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The state follows the command name, which may itself hold spaces.
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


class RobustLock:
    """A POSIX-semaphore mutex that survivors take over when its holder dies.

    A semaphore pair costs 0.2 us here against 1 us for ``flock``, but the kernel
    does not release it on death. So the holder's pid (``owner``) and its handle's
    token (``gen``, unique among this process's locks) are written into shared
    words in the same C-level step that takes the semaphore (see
    :mod:`ipckit._critical`: no signal handler can run in between), and the owner
    is cleared by the store just before the releasing call. A waiter that finds the
    owner dead takes the lock over; takeovers are serialised by an ``flock`` on a
    recovery file, used only on that slow path, so exactly one survivor inherits
    the lock. A holder SIGKILLed between the two C calls leaves the owner word at 0;
    that lock is taken over after ``orphan_after`` seconds (10) without progress.
    A SIGSTOPped holder is alive, so it is never robbed: waiters time out.

    Callers release with plain loads and one call, never through a Python method
    (whose entry a handler could interrupt)::

        if words[lock.owner_at] == lock.pid and words[lock.gen_at] == lock.token:
            words[lock.owner_at] = 0
            lock.give()

    ``lent`` is whatever a critical section handed the held lock to (a message
    lent in place by ``shm://``'s ``recv_view``), or ``None``: a caller's release
    skips a lent lock, and whoever ``lent`` names gives it back. It belongs to this
    process: a forked child starts with ``None``.
    """

    __slots__ = (
        "_recovery",
        "_sem",
        "gen_at",
        "give",
        "lent",
        "name",
        "owner_at",
        "pid",
        "take_steps",
        "token",
        "words",
    )

    def __init__(
        self,
        name: str,
        recovery_path: str,
        words: memoryview,
        owner_at: int,
        gen_at: int,
        *,
        create: bool,
        mode: int = 0o600,
    ) -> None:
        self.name = name
        flags = posix_ipc.O_CREAT if create else 0
        with translate_os_errors(f"opening semaphore {name}"):
            self._sem = posix_ipc.Semaphore(name, flags, mode=mode, initial_value=1)
        self._recovery = FileLock(recovery_path, create=create, mode=mode)
        self.words = words
        self.owner_at = owner_at
        self.gen_at = gen_at
        self.token = next(_TOKENS) & 0xFFFFFFFF or 1
        self.lent: object = None
        self._bind()

    def _bind(self) -> None:
        self.pid = os.getpid()
        self.give: Callable[[], None] = self._sem.release
        # Take the lock if it is free and record the owner: run in one C-level call
        # (run_all), raising LockBusy when it is taken. A caller that must not spend
        # a Python call on try_acquire (shm://'s critical section) runs these itself.
        self.take_steps = self._steps(partial(self._sem.acquire, 0))

    def _steps(self, acquire: Callable[[], object]) -> tuple[Callable[[], object], ...]:
        words = self.words
        return (
            acquire,
            partial(words.__setitem__, self.owner_at, self.pid),
            partial(words.__setitem__, self.gen_at, self.token),
        )

    def held(self) -> bool:
        """True while this handle holds the lock."""
        words = self.words
        return words[self.owner_at] == self.pid and words[self.gen_at] == self.token

    def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting (the hot path)."""
        try:
            run_all(self.take_steps)
        except LockBusy:
            return False
        return True

    def acquire(
        self, deadline: Deadline, interrupted: Callable[[], bool], orphan_after: float = 10.0
    ) -> bool:
        """Take the lock by ``deadline``; False on timeout or interruption."""
        if self.try_acquire():
            return True
        if deadline.nonblocking:
            return False
        words = self.words
        seen = (words[self.owner_at], words[self.gen_at])
        still_since = time.monotonic()
        while True:
            try:
                run_all(self._steps(partial(self._sem.acquire, deadline.slice(0.002))))
                return True
            except (posix_ipc.BusyError, posix_ipc.SignalError):
                pass  # timed out, or EINTR (see Doorbell.wait): look again
            if interrupted() or deadline.expired():
                return False
            now = (words[self.owner_at], words[self.gen_at])
            if now != seen:
                seen, still_since = now, time.monotonic()
                continue
            owner = now[0]
            orphaned = owner == 0 and time.monotonic() - still_since > orphan_after
            if ((owner and not pid_alive(owner)) or orphaned) and self._take_over(now):
                return True

    def _take_over(self, seen: tuple[int, int]) -> bool:
        recovery = self._recovery
        try:
            if not recovery.try_acquire():
                return False
            words = self.words
            if (words[self.owner_at], words[self.gen_at]) != seen or self._sem.value:
                return False  # someone else recovered it, or it was released
            # Two adjacent stores: the dead holder's token is ours now.
            words[self.owner_at] = self.pid
            words[self.gen_at] = self.token
            return True
        finally:
            _flock(recovery.fd, _LOCK_UN)  # harmless when not held; first call here

    def release(self) -> None:
        """Give the lock back if this handle holds it (not on a path an interrupt may cut)."""
        words = self.words
        if words[self.owner_at] == self.pid and words[self.gen_at] == self.token:
            words[self.owner_at] = 0
            self.give()

    def close(self) -> None:
        """Close this process's handles."""
        self._sem.close()
        self._recovery.close()

    def reopen(self) -> None:
        """After fork: this process's pid, and fresh descriptors (flock is per description)."""
        self.lent = None  # the parent's to give back: the owner word names the parent
        self._recovery.reopen()
        self._bind()
