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

    __slots__ = ("_fd", "_pid")

    def __init__(self) -> None:
        self._fd = -1
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
            self._fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._pid = pid
        return self._fd

    def signal(self) -> None:
        """Wake every wait on this handle (permanently: callers re-check their state)."""
        try:
            os.eventfd_write(self.fd(), 1)
        except OSError:
            pass

    def close(self) -> None:
        """Close the descriptor if this process made it (a parent's is not ours to close)."""
        if self._pid == os.getpid() and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
