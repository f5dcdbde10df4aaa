"""Translation of ``OSError`` and ``posix_ipc`` errors into ipckit's own.

Backends wrap their system calls in :func:`translate_os_errors` so that users only
ever see ipckit exceptions, each chained (``raise ... from``) to the original.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import posix_ipc

from ipckit.errors import (
    ChannelClosed,
    ChannelExists,
    ChannelNotFound,
    IPCError,
    TransportError,
)

__all__ = ["PermissionDenied", "os_error_to_ipc", "translate_os_errors"]


class PermissionDenied(IPCError, PermissionError):
    """The operating system refused access to a named object."""


_CLOSED_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN}
)


def os_error_to_ipc(exc: BaseException, what: str) -> IPCError:
    """Return the ipckit exception that stands for ``exc`` raised while doing ``what``."""
    if isinstance(exc, IPCError):
        return exc
    if isinstance(exc, posix_ipc.ExistentialError):
        text = str(exc).lower()
        if "already exists" in text:
            return ChannelExists(f"{what}: already exists; attach without create=True or unlink it")
        return ChannelNotFound(f"{what}: does not exist; create it with create=True first")
    if isinstance(exc, posix_ipc.PermissionsError):
        return PermissionDenied(
            f"{what}: permission denied ({exc}); check the object's owner and mode"
        )
    if isinstance(exc, FileExistsError):
        return ChannelExists(f"{what}: already exists; attach without create=True or unlink it")
    if isinstance(exc, FileNotFoundError):
        return ChannelNotFound(f"{what}: does not exist; create it with create=True first")
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"{what}: permission denied ({exc.strerror}); check owner and mode")
    if isinstance(exc, (BrokenPipeError, ConnectionError)) or (
        isinstance(exc, OSError) and exc.errno in _CLOSED_ERRNOS
    ):
        return ChannelClosed(f"{what}: the peer closed the channel")
    if isinstance(exc, OSError):
        err = TransportError(exc.errno or 0, f"{what}: {exc.strerror or exc}")
        return err
    if isinstance(exc, posix_ipc.Error):
        return TransportError(0, f"{what}: {exc}")
    return TransportError(0, f"{what}: {exc}")


@contextmanager
def translate_os_errors(what: str) -> Iterator[None]:
    """Re-raise OS and ``posix_ipc`` errors inside the block as ipckit errors."""
    try:
        yield
    except IPCError:
        raise
    except (OSError, posix_ipc.Error) as exc:
        raise os_error_to_ipc(exc, what) from exc
