"""Socket channels after the handshake: StreamTransport with MSG_NOSIGNAL, or over TLS.

Plain sockets are written with ``send``/``sendmsg`` and ``MSG_NOSIGNAL`` (a vanished
peer is ``EPIPE``, hence ``ChannelClosed``, never SIGPIPE) and read with ``readv`` on
the descriptor. TLS sockets go through the ``ssl.SSLSocket`` object: "would block"
becomes ``BlockingIOError`` so ``StreamTransport`` waits and retries, and each write
hands over at most ``_TLS_CHUNK`` bytes so a retry repeats exactly the same bytes (as
OpenSSL requires of a write that would block).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from ipckit._deadline import Deadline
from ipckit._framing import Frame
from ipckit._transport import Capabilities, OutFrame
from ipckit.backends._stream import StreamTransport
from ipckit.errors import ConfigurationError
from ipckit.serializers import PICKLE_ID

__all__ = ["SOCKET_CAPABILITIES", "make_transport"]

SOCKET_CAPABILITIES = Capabilities(
    native_message_size=None,
    many_producers=False,
    many_consumers=False,
    has_fileno=True,
    named=False,
)

_UNIX_SNDBUF = 4 * 1024 * 1024
#: Bytes handed to one TLS write: a retry after "would block" must repeat the same bytes.
_TLS_CHUNK = 256 * 1024


class _NoPickleTransport(StreamTransport):
    """Refuses pickle frames both ways: pickle over unauthenticated TCP runs a stranger's code."""

    def _refuse(self) -> ConfigurationError:
        return ConfigurationError(
            f"the pickle serializer over {self.url} needs an authkey: unpickling runs code "
            "chosen by whoever can connect; pass authkey= to both ends (or use msgpack)"
        )

    def send_frames(self, frames: Sequence[OutFrame], deadline: Deadline) -> None:
        """Send unless a frame is pickled."""
        for frame in frames:
            if frame.serializer_id == PICKLE_ID:
                raise self._refuse()
        super().send_frames(frames, deadline)

    def recv_frames(self, max_items: int, deadline: Deadline) -> list[Frame]:
        """Receive; a pickled frame from the peer is an error, not an object."""
        frames = super().recv_frames(max_items, deadline)
        for frame in frames:
            if frame.serializer_id == PICKLE_ID:
                raise self._refuse()
        return frames


def _reduce(transport: StreamTransport) -> tuple[Callable[..., object], tuple[object, ...]]:
    fd = transport.read_fd()
    if fd is None:
        raise TypeError(f"a closed channel on {transport.url} cannot be passed on")
    return _rebuild, (
        transport.pickled_fds((fd,)),
        transport.url,
        transport._decoder._max,
        isinstance(transport, _NoPickleTransport),
    )


def _rebuild(shared: Any, url: str, max_size: int, no_pickle: bool) -> StreamTransport:
    (fd,) = shared.detach()
    sock = socket.socket(fileno=fd)
    return make_transport(sock, url, max_size, no_pickle=no_pickle)


def _shutdown_write(fd: int) -> None:
    """FIN on the connection under ``fd`` (through a duplicate: TLS keeps its own object)."""
    with socket.socket(fileno=os.dup(fd)) as dup:
        dup.shutdown(socket.SHUT_WR)


def make_transport(
    sock: socket.socket, url: str, max_size: int, *, no_pickle: bool
) -> StreamTransport:
    """The transport for a connected socket whose handshake succeeded.

    ``no_pickle``: refuse pickled frames both ways (TCP without an authkey).
    """
    sock.setblocking(False)
    if sock.family == socket.AF_UNIX:
        # A Unix socket charges each small write a whole buffer's overhead against SO_SNDBUF,
        # so the default holds only ~200 small messages; ask for more (the kernel caps it
        # at net.core.wmem_max), as pipes ask for a bigger F_SETPIPE_SZ.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _UNIX_SNDBUF)
        except OSError:
            pass
    cls = _NoPickleTransport if no_pickle else StreamTransport
    fd = sock.fileno()
    if isinstance(sock, ssl.SSLSocket):
        return cls(
            fd,
            fd,
            url=url,
            max_message_size=max_size,
            capabilities=SOCKET_CAPABILITIES,
            reducer=None,  # TLS state lives in this process's SSL object
            on_close=sock.close,
            write=_tls_writer(sock),
            writev=_tls_vwriter(sock),
            readinto=_tls_reader(sock),
            pending=sock.pending,
            shutdown_write=lambda: _shutdown_write(fd),
        )
    return cls(
        fd,
        fd,
        url=url,
        max_message_size=max_size,
        capabilities=SOCKET_CAPABILITIES,
        reducer=_reduce,
        on_close=sock.close,
        sock=sock,
        shutdown_write=lambda: sock.shutdown(socket.SHUT_WR),
        # Linux queues a Unix stream write this small as one buffer, whole or not at
        # all (unix_stream_sendmsg); TCP may take part of one, so it gets no fast send.
        whole_writes=select.PIPE_BUF if sock.family == socket.AF_UNIX else 0,
        is_socket=True,
    )


def _tls_reader(sock: ssl.SSLSocket) -> Callable[[int, memoryview], int]:
    def readinto(fd: int, buf: memoryview) -> int:
        try:
            return sock.recv_into(buf)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError(errno.EAGAIN, "TLS: no whole record yet") from None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return 0

    return readinto


def _tls_send(sock: ssl.SSLSocket, data: bytes | memoryview) -> int:
    try:
        return sock.send(data)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise BlockingIOError(errno.EAGAIN, "TLS: socket buffer full") from None
    except ssl.SSLEOFError as exc:
        raise BrokenPipeError(errno.EPIPE, "TLS peer closed") from exc


def _tls_writer(sock: ssl.SSLSocket) -> Callable[[int, bytes], int]:
    def write(fd: int, data: bytes) -> int:
        return _tls_send(sock, data[:_TLS_CHUNK])

    return write


def _tls_vwriter(sock: ssl.SSLSocket) -> Callable[[int, Sequence[bytes | memoryview]], int]:
    def writev(fd: int, bufs: Sequence[bytes | memoryview]) -> int:
        parts = []
        size = 0
        for b in bufs:
            view = memoryview(b).cast("B")
            take = view[: _TLS_CHUNK - size]
            parts.append(take)
            size += take.nbytes
            if size >= _TLS_CHUNK:
                break
        return _tls_send(sock, b"".join(parts))

    return writev
