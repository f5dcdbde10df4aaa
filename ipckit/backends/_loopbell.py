"""A named FIFO that wakes event loops parked on a ``shm://`` ring.

Shared memory has no descriptor an event loop could watch, so each ring has two
FIFOs beside its segment: one rung when records arrive, one when room frees up.
A side that finds the ring empty (or full) counts itself in the header under the
ring's lock, looks again, and only then waits for the FIFO to turn readable;
the other side writes one byte after it publishes, and only while such a count
is non-zero, so a ring with no event-loop waiter pays one header load per call
and never a system call. Lock release is a full barrier (``sem_post``) on both
sides, so either the waiter sees the new record or the publisher sees the count.

Every handle opens both FIFOs read-write and non-blocking, which never blocks and
keeps them open for writing; the bytes carry no meaning, a waiter drains them
all when it wakes and passes the wake-up on if the ring still has something for
another waiter.
"""

from __future__ import annotations

import contextlib
import os
import stat

from ipckit.errors import ProtocolError

__all__ = ["LoopBell"]

# O_NOFOLLOW: a symlink planted at the name is refused, as for the segment.
_FLAGS = os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
_BYTE = b"\0"


class LoopBell:
    """One FIFO: ``ring()`` makes it readable, ``drain()`` quiet again."""

    __slots__ = ("_fds", "path")

    def __init__(self, path: str, *, create: bool, mode: int) -> None:
        self.path = path
        # The descriptor lands here in the same C call that opens it (list.extend over
        # map), so an interrupt right after os.open returns cannot leak it.
        self._fds: list[int] = []
        if create:
            try:
                os.mkfifo(path, 0o600)
            except FileExistsError:
                # Left by a channel of this name whose removal was cut short: the caller
                # has just created the segment exclusively, so the name is its own now.
                os.unlink(path)
                os.mkfifo(path, 0o600)
            os.chmod(path, mode)  # mkfifo obeys the umask; the channel's mode does not
        self._fds.extend(map(os.open, (path,), (_FLAGS,)))
        if not stat.S_ISFIFO(os.fstat(self._fds[-1]).st_mode):
            self.close()
            raise ProtocolError(
                f"{path} is not a FIFO: something else took the name of this channel's "
                "event-loop doorbell; remove the channel (ipckit rm) and create it again"
            )

    @property
    def fd(self) -> int:
        """The descriptor an event loop watches for readability."""
        return self._fds[-1] if self._fds else -1

    def ring(self) -> None:
        """Make the FIFO readable (a full FIFO is readable already)."""
        if self._fds:
            with contextlib.suppress(OSError):
                os.write(self._fds[-1], _BYTE)

    def drain(self) -> int:
        """Read every byte waiting, so the FIFO polls quiet until the next ring; how many."""
        total = 0
        if self._fds:
            with contextlib.suppress(OSError):
                while True:
                    got = len(os.read(self._fds[-1], 65536))
                    total += got
                    if got < 65536:
                        break
        return total

    def close(self) -> None:
        """Close this handle's descriptor; the FIFO stays for the others."""
        fds = self._fds
        while fds:
            os.close(fds.pop())

    @staticmethod
    def unlink(path: str) -> None:
        """Remove the FIFO's name; handles that have it open keep working."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
