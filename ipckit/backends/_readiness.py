"""A ``fileno()`` that polls readable whenever a handle can hand out a frame at once.

A handle that reads a whole kernel unit (an mq message, a FIFO packet) may get
several frames and keep the rest in its own buffer, where the kernel descriptor
cannot see them. The descriptor handed to users is an epoll instance watching two
things, level-triggered: the kernel descriptor (a unit is queued) and an eventfd
this handle keeps readable while its buffer is not empty (or the stream has
ended). So a selector loop doing one non-blocking receive per readable event gets
every frame.

Cost: nothing until ``fileno()`` is first called; after that one ``eventfd``
write or read per empty <-> non-empty change of the buffer, never per message.

Per process: after ``fork`` the inherited epoll and eventfd are shared with the
parent, so the child drops them (``os.register_at_fork``) and makes its own on
its next ``fileno()``.
"""

from __future__ import annotations

import os
import select
import weakref
from functools import partial

from ipckit._critical import run_all

__all__ = ["Readiness"]

_live: weakref.WeakSet[Readiness] = weakref.WeakSet()


class Readiness:
    """The user-facing descriptor of one buffering handle."""

    __slots__ = ("__weakref__", "_clear", "_epoll", "_event", "_mark", "armed", "marked")

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._event = -1
        #: True once ``fileno()`` was called in this process: transitions must be told.
        self.armed = False
        #: True while the eventfd reads as readable.
        self.marked = False

    def fileno(self, kernel_fd: int, buffered: bool) -> int:
        """The epoll descriptor over ``kernel_fd`` and the buffer's eventfd, made on first use."""
        if self._epoll is None:
            event = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            try:
                epoll = select.epoll()
                epoll.register(kernel_fd, select.EPOLLIN)
                epoll.register(event, select.EPOLLIN)
            except BaseException:
                os.close(event)
                raise
            self._event = event
            # The eventfd call and the store of ``marked`` run as one C-level call, so
            # an interrupt cannot leave them disagreeing (ipckit._critical).
            self._mark = (
                partial(os.eventfd_write, event, 1),
                partial(setattr, self, "marked", True),
            )
            self._clear = (partial(os.eventfd_read, event), partial(setattr, self, "marked", False))
            self._epoll = epoll
            self.armed = True
            _live.add(self)
            if buffered:
                self.mark()
        return self._epoll.fileno()

    def mark(self) -> None:
        """The buffer became non-empty (or the stream ended): poll readable."""
        if not self.marked and self._event >= 0:
            run_all(self._mark)

    def clear(self) -> None:
        """The buffer became empty: readable again only when the kernel has a unit."""
        if self.marked and self._event >= 0:
            try:
                run_all(self._clear)
            except BlockingIOError:
                self.marked = False  # already unreadable

    def close(self) -> None:
        """Close the descriptors made in this process."""
        _live.discard(self)
        epoll, self._epoll = self._epoll, None
        event, self._event = self._event, -1
        self.armed = self.marked = False
        if epoll is not None:
            epoll.close()
        if event >= 0:
            os.close(event)

    def _forget(self) -> None:
        # In a forked child: the parent's descriptors are the parent's business,
        # but the child's copies of them are its own to close.
        self.close()


def _after_fork_in_child() -> None:
    for r in list(_live):
        r._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
