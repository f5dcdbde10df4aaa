"""A tiny shared state file for named queues (``fifo://``, ``mq://``): flag, identity, holders.

The kernel objects behind those queues have no room for "this queue has ended" or
"which channel is this", so each queue keeps a 64-byte file beside it, mapped
shared by every handle:

    offset  size  field
    0       4     magic b"IKQS" (written last by the creator: a file without it is half-made)
    4       1     shut down (0 or 1)
    8       8     creation id (random; names the channel's out-of-band blocks)
    16      8     st_dev of the kernel object (the queue or the FIFO) it belongs to
    24      8     st_ino of that object
    32      4     pid of the creator (for ``ipckit ls`` and ``gc``; 0 in older files)

Reading the flag is a memory load, so senders check it on every send for free.
The flag is the truth; an end-of-stream frame written into the queue is only the
doorbell that wakes receivers blocked in ``poll`` (they also wake in bounded
slices, so a lost doorbell costs latency, never a hang).

Identity: an attacher accepts the file only if it names the kernel object it
opened, so a state file left by an older channel of the same name is never used,
and :meth:`QueueState.unlink` removes the file only if it is still this handle's.

Holders: every handle keeps its own open file description of the state file with
a shared ``flock``; the kernel drops it when the handle closes or its process
dies. :meth:`QueueState.last_holder` (an exclusive ``flock`` that does not wait)
tells the closing handle that no other handle is left, so nobody can still read
the out-of-band blocks its queue referenced. A forked child gets a description of
its own (made before the fork), so a parent and child are two holders.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import secrets
import stat
import struct
import time
from collections.abc import Callable

from ipckit._oserror import no_space_error, os_error_to_ipc
from ipckit.backends._hold import Hold, map_unlocked
from ipckit.errors import IPCError, ProtocolError

__all__ = ["CREATOR_AT", "MAGIC", "SHUT_BYTE", "QueueState", "read_header"]

_SIZE = 64
_MAGIC = b"IKQS"
MAGIC = _MAGIC
#: Offset of the shut-down byte, for callers that read :attr:`QueueState.mapping` directly.
SHUT_BYTE = 4
_SHUT = SHUT_BYTE
_IDENTITY = struct.Struct("<8sQQ")  # creation id, st_dev, st_ino of the kernel object
_IDENTITY_AT = 8
_CREATOR = struct.Struct("<I")
CREATOR_AT = 32
#: How long an attacher waits for a creator that is still writing the state file.
_ATTACH_WAIT = 2.0


def read_header(path: str) -> tuple[bool, int, bytes]:
    """``(whole, creator pid, creation id)`` of a state file, read without taking a hold.

    ``whole`` is False for a file its creator never finished (then pid 0 and no id).
    For ``ipckit ls``/``gc``: raises ``OSError`` when the file cannot be read.
    """
    # O_NONBLOCK: a FIFO planted under a state file's name must not hang `ipckit ls`.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        return read_header_fd(fd)
    finally:
        os.close(fd)


def read_header_fd(fd: int) -> tuple[bool, int, bytes]:
    """:func:`read_header` of an open descriptor; ``OSError`` if it is not a regular file."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a queue state file (not a regular file)")
    data = os.pread(fd, _SIZE, 0)
    if len(data) < _SIZE or data[:4] != _MAGIC:
        return False, 0, b""
    (pid,) = _CREATOR.unpack_from(data, CREATOR_AT)
    creation_id, _dev, _ino = _IDENTITY.unpack_from(data, _IDENTITY_AT)
    return True, pid, creation_id


