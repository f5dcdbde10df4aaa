"""Handing a stream end's descriptors to another process through pickling.

Two cases, as in ``multiprocessing.reduction.DupFd``:

- While ``multiprocessing`` starts a child (``spawn``/``forkserver`` pickling the
  ``Process``), the descriptors go to the child with it and nothing is duplicated.
- Otherwise (a ``multiprocessing`` queue or pipe to a running process, or a plain
  ``pickle.dumps``) the descriptors are duplicated and offered through
  ``multiprocessing``'s resource sharer; the process that unpickles fetches them
  over a Unix socket and the duplicates close. multiprocessing keeps an offer that
  is never fetched open forever; here every offer belongs to the handle that made
  it and :meth:`Offers.revoke` (on the handle's close) closes the duplicates of
  offers not yet fetched. So a pickle that is never loaded leaks nothing, and the
  price is that the sender must keep its handle open until the receiver has
  unpickled it.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from ipckit.errors import ChannelClosed

__all__ = ["Offers"]


class _Offer:
    """Duplicates waiting for one receiver; taken exactly once (sent or revoked)."""

    __slots__ = ("_fds", "_lock")

    def __init__(self, fds: list[int]) -> None:
        self._fds: list[int] | None = fds
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self._fds is not None

    def take(self) -> list[int] | None:
        with self._lock:
            fds, self._fds = self._fds, None
        return fds

    def send(self, conn: Any, pid: int) -> None:
        """Run by the resource sharer's thread when the receiver connects."""
        from multiprocessing import reduction

        fds = self.take()
        if fds is None:
            conn.send(False)
            return
        try:
            conn.send(True)
            with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                reduction.sendfds(sock, fds)
        finally:
            for fd in fds:
                os.close(fd)

    def revoke(self) -> None:
        for fd in self.take() or ():
            os.close(fd)

    def forget(self) -> None:
        """In a forked child: close the inherited copies (the lock may be the parent's)."""
        fds, self._fds = self._fds, None
        for fd in fds or ():
            os.close(fd)


def _nothing() -> None:
    """The sharer's close hook: the offer closes its own duplicates."""


class _Fetch:
    """The pickled form of an offer: fetch the descriptors from the sending process."""

    def __init__(self, ident: Any, slots: tuple[bool, ...], url: str) -> None:
        self._id = ident
        self._slots = slots
        self._url = url

    def detach(self) -> list[int | None]:
        from multiprocessing import reduction, resource_sharer

        sharer: Any = getattr(resource_sharer, "_resource_sharer")  # noqa: B009 - untyped
        with sharer.get_connection(self._id) as conn:
            if not conn.recv():
                raise ChannelClosed(
                    f"the process that pickled this end of {self._url} closed it before this "
                    "process unpickled it; keep the sender's handle open until the receiver "
                    "has it (or pass it as a Process argument, which has no such limit)"
                )
            with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                fds = iter(reduction.recvfds(sock, sum(self._slots)))
        return [next(fds) if present else None for present in self._slots]


class _Spawned:
    """The pickled form while multiprocessing starts a child: its own DupFd objects."""

    def __init__(self, dups: tuple[Any, ...]) -> None:
        self._dups = dups

    def detach(self) -> list[int | None]:
        return [None if dup is None else dup.detach() for dup in self._dups]


class Offers:
    """The offers one handle has made; :meth:`revoke` closes those not yet fetched."""

    __slots__ = ("_offers",)

    def __init__(self) -> None:
        self._offers: list[_Offer] = []

    def pickled(self, fds: tuple[int | None, ...], url: str) -> _Fetch | _Spawned:
        """A picklable object whose ``detach()`` gives the receiver its copies of ``fds``."""
        from multiprocessing import context, resource_sharer

        popen = context.get_spawning_popen()
        if popen is not None:
            return _Spawned(
                tuple(
                    None if fd is None else popen.DupFd(popen.duplicate_for_child(fd)) for fd in fds
                )
            )
        self._offers = [o for o in self._offers if o.open]
        dups: list[int] = []
        try:
            for fd in fds:
                if fd is not None:
                    dups.append(os.dup(fd))
        except BaseException:
            for fd in dups:
                os.close(fd)
            raise
        offer = _Offer(dups)
        self._offers.append(offer)
        sharer: Any = getattr(resource_sharer, "_resource_sharer")  # noqa: B009 - untyped
        ident = sharer.register(offer.send, _nothing)
        return _Fetch(ident, tuple(fd is not None for fd in fds), url)

    def revoke(self) -> None:
        """Close the duplicates of every offer no receiver has fetched."""
        offers, self._offers = self._offers, []
        for offer in offers:
            offer.revoke()

    def forget(self) -> None:
        """In a forked child: close this process's copies of the parent's offers."""
        offers, self._offers = self._offers, []
        for offer in offers:
            offer.forget()
