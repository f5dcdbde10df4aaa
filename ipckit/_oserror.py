"""Translation of ``OSError`` and ``posix_ipc`` errors into ipckit's own, in one place.

Backends wrap their system calls in :func:`translate_os_errors` (or call
:func:`os_error_to_ipc` in an ``except``) so that users only ever see ipckit
exceptions, each chained (``raise ... from``) to the original. The class is
chosen by type and ``errno``, never by the text of a message.

``posix_ipc`` has no ``errno`` on its own exceptions: ``ExistentialError`` stands
for ``EEXIST`` when creating and for ``ENOENT``/``EBADF`` otherwise (see
``posix_ipc_module.c``), so the caller says which operation it was doing with
``op``: ``"create"``, ``"attach"``, ``"remove"`` or ``"use"`` (a call on an open
handle). Its ``PermissionsError`` is ``EACCES``, ``BusyError`` is ``EAGAIN`` or
``ETIMEDOUT`` and ``SignalError`` is ``EINTR``; every other errno comes as a plain
``OSError`` with ``errno`` set, or as ``ValueError`` for ``EINVAL``.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import posix_ipc

from ipckit.errors import (
    ChannelClosed,
    ChannelExists,
    ChannelNotFound,
    ConfigurationError,
    HandleClosed,
    IPCError,
    PermissionDenied,
    Timeout,
    TransportError,
)

__all__ = [
    "Op",
    "PermissionDenied",
    "no_space_error",
    "os_error_to_ipc",
    "translate_os_errors",
]

#: What the failing call was doing; decides what ``posix_ipc.ExistentialError`` means.
Op = Literal["create", "attach", "remove", "use"]

_CLOSED_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN}
)
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def _mount_point(path: str) -> str:
    """The mount point of the filesystem holding ``path`` (or its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return path
        path = parent
    try:
        dev = os.stat(path).st_dev
        while path != "/":
            parent = os.path.dirname(path)
            if os.stat(parent).st_dev != dev:
                return path
            path = parent
    except OSError:
        pass
    return path


def no_space_error(what: str, path: str, needed: int) -> TransportError:
    """The error for a full filesystem: which one, how much was needed, what to do."""
    mount = _mount_point(path)
    try:
        st = os.statvfs(mount)
        free = f"{st.f_bavail * st.f_frsize} of {st.f_blocks * st.f_frsize} bytes free"
    except OSError:
        free = "free space unknown"
    hint = (
        "remove unused channels (ipckit ls, ipckit gc, ipckit rm) or make it bigger, e.g. "
        f"mount -o remount,size=2G {mount}"
        if mount.startswith("/dev/shm")
        else "free some space there or choose a path on another filesystem"
    )
    return TransportError(
        errno.ENOSPC,
        f"{what}: the filesystem at {mount} is full ({free}; {needed} bytes were needed "
        f"for {path}); {hint}",
    )


def os_error_to_ipc(exc: BaseException, what: str, op: Op = "use") -> IPCError:
    """Return the ipckit exception that stands for ``exc`` raised while doing ``what``."""
    if isinstance(exc, IPCError):
        return exc
    if isinstance(exc, posix_ipc.ExistentialError):
        if op == "create":
            return ChannelExists(
                f"{what}: it already exists; attach without create=True or unlink it"
            )
        if op == "use":
            return HandleClosed(f"{what}: the descriptor is closed (this handle was closed)")
        return ChannelNotFound(f"{what}: nothing of that name exists")
    if isinstance(exc, posix_ipc.PermissionsError):
        return PermissionDenied(f"{what}: permission denied; check the object's owner and mode")
    if isinstance(exc, posix_ipc.BusyError):
        return Timeout(f"{what}: timed out")
    if isinstance(exc, posix_ipc.SignalError):
        return TransportError(errno.EINTR, f"{what}: interrupted by a signal")
    if isinstance(exc, OSError):
        if not exc.errno and (code := out_of_descriptors()):
            # posix_ipc reports EMFILE/ENFILE as an OSError without errno: ask the kernel.
            exc = OSError(code, os.strerror(code))
        return _from_errno(exc, what, op)
    return TransportError(0, f"{what}: {exc}")


def out_of_descriptors() -> int:
    """EMFILE or ENFILE if this process cannot open one more descriptor now, else 0."""
    try:
        # Not dup(2): a daemon may have closed its stderr.
        os.close(os.open("/", os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return exc.errno
    return 0


def _from_errno(exc: OSError, what: str, op: Op) -> IPCError:
    code = exc.errno
    where = f" ({exc.filename})" if exc.filename else ""
    if code == errno.EEXIST:
        return ChannelExists(
            f"{what}: {exc.filename or 'it'} already exists; attach without create=True "
            "or remove it"
        )
    if code == errno.ENOENT:
        if op == "create":
            return ChannelNotFound(f"{what}: a directory in the path{where} does not exist")
        return ChannelNotFound(f"{what}: nothing of that name exists{where}")
    if code in _DENIED_ERRNOS:
        return PermissionDenied(
            f"{what}: permission denied{where}; check the owner and mode of the object "
            "and of its directory"
        )
    if code in _CLOSED_ERRNOS:
        return ChannelClosed(f"{what}: the peer closed the channel")
    if code == errno.EBADF:
        return HandleClosed(f"{what}: the descriptor is closed (this handle was closed)")
    if code == errno.ENAMETOOLONG:
        return ConfigurationError(f"{what}: a name or path is too long{where}; use a shorter one")
    if code == errno.ENOSPC and exc.filename:
        return no_space_error(what, str(exc.filename), 0)
    if code in (errno.EMFILE, errno.ENFILE):
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        scope = "this process" if code == errno.EMFILE else "the system"
        return TransportError(
            code,
            f"{what}: {scope} has too many open files (RLIMIT_NOFILE={soft}); close "
            "unused channels or raise the limit (ulimit -n)",
        )
    return TransportError(code or 0, f"{what}: {exc.strerror or exc}{where}")


@contextmanager
def translate_os_errors(what: str, op: Op = "use") -> Iterator[None]:
    """Re-raise OS and ``posix_ipc`` errors inside the block as ipckit errors."""
    try:
        yield
    except IPCError:
        raise
    except (OSError, posix_ipc.Error) as exc:
        raise os_error_to_ipc(exc, what, op) from exc
