"""A per-handle eventfd that wakes the handle's own blocked calls.

``interrupt()``/``shutdown()`` write to it; waits ``poll`` it beside the data
descriptor. After ``fork`` the inherited eventfd is shared with the parent, so a
child closing its copy of a handle would wake the parent's waiters for good: the
first use in a new process makes a fresh one.
"""

from __future__ import annotations

import os
import select
from typing import Any

__all__ = ["FdReady", "Waits", "Waker"]


class Waker:
    """The wake-up descriptor of one handle, renewed in each process that uses it."""

    __slots__ = ("_fds", "_pid")

    def __init__(self) -> None:
        # The descriptor lands here in the same C call that makes it (list.extend
        # over map), so an interrupt right after os.eventfd returns cannot leak it.
        self._fds: list[int] = []
        self._pid = -1

    def stale(self) -> bool:
        """True when the next :meth:`fd` will make a new descriptor (first use, or after fork).

        Pollers registered with the old descriptor must then be rebuilt.
        """
        return self._pid != os.getpid()

    def fd(self) -> int:
        """The descriptor to poll for wake-ups, made on first use in this process."""
        pid = os.getpid()
        if self._pid != pid:
            if self._pid != -1:
                self._fds.clear()  # the parent's, not ours to close
            if not self._fds:
                self._fds.extend(map(os.eventfd, (0,), (os.EFD_CLOEXEC | os.EFD_NONBLOCK,)))
            self._pid = pid
        return self._fds[-1]

    def signal(self) -> None:
        """Wake every wait on this handle (permanently: callers re-check their state)."""
        try:
            os.eventfd_write(self.fd(), 1)
        except OSError:
            pass

    def close(self) -> None:
        """Close the descriptor if this process made it (a parent's is not ours to close)."""
        fds = self._fds
        if self._pid == os.getpid() or (self._pid == -1 and fds):
            while fds:
                os.close(fds.pop())
        fds.clear()
        self._pid = -1


class FdReady:
    """The :class:`~ipckit._transport.Ready` of a descriptor the kernel keeps current.

    Nothing to count or drain: the kernel itself says when the descriptor is ready.
    """

    __slots__ = ("fd", "recheck", "writable")

    def __init__(self, fd: int, writable: bool, recheck: float | None) -> None:
        self.fd = fd
        self.writable = writable
        self.recheck = recheck

    def park(self) -> bool:
        """Always wait: the caller has just seen the call would block."""
        return True

    def unpark(self) -> None:
        """Nothing to undo."""

    def pass_on(self) -> None:
        """The kernel wakes every waiter on a ready descriptor itself."""


class Waits:
    """The waiting that every descriptor transport shares (streams and named queues).

    A per-handle :class:`Waker` and ``select.poll`` objects over a descriptor and the
    waker's eventfd, one per (descriptor, events) and remade after ``fork``; and
    ``interrupt()``, which marks the handle and wakes every wait on it. The C core's
    own waits poll the same eventfd (it asks :meth:`_ensure_wake`) and read the same
    ``_interrupted`` flag, so one ``interrupt()`` ends both. A transport calls
    :meth:`_init_waits` in its ``__init__``.
    """

    _interrupted: bool
    native_core: Any

    def _init_waits(self) -> None:
        self._interrupted = False
        self._waker = Waker()
        self._polls: dict[tuple[int, int], select.poll] = {}

    def _ensure_wake(self) -> int:
        """The wake-up descriptor of this process (a new one after fork)."""
        if self._waker.stale():
            self._polls.clear()  # registered with the parent's descriptor
        return self._waker.fd()

    def _poller(self, fd: int, events: int) -> select.poll:
        """A poll object over ``fd`` (for ``events``) and the wake-up descriptor."""
        wake = self._ensure_wake()
        poller = self._polls.get((fd, events))
        if poller is None:
            poller = select.poll()
            poller.register(fd, events)
            poller.register(wake, select.POLLIN)
            self._polls[(fd, events)] = poller
        return poller

    def _wait_fd(self, sending: bool) -> int:
        """The descriptor a send (``sending``) or a receive waits on; raises when there is none."""
        raise NotImplementedError

    #: Seconds after which a loop re-checks a quiet wait (see Ready.recheck).
    _recheck: float | None = None
    #: See Transport.park_mid_frame; queues write whole units and never park.
    park_mid_frame = False

    def readiness(self, sending: bool) -> FdReady:
        """The event-loop wait for a send or a receive: the descriptor the sync waits poll."""
        return FdReady(self._wait_fd(sending), sending, self._recheck)

    def resume_send(self, give_up: bool) -> bool:
        """Nothing is ever parked mid-frame here (transports that park override this)."""
        return True

    def _forget_polls(self) -> None:
        """Drop the poll objects (a descriptor is closing)."""
        self._polls.clear()

    def interrupt(self) -> None:
        """Wake blocked calls on this handle so they raise ``HandleClosed``."""
        self._interrupted = True
        if self.native_core is not None:
            self.native_core.stop()
        self._waker.signal()
