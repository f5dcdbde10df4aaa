"""Raw kernel message passing, the floor ipckit is measured against.

``raw-pipe`` (the default baseline) and ``raw-unix`` frame messages with a 4-byte
length prefix over a byte stream, the way a careful hand-written program would:
one ``writev`` per message, and a reader that pulls as much as the kernel has
into a buffer and cuts messages out of it (so small messages cost less than one
``read`` each). ``raw-mq`` is a bare ``posix_ipc.MessageQueue``.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Sequence

from typing_extensions import Buffer

from ipckit._bench.contender import CONSUMER, PRODUCER, Contender, Endpoint, Link, LinkSpec, Role
from ipckit.testing import unique_name

__all__ = ["RAW_CONTENDERS", "StreamEndpoint"]

_HEADER = struct.Struct("<I")
#: Same kernel pipe buffer as ipckit.pipe() asks for, so the comparison isolates the library.
_PIPE_SIZE = 1024 * 1024
_CHUNK = 256 * 1024


class StreamEndpoint(Endpoint):
    """Length-prefixed messages over a byte stream given as ``readinto``/``writev`` calls."""

    def __init__(
        self,
        readinto: Callable[[memoryview], int] | None,
        writev: Callable[[list[Buffer]], int] | None,
        close: Callable[[], None],
    ) -> None:
        self._readinto = readinto
        self._writev = writev
        self._close = close
        self._buf = bytearray(_CHUNK)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0

    def send(self, data: bytes) -> None:
        """Write the header and the payload with as few system calls as the kernel allows."""
        assert self._writev is not None
        header = _HEADER.pack(len(data))
        total = len(data) + 4
        done = self._writev([header, data])
        while done < total:  # a partial write: only for messages bigger than the buffer
            if done < 4:
                done += self._writev([header[done:], data])
            else:
                done += self._writev([memoryview(data)[done - 4 :]])

    def _fill(self) -> None:
        assert self._readinto is not None
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buf):
            left = self._end - self._start
            self._buf[:left] = self._view[self._start : self._end]
            self._start, self._end = 0, left
        got = self._readinto(self._view[self._end :])
        if got == 0:
            raise EOFError("the peer closed the stream")
        self._end += got

    def recv(self) -> Buffer:
        """Return the next message: cut from the buffer, or read straight into place if big."""
        while self._end - self._start < 4:
            self._fill()
        (size,) = _HEADER.unpack_from(self._buf, self._start)
        self._start += 4
        have = self._end - self._start
        if have >= size:
            out = bytes(self._view[self._start : self._start + size])
            self._start += size
            return out
        # Big message: copy what is buffered, then read the rest directly into it.
        msg = bytearray(size)
        mv = memoryview(msg)
        mv[:have] = self._view[self._start : self._end]
        self._start = self._end = 0
        assert self._readinto is not None
        while have < size:
            got = self._readinto(mv[have:])
            if got == 0:
                raise EOFError("the peer closed the stream mid-message")
            have += got
        return msg

    def close(self) -> None:
        """Close the descriptors this end owns."""
        self._close()


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (OSError, AttributeError):
        pass  # capped by /proc/sys/fs/pipe-max-size; the default works too
    return r, w


def _fd_reader(fd: int) -> Callable[[memoryview], int]:
    return lambda mv: os.readv(fd, [mv])


def _fd_writer(fd: int) -> Callable[[list[Buffer]], int]:
    return lambda bufs: os.writev(fd, bufs)


def _close_fds(*fds: int) -> Callable[[], None]:
    def close() -> None:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    return close


class _PipeLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        self._fwd = _pipe()
        self._back = _pipe() if spec.duplex else None

    def endpoint(self, role: Role, index: int) -> Endpoint:
        fr, fw = self._fwd
        if role == PRODUCER:
            if self._back is None:
                return StreamEndpoint(None, _fd_writer(fw), _close_fds(fw))
            br, _ = self._back
            return StreamEndpoint(_fd_reader(br), _fd_writer(fw), _close_fds(fw, br))
        if self._back is None:
            return StreamEndpoint(_fd_reader(fr), None, _close_fds(fr))
        _, bw = self._back
        return StreamEndpoint(_fd_reader(fr), _fd_writer(bw), _close_fds(fr, bw))

    def cleanup(self) -> None:
        _close_fds(*self._fwd, *(self._back or ()))()


class _SocketLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        self._a, self._b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def endpoint(self, role: Role, index: int) -> Endpoint:
        sock = self._a if role == PRODUCER else self._b
        return StreamEndpoint(sock.recv_into, sock.sendmsg, sock.close)

    def cleanup(self) -> None:
        self._a.close()
        self._b.close()


class _MQEndpoint(Endpoint):
    def __init__(self, out: object | None, inbound: object | None) -> None:
        self._send = getattr(out, "send", None)
        self._receive = getattr(inbound, "receive", None)

    def send(self, data: bytes) -> None:
        assert self._send is not None
        self._send(data)

    def recv(self) -> Buffer:
        assert self._receive is not None
        data: bytes = self._receive()[0]
        return data


def _mq_limit() -> int:
    try:
        with open("/proc/sys/fs/mqueue/msgsize_max", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 8192


class _MQLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        import posix_ipc

        self._queues = []
        try:
            for _ in range(2 if spec.duplex else 1):
                self._queues.append(
                    posix_ipc.MessageQueue(
                        "/" + unique_name("bench"),
                        posix_ipc.O_CREX,
                        mode=0o600,
                        max_message_size=max(spec.max_size, 16),
                    )
                )
        except BaseException:
            self.cleanup()
            raise

    def endpoint(self, role: Role, index: int) -> Endpoint:
        fwd = self._queues[0]
        back = self._queues[1] if len(self._queues) > 1 else None
        if role == CONSUMER:
            return _MQEndpoint(back, fwd)
        return _MQEndpoint(fwd, back)

    def cleanup(self) -> None:
        for q in self._queues:
            for step in (q.close, q.unlink):
                try:
                    step()
                except Exception:  # noqa: S110, BLE001 - already gone is fine
                    pass
        self._queues = []


def _probe_mq() -> str | None:
    try:
        import posix_ipc  # noqa: F401
    except ImportError:
        return "posix_ipc is not installed"
    return None if os.path.isdir("/dev/mqueue") or os.name == "posix" else "no POSIX mqueue"


def _mq_supports(spec: LinkSpec) -> str | None:
    limit = _mq_limit()
    if spec.max_size > limit:
        return f"n/a: message > {limit} B (fs.mqueue.msgsize_max)"
    return None


RAW_CONTENDERS: Sequence[Contender] = (
    Contender(
        "raw-pipe",
        "os.pipe, 4-byte length prefix, writev + buffered reads (1 MiB pipe buffer)",
        "raw",
        _PipeLink,
        many_producers=False,
    ),
    Contender(
        "raw-unix",
        "AF_UNIX stream socketpair, 4-byte length prefix, sendmsg + buffered recv_into",
        "raw",
        _SocketLink,
    ),
    Contender(
        "raw-mq",
        "posix_ipc.MessageQueue send/receive (no framing: one message per mq message)",
        "raw",
        _MQLink,
        probe=_probe_mq,
        supports=_mq_supports,
        many_producers=True,
        many_consumers=True,
    ),
)
