"""A tiny shared state file for named queues (``fifo://``, ``mq://``): the shutdown flag.

The kernel objects behind those queues have no room for "this queue has ended", so
each queue keeps a 64-byte file beside it, mapped shared by every handle:

    offset  size  field
    0       4     magic b"IKQS"
    4       1     shut down (0 or 1)

Reading the flag is a memory load, so senders check it on every send for free.
The flag is the truth; an end-of-stream frame written into the queue is only the
doorbell that wakes receivers blocked in ``poll`` (they also wake in bounded
slices, so a lost doorbell costs latency, never a hang).
"""

from __future__ import annotations

import mmap
import os

from ipckit._oserror import translate_os_errors

__all__ = ["SHUT_BYTE", "QueueState"]

_SIZE = 64
_MAGIC = b"IKQS"
#: Offset of the shut-down byte, for callers that read :attr:`QueueState.mapping` directly.
SHUT_BYTE = 4
_SHUT = SHUT_BYTE


class QueueState:
    """The mapped state file of one queue handle."""

    __slots__ = ("_map", "path")

    def __init__(self, path: str, *, mode: int, reset: bool) -> None:
        self.path = path
        with translate_os_errors(f"opening the queue state file {path}"):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)
                self._map = mmap.mmap(fd, _SIZE)
            finally:
                os.close(fd)
        if reset or self._map[:4] != _MAGIC:
            # A creator starts from a clean state even if a stale file was left behind.
            self._map[_SHUT] = 0
            self._map[:4] = _MAGIC

    @property
    def mapping(self) -> mmap.mmap:
        """The shared bytes (``mapping[SHUT_BYTE]`` is the flag), for hot paths."""
        return self._map

    @property
    def shut(self) -> bool:
        """True once any handle called ``shutdown()``."""
        return self._map[_SHUT] != 0

    def set_shut(self) -> None:
        """Mark the queue ended for every handle."""
        self._map[_SHUT] = 1

    def close(self) -> None:
        """Unmap the state (the file stays for other handles)."""
        self._map.close()

    def unlink(self) -> None:
        """Remove the state file; idempotent."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