class QueueState:
    """The mapped state file of one queue handle."""

    __slots__ = ("_file", "_hold", "_map", "creation_id", "path")

    def __init__(self, path: str, fd: int, creation_id: bytes) -> None:
        self.path = path
        st = os.fstat(fd)
        self._file = (st.st_dev, st.st_ino)
        self.creation_id = creation_id
        self._map = map_unlocked(fd, _SIZE)
        self._hold = Hold(fd)
        self._hold.take()

    @classmethod
    def create(cls, path: str, *, mode: int, kernel_id: tuple[int, int], what: str) -> QueueState:
        """Write a new state file for the kernel object ``kernel_id`` (``(st_dev, st_ino)``).

        The caller has just created that object, so a file already at ``path`` is a
        stale one from an older channel and is replaced. Space is reserved first
        (``posix_fallocate``): a full filesystem is a clear error, never a SIGBUS.
        Nothing is left behind on failure.
        """
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise os_error_to_ipc(exc, f"{what}: removing a stale state file", "remove") from exc
        made = False
        fd = -1
        try:
            fd = os.open(
                path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode
            )
            made = True
            os.fchmod(fd, mode)  # open() honours the umask; the caller asked for mode
            try:
                os.posix_fallocate(fd, 0, _SIZE)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise no_space_error(what, path, _SIZE) from exc
                raise
            creation_id = secrets.token_bytes(8)
            os.pwrite(fd, _IDENTITY.pack(creation_id, *kernel_id), _IDENTITY_AT)
            os.pwrite(fd, _CREATOR.pack(os.getpid()), CREATOR_AT)
            os.pwrite(fd, _MAGIC, 0)  # last: from now on attachers accept the file
            return cls(path, fd, creation_id)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            if made:
                os.unlink(path)
            if isinstance(exc, OSError) and not isinstance(exc, IPCError):
                raise os_error_to_ipc(
                    exc, f"{what}: writing the state file {path}", "create"
                ) from exc
            raise

    @classmethod
    def attach(
        cls, path: str, *, kernel_id: Callable[[], tuple[int, int]], what: str
    ) -> QueueState:
        """Map the state file of the kernel object whose ``(st_dev, st_ino)`` ``kernel_id()`` gives.

        The hold is taken before ``kernel_id()`` runs (it may open the object), so a
        last handle sweeping the channel's blocks finishes first. Waits up to two
        seconds for a creator that is still writing the file, then raises
        :class:`ProtocolError` (the channel is half-made).
        """
        give_up = time.monotonic() + _ATTACH_WAIT
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                fd = -1
            except OSError as exc:
                raise os_error_to_ipc(
                    exc, f"{what}: opening the state file {path}", "attach"
                ) from exc
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                    head = os.pread(fd, _IDENTITY_AT + _IDENTITY.size, 0)
                    if len(head) == _IDENTITY_AT + _IDENTITY.size and head[:4] == _MAGIC:
                        creation_id, dev, ino = _IDENTITY.unpack_from(head, _IDENTITY_AT)
                        if (dev, ino) == kernel_id() and os.fstat(fd).st_size >= _SIZE:
                            return cls(path, fd, creation_id)
                except BaseException as exc:
                    os.close(fd)
                    if isinstance(exc, OSError) and not isinstance(exc, IPCError):
                        raise os_error_to_ipc(
                            exc, f"{what}: mapping the state file {path}", "attach"
                        ) from exc
                    raise
                os.close(fd)
            if time.monotonic() >= give_up:
                raise ProtocolError(
                    f"{what}: the channel is half-made: its state file {path} is missing or "
                    "belongs to an older channel of the same name (its creator died, or it "
                    "was not made by ipckit); if no program is creating it right now, remove "
                    "the queue or FIFO by hand and create it again"
                )
            time.sleep(0.005)

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

    def last_holder(self) -> bool:
        """True if no other handle (in any process) has this state file open."""
        return self._hold.fd >= 0 and self._hold.is_last_closing()

    def close(self) -> None:
        """Unmap the state and drop this handle's hold (the file stays for other handles)."""
        self._hold.close()
        self._map.close()

    def is_current(self) -> bool:
        """True while ``path`` still names this handle's state file."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._file

    def unlink(self) -> None:
        """Remove the state file if ``path`` still names this handle's; idempotent."""
        if self.is_current():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
