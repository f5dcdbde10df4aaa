"""A per-handle eventfd that wakes the handle's own blocked calls.

``interrupt()``/``shutdown()`` write to it; waits ``poll`` it beside the data
descriptor. After ``fork`` the inherited eventfd is shared with the parent, so a
child closing its copy of a handle would wake the parent's waiters for good: the
first use in a new process makes a fresh one.
"""

from __future__ import annotations

import os

__all__ = ["Waker"]


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
