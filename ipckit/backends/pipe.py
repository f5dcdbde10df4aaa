"""``ipckit.pipe()``: a connected pair of channels over anonymous OS pipes.

Two pipes make a duplex pair. The descriptors are close-on-exec, so unrelated
programs started with ``exec`` never inherit them; ``multiprocessing`` children
get them explicitly through pickling (``_fdshare``: passed along while
multiprocessing starts a child, otherwise offered until the handle closes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ipckit._oserror import translate_os_errors
from ipckit._transport import Capabilities
from ipckit.backends._stream import StreamTransport

__all__ = ["PIPE_CAPABILITIES", "make_pipe_pair"]

PIPE_CAPABILITIES = Capabilities(
    native_message_size=None,
    many_producers=False,
    many_consumers=False,
    has_fileno=True,
    named=False,
)

#: Kernel pipe buffer we ask for: fewer wake-ups under load (the default is 64 KiB).
_PIPE_SIZE = 1024 * 1024


def _grow(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (OSError, AttributeError):
        pass  # capped by /proc/sys/fs/pipe-max-size: the default size works too


def _reduce(transport: StreamTransport) -> tuple[Callable[..., object], tuple[object, ...]]:
    fds = (transport.read_fd(), transport.write_fd())
    if fds == (None, None):
        raise TypeError(f"a closed channel on {transport.url} cannot be passed on")
    return _rebuild, (transport.pickled_fds(fds), transport.url, transport._decoder._max)


def _rebuild(shared: Any, url: str, max_message_size: int) -> StreamTransport:
    rfd, wfd = shared.detach()
    return _transport(rfd, wfd, url, max_message_size)


def _transport(rfd: int | None, wfd: int | None, url: str, max_size: int) -> StreamTransport:
    return StreamTransport(
        rfd,
        wfd,
        url=url,
        max_message_size=max_size,
        capabilities=PIPE_CAPABILITIES,
        reducer=_reduce,
        atomic_writes=True,  # pipe(7): a write of at most PIPE_BUF bytes is all-or-nothing
    )


def make_pipe_pair(
    *, duplex: bool, max_message_size: int
) -> tuple[StreamTransport, StreamTransport]:
    """Two connected ends; with ``duplex=False`` the first receives, the second sends."""
    fds: list[int] = []
    try:
        with translate_os_errors("making a pipe pair"):
            # Each pair lands in fds in the same C call that makes it: none can leak.
            fds.extend(os.pipe())
            _grow(fds[1])
            if duplex:
                fds.extend(os.pipe())
                _grow(fds[3])
    except BaseException:
        for fd in fds:  # the first pipe, when the second was refused (out of descriptors)
            os.close(fd)
        raise
    if not duplex:
        r1, w1 = fds
        return (
            _transport(r1, None, "pipe://reader", max_message_size),
            _transport(None, w1, "pipe://writer", max_message_size),
        )
    r1, w1, r2, w2 = fds
    return (
        _transport(r1, w2, "pipe://left", max_message_size),
        _transport(r2, w1, "pipe://right", max_message_size),
    )
