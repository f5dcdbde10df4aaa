"""One-off shared-memory blocks that carry messages too big for a transport's unit.

The sender writes the payload into a fresh block named ``<channel>.oob.<random>``
and sends a small reference frame (flag ``FLAG_OOB``) through the channel; the
receiver that takes the reference copies the payload out once and removes the
block. A block whose reference is never taken (the receiver died, the channel was
unlinked) is removed by the channel's ``unlink()``, which sweeps its prefix.

Blocks are never registered with ``multiprocessing.resource_tracker``: the sender
exiting must not remove a block the receiver has not read yet.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import secrets
import stat
import struct
from collections.abc import Callable, Sequence

from typing_extensions import Buffer

from ipckit._oserror import no_space_error, translate_os_errors
from ipckit.errors import MessageTooLarge, ProtocolError

__all__ = [
    "nobody_holds",
    "SHM_DIR",
    "discard_block",
    "open_block",
    "put_block",
    "resolve",
    "sweep_blocks",
]

SHM_DIR = "/dev/shm"
_REF = struct.Struct("<QB")  # payload length, name length; the name follows


def _path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


def put_block(prefix: str, parts: Sequence[Buffer], mode: int = 0o600) -> bytes:
    """Write ``parts`` into a new block and return the reference to send."""
    views = [memoryview(p).cast("B") for p in parts]
    total = sum(v.nbytes for v in views)
    name = f"{prefix}.oob.{secrets.token_hex(8)}"
    with translate_os_errors(f"creating an out-of-band block for {prefix}"):
        fd = os.open(_path(name), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            if total:
                # Reserve the pages now: a full /dev/shm fails here, not with SIGBUS later.
                try:
                    os.posix_fallocate(fd, 0, total)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        raise no_space_error(
                            f"sending a {total}-byte message out of band on {prefix}",
                            _path(name),
                            total,
                        ) from exc
                    raise
                with mmap.mmap(fd, total) as mem:
                    pos = 0
                    for v in views:
                        mem[pos : pos + v.nbytes] = v
                        pos += v.nbytes
        except BaseException:
            os.close(fd)
            os.unlink(_path(name))
            raise
        os.close(fd)
    encoded = name.encode()
    return _REF.pack(total, len(encoded)) + encoded


def _parse(ref: Buffer) -> tuple[int, str]:
    view = memoryview(ref)
    if view.nbytes < _REF.size:
        raise ProtocolError("out-of-band reference is truncated")
    total, name_len = _REF.unpack_from(view, 0)
    raw = bytes(view[_REF.size : _REF.size + name_len])
    if len(raw) != name_len or view.nbytes != _REF.size + name_len:
        raise ProtocolError("out-of-band reference has a bad length")
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        raise ProtocolError("out-of-band reference name is not UTF-8") from None
    if "/" in name or ".oob." not in name or name.startswith("."):
        raise ProtocolError(f"out-of-band reference names an unexpected object {name!r}")
    return total, name


def open_block(
    ref: Buffer, max_message_size: int, url: str
) -> tuple[memoryview, Callable[[], None]]:
    """Map the block a reference names, checked against this end's ``max_message_size``.

    The one resolver every transport uses (:func:`resolve` copies through it; a
    zero-copy receive keeps the mapping). The reference is parsed and checked
    first; a block over the limit is removed and refused with
    :class:`MessageTooLarge` (the message is dropped, the channel goes on); a
    reference that is malformed or names no block is a :class:`ProtocolError`.
    The second item unmaps and removes the block.
    """
    total, name = _parse(ref)
    if total > max_message_size:
        _remove(name)
        raise MessageTooLarge(
            f"incoming message on {url} has {total} bytes, more than this end's "
            f"max_message_size={max_message_size}; it was dropped: open this end with a "
            "larger max_message_size="
        )
    return _map(total, name)


def resolve(ref: Buffer, max_message_size: int, url: str) -> bytes:
    """The payload a reference names, copied out; the block is removed (see :func:`open_block`)."""
    view, done = open_block(ref, max_message_size, url)
    try:
        return bytes(view)
    finally:
        done()


def _map(total: int, name: str) -> tuple[memoryview, Callable[[], None]]:
    """Map block ``name`` of ``total`` bytes read-only; the second item unmaps and removes it."""
    try:
        # No symlinks and no FIFOs: a reference written by a hostile peer must not make
        # us read (or block on) anything but a regular block in /dev/shm.
        fd = os.open(_path(name), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ProtocolError(
            f"out-of-band block {name} cannot be opened ({exc.strerror}); it was removed "
            "(the channel was unlinked, or the sender gave up) or never existed"
        ) from exc
    with translate_os_errors(f"mapping out-of-band block {name}"):
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ProtocolError(f"out-of-band reference names {name}, not a regular block")
            size = info.st_size
            if size != total:
                raise ProtocolError(
                    f"out-of-band block {name} holds {size} bytes, the reference says {total}"
                )
            mem = mmap.mmap(fd, total, prot=mmap.PROT_READ) if total else None
        finally:
            os.close(fd)
    view = memoryview(mem) if mem is not None else memoryview(b"")

    def done() -> None:
        try:
            view.release()
            if mem is not None:
                mem.close()
        except BufferError:
            pass  # a slice is still in use: the mapping goes when it does; remove the name now
        _remove(name)

    return view, done


def discard_block(ref: Buffer) -> None:
    """Remove the block named by ``ref`` without reading it."""
    try:
        _, name = _parse(ref)
    except ProtocolError:
        return
    _remove(name)


def _remove(name: str) -> None:
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        pass


def sweep_blocks(prefix: str) -> int:
    """Remove every block left under ``prefix``; return how many."""
    removed = 0
    start = f"{prefix}.oob."
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(start):
            try:
                os.unlink(_path(name))
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def nobody_holds(path: str) -> bool:
    """True when no handle, in any process, holds ``path`` with a shared ``flock``.

    Every handle of a channel keeps a shared lock on one of its files (the kernel
    drops it when the process dies); a fresh exclusive lock that does not wait is
    granted only when none is left. False when the file is gone.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
