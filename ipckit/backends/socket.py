"""``unix://PATH``, ``unix://@name`` and ``tcp://HOST:PORT``: stream sockets, duplex.

Who may connect (DESIGN.md, "Sockets: who may connect"):

- Unix sockets: the listener reads the client's uid (``SO_PEERCRED``) and refuses
  other users unless ``allow_other_users=True``; the client likewise refuses a
  server run by another user (root excepted). The socket file is made 0600. For
  the abstract namespace (``@name``) there is no file, so the uid check is the guard.
- TCP: ``authkey=`` runs a mutual HMAC challenge (``_handshake``); binding to a
  non-loopback address without one is refused unless ``allow_remote=True``;
  ``ssl_context=`` wraps the connection in TLS.

The listener runs each client's handshake in its own short-lived thread, bounded
by ``handshake_timeout``, so a silent or slow client never holds up ``accept()``
for the others; a client that fails (garbage, wrong key, silence) is dropped and
counted in ``rejected``. Once connected, frames move through ``StreamTransport``
with ``MSG_NOSIGNAL`` (a vanished peer is ``ChannelClosed``, never SIGPIPE).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
import select
import socket
import ssl
import stat
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ipckit._deadline import Deadline
from ipckit._framing import Frame
from ipckit._oserror import os_error_to_ipc
from ipckit._transport import Capabilities, OutFrame, Transport
from ipckit._url import Endpoint, OptionSpec
from ipckit.backends._handshake import client_handshake, deny, server_handshake
from ipckit.backends._stream import StreamTransport
from ipckit.errors import (
    AuthenticationError,
    ChannelExists,
    ChannelNotFound,
    ConfigurationError,
    HandleClosed,
    Timeout,
    TransportError,
)
from ipckit.serializers import PICKLE_ID

__all__ = ["BACKENDS", "SOCKET_CAPABILITIES", "SocketBackend", "SocketListener"]

log = logging.getLogger("ipckit")

SOCKET_CAPABILITIES = Capabilities(
    native_message_size=None,
    many_producers=False,
    many_consumers=False,
    has_fileno=True,
    named=False,
)

#: Handshakes run at once per listener; more clients wait in the kernel's backlog.
MAX_PENDING_HANDSHAKES = 64
_UCRED = struct.Struct("3i")
_UNIX_SNDBUF = 4 * 1024 * 1024
#: Bytes handed to one TLS write: a retry after "would block" must repeat the same bytes.
_TLS_CHUNK = 256 * 1024

_COMMON: dict[str, OptionSpec] = {
    "handshake_timeout": OptionSpec("float", 5.0, "seconds a client has to finish the handshake"),
    "authkey": OptionSpec("bytes", None, "shared secret for the mutual HMAC handshake", False),
    "backlog": OptionSpec("int", 128, "listen() backlog"),
}
UNIX_OPTIONS: Mapping[str, OptionSpec] = {
    **_COMMON,
    "allow_other_users": OptionSpec("bool", False, "accept peers running as another uid"),
    "mode": OptionSpec("mode", 0o600, "permission bits of the socket file (octal)"),
}
TCP_OPTIONS: Mapping[str, OptionSpec] = {
    **_COMMON,
    "allow_remote": OptionSpec("bool", False, "allow binding a non-loopback address"),
    "ssl_context": OptionSpec("object", None, "an ssl.SSLContext to wrap connections in", False),
    "server_hostname": OptionSpec("str", None, "TLS name to check (default: the URL's host)"),
}


# -- addresses ---------------------------------------------------------------------------


def _unix_address(endpoint: Endpoint) -> str:
    address = endpoint.address
    if address.startswith("@"):
        if len(address) < 2:
            raise ConfigurationError(f"{endpoint.url}: an abstract name follows '@'")
        return "\0" + address[1:]
    return address


def _tcp_address(endpoint: Endpoint) -> tuple[str, int]:
    text = endpoint.address
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if sep and rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not host or not 0 <= port <= 65535:
        raise ConfigurationError(
            f"{endpoint.url}: write tcp://HOST:PORT (tcp://[::1]:PORT for IPv6; port 0 "
            "picks a free port when listening)"
        )
    return host, port


def _tcp_url(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def _check_authkey(options: Mapping[str, Any]) -> bytes | None:
    key: bytes | None = options.get("authkey")
    if key is not None and not key:
        raise ConfigurationError(
            "authkey must not be empty: an empty key proves nothing; pass a secret of 16+ "
            "random bytes (secrets.token_bytes(32)) to both ends, or no authkey"
        )
    return key


# -- transports --------------------------------------------------------------------------


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
    from multiprocessing.reduction import DupFd

    fd = transport.read_fd()
    if fd is None:
        raise TypeError(f"a closed channel on {transport.url} cannot be passed on")
    return _rebuild, (
        DupFd(fd),
        transport.url,
        transport._decoder._max,
        isinstance(transport, _NoPickleTransport),
    )


def _rebuild(dup: Any, url: str, max_size: int, no_pickle: bool) -> StreamTransport:
    sock = socket.socket(fileno=dup.detach())
    return _make_transport(sock, url, max_size, no_pickle=no_pickle)


def _make_transport(
    sock: socket.socket, url: str, max_size: int, *, no_pickle: bool
) -> StreamTransport:
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
        )
    send = sock.send
    sendmsg = sock.sendmsg
    nosignal = socket.MSG_NOSIGNAL

    def write(fd: int, data: bytes) -> int:
        return send(data, nosignal)

    def writev(fd: int, bufs: Sequence[bytes | memoryview]) -> int:
        return sendmsg(bufs, (), nosignal)

    return cls(
        fd,
        fd,
        url=url,
        max_message_size=max_size,
        capabilities=SOCKET_CAPABILITIES,
        reducer=_reduce,
        on_close=sock.close,
        write=write,
        writev=writev,
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


# -- peer checks -------------------------------------------------------------------------


def _peer_uid(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return int(_UCRED.unpack(raw)[1])


def _configure_tcp(sock: socket.socket) -> None:
    # Small messages must not wait for Nagle's algorithm to coalesce them.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# -- listening ---------------------------------------------------------------------------


class SocketListener:
    """A listening socket that hands out channels whose handshake succeeded."""

    def __init__(
        self,
        sock: socket.socket,
        url: str,
        options: Mapping[str, Any],
        *,
        unix: bool,
        path: str | None = None,
    ) -> None:
        self.url = url
        self._sock = sock
        self._unix = unix
        self._path = path
        self._inode = os.stat(path).st_ino if path else None
        self._options = dict(options)
        self._authkey = _check_authkey(options)
        self._ssl: ssl.SSLContext | None = options.get("ssl_context")
        self._no_pickle = not unix and self._authkey is None
        self._done: deque[Transport] = deque()
        self._pending: dict[threading.Thread, socket.socket] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        #: Clients dropped during the handshake (garbage, wrong key, silence, other user).
        self.rejected = 0
        sock.setblocking(False)

    def fileno(self) -> int:
        """The listening descriptor."""
        return self._sock.fileno()

    def accept(self, deadline: Deadline) -> Transport:
        """Wait for a client whose handshake succeeds; ``Timeout`` when time runs out."""
        poller = select.poll()
        poller.register(self._wake, select.POLLIN)
        listening = False
        while True:
            with self._lock:
                if self._closed:
                    raise HandleClosed(f"listener on {self.url} is closed")
                if self._done:
                    return self._done.popleft()
                room = len(self._pending) < MAX_PENDING_HANDSHAKES
            if room != listening:
                if room:
                    poller.register(self._sock.fileno(), select.POLLIN)
                else:
                    poller.unregister(self._sock.fileno())
                listening = room
            left = deadline.remaining()
            events = poller.poll(None if left is None else int(left * 1000) + 1)
            if not events and deadline.expired():
                raise Timeout(
                    f"no client completed a handshake on {self.url} within "
                    f"timeout={deadline.timeout}"
                )
            if self._closed:
                raise HandleClosed(f"listener on {self.url} is closed")
            for fd, _ in events:
                if fd == self._wake:
                    try:
                        os.eventfd_read(self._wake)
                    except OSError:
                        pass
                else:
                    self._accept_one()

    def _accept_one(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("ipckit listener %s cannot accept: %s", self.url, exc)
                return
            raise os_error_to_ipc(exc, f"accepting on {self.url}") from exc
        thread = threading.Thread(
            target=self._serve_handshake, args=(conn,), name="ipckit-handshake", daemon=True
        )
        with self._lock:
            self._pending[thread] = conn
        thread.start()

    def _serve_handshake(self, conn: socket.socket) -> None:
        deadline = Deadline(self._options["handshake_timeout"])
        sock = conn
        transport: Transport | None = None
        try:
            if self._unix:
                if not self._options["allow_other_users"] and _peer_uid(conn) != os.getuid():
                    deny(conn, deadline)
                    raise AuthenticationError(
                        f"refused a client on {self.url} running as uid {_peer_uid(conn)}"
                    )
            else:
                _configure_tcp(conn)
            if self._ssl is not None:
                conn.settimeout(deadline.remaining())
                sock = self._ssl.wrap_socket(conn, server_side=True)
            server_handshake(sock, self._authkey, deadline)
            transport = _make_transport(
                sock, self.url, self._options["max_message_size"], no_pickle=self._no_pickle
            )
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, only this client is dropped
            level = logging.WARNING if isinstance(exc, AuthenticationError) else logging.INFO
            log.log(level, "ipckit listener %s dropped a client: %s", self.url, exc)
            sock.close()
            conn.close()
        finally:
            with self._lock:
                self._pending.pop(threading.current_thread(), None)
                if transport is None:
                    self.rejected += 1
                elif not self._closed:
                    self._done.append(transport)
                    transport = None
                if not self._closed:
                    # Under the lock: close() may not release the descriptor meanwhile.
                    os.eventfd_write(self._wake, 1)
        if transport is not None:
            transport.close()  # the listener closed while this client was shaking hands

    def close(self) -> None:
        """Stop listening, drop clients mid-handshake, remove the socket file if ours."""
        with self._lock:
            self._closed = True
            pending = dict(self._pending)
            done, self._done = list(self._done), deque()
        for conn in pending.values():
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes the handshake thread at once
            except OSError:
                pass
        for thread in pending:
            thread.join(10)
        for transport in done:
            transport.close()
        if self._path is not None:
            try:
                if os.stat(self._path).st_ino == self._inode:
                    os.unlink(self._path)
            except FileNotFoundError:
                pass
        self._sock.close()
        with self._lock:
            os.eventfd_write(self._wake, 1)  # an accept() in another thread wakes and sees closed
            os.close(self._wake)


def _bind_unix(sock: socket.socket, path: str, url: str, mode: int) -> None:
    """Bind, reclaiming a stale file left by a dead server; a live one is "address in use"."""
    directory = os.path.dirname(os.path.abspath(path))
    # Two servers reclaiming one stale path at once must not unlink each other's socket:
    # serialise check-unlink-bind on a lock of the directory (flock(2), released on death).
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error_to_ipc(exc, f"listening on {url}") from exc
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None:
            if not stat.S_ISSOCK(info.st_mode):
                raise ChannelExists(
                    errno.EEXIST, f"listening on {url}: {path} exists and is not a socket"
                )
            if _is_live(path):
                raise ChannelExists(
                    errno.EADDRINUSE,
                    f"listening on {url}: address in use, another server is listening there; "
                    "stop it or pick another path",
                )
            os.unlink(path)  # stale: its server died without removing it
        try:
            sock.bind(path)
            os.chmod(path, mode)
        except OSError as exc:
            raise os_error_to_ipc(exc, f"listening on {url}") from exc
    finally:
        os.close(dir_fd)


def _is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # EAGAIN (backlog full) and the like: someone is there
    finally:
        probe.close()
    return True


def _listen_unix(endpoint: Endpoint, options: Mapping[str, Any]) -> SocketListener:
    address = _unix_address(endpoint)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if address.startswith("\0"):
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ChannelExists(
                        errno.EADDRINUSE,
                        f"listening on {endpoint.url}: address in use, another server has "
                        "this abstract name",
                    ) from exc
                raise os_error_to_ipc(exc, f"listening on {endpoint.url}") from exc
            path = None
        else:
            _bind_unix(sock, address, endpoint.url, options["mode"])
            path = address
        sock.listen(options["backlog"])
        return SocketListener(sock, endpoint.url, options, unix=True, path=path)
    except BaseException:
        sock.close()
        raise


def _listen_tcp(endpoint: Endpoint, options: Mapping[str, Any]) -> SocketListener:
    host, port = _tcp_address(endpoint)
    authkey = _check_authkey(options)
    ctx = options["ssl_context"]
    if ctx is not None and not isinstance(ctx, ssl.SSLContext):
        raise ConfigurationError("ssl_context must be an ssl.SSLContext")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve {host!r} in {endpoint.url}: {exc}") from exc
    family, _, _, _, sockaddr = infos[0]
    ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
    if not ip.is_loopback and authkey is None and not options["allow_remote"]:
        raise ConfigurationError(
            f"refusing to listen on {endpoint.url} ({ip} is reachable from other machines) "
            "without an authkey: pass authkey= (and ssl_context= on untrusted networks), or "
            "allow_remote=True if the network is trusted"
        )
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ChannelExists(
                    errno.EADDRINUSE, f"listening on {endpoint.url}: address in use"
                ) from exc
            raise os_error_to_ipc(exc, f"listening on {endpoint.url}") from exc
        sock.listen(options["backlog"])
        url = _tcp_url(host, sock.getsockname()[1])
        return SocketListener(sock, url, options, unix=False)
    except BaseException:
        sock.close()
        raise


# -- connecting --------------------------------------------------------------------------


def _connect_socket(family: int, address: Any, url: str, deadline: Deadline) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        while True:
            err = sock.connect_ex(address)
            if err in (0, errno.EISCONN):
                return sock
            if err in (errno.EINPROGRESS, errno.EALREADY):
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLOUT)
                left = deadline.remaining()
                if not poller.poll(None if left is None else int(left * 1000) + 1):
                    raise Timeout(f"connecting to {url} timed out (timeout={deadline.timeout})")
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err == 0:
                    return sock
            if err in (errno.EAGAIN, errno.EINTR):
                # A Unix listener's backlog is full: it is busy, not gone; retry in a moment.
                if deadline.expired():
                    raise Timeout(f"{url} is not accepting connections (backlog full)")
                select.select([], [], [], deadline.slice(0.01))
                continue
            if err == errno.ENOENT:
                raise ChannelNotFound(
                    errno.ENOENT, f"connecting to {url}: no such socket; is the server listening?"
                )
            if err == errno.ECONNREFUSED:
                raise TransportError(
                    errno.ECONNREFUSED,
                    f"connecting to {url}: connection refused; is the server listening?",
                )
            raise os_error_to_ipc(OSError(err, os.strerror(err)), f"connecting to {url}")
    except BaseException:
        sock.close()
        raise


def _handshake_deadline(deadline: Deadline, options: Mapping[str, Any]) -> Deadline:
    limit = float(options["handshake_timeout"])
    left = deadline.remaining()
    return Deadline(limit if left is None else min(left, limit))


def _connect_unix(endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline) -> Transport:
    authkey = _check_authkey(options)
    sock = _connect_socket(socket.AF_UNIX, _unix_address(endpoint), endpoint.url, deadline)
    try:
        uid = _peer_uid(sock)
        if not options["allow_other_users"] and uid not in (os.getuid(), 0):
            raise AuthenticationError(
                f"connecting to {endpoint.url}: the server runs as uid {uid}, not as this "
                "user; pass allow_other_users=True if that is expected"
            )
        client_handshake(sock, authkey, _handshake_deadline(deadline, options), endpoint.url)
        return _make_transport(sock, endpoint.url, options["max_message_size"], no_pickle=False)
    except BaseException:
        sock.close()
        raise


def _connect_tcp(endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline) -> Transport:
    host, port = _tcp_address(endpoint)
    authkey = _check_authkey(options)
    ctx = options["ssl_context"]
    if ctx is not None and not isinstance(ctx, ssl.SSLContext):
        raise ConfigurationError("ssl_context must be an ssl.SSLContext")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve {host!r} in {endpoint.url}: {exc}") from exc
    last: BaseException | None = None
    for family, _, _, _, sockaddr in infos:
        try:
            sock = _connect_socket(family, sockaddr, endpoint.url, deadline)
            break
        except (TransportError, ChannelNotFound) as exc:
            last = exc
    else:
        assert last is not None
        raise last
    wrapped = sock
    try:
        _configure_tcp(sock)
        hs_deadline = _handshake_deadline(deadline, options)
        if ctx is not None:
            sock.setblocking(True)
            sock.settimeout(hs_deadline.remaining())
            try:
                wrapped = ctx.wrap_socket(sock, server_hostname=options["server_hostname"] or host)
            except TimeoutError:
                raise Timeout(f"TLS handshake with {endpoint.url} timed out") from None
            except ssl.SSLError as exc:
                raise AuthenticationError(
                    f"TLS handshake with {endpoint.url} failed: {exc}"
                ) from exc
        client_handshake(wrapped, authkey, hs_deadline, endpoint.url)
        return _make_transport(
            wrapped, endpoint.url, options["max_message_size"], no_pickle=authkey is None
        )
    except BaseException:
        wrapped.close()
        sock.close()
        raise


class SocketBackend:
    """``unix://`` or ``tcp://``: listen, accept and connect."""

    def __init__(self, scheme: str, options: Mapping[str, OptionSpec]) -> None:
        self.scheme = scheme
        self.options = options

    def open(self, endpoint: Endpoint, create: bool, options: Mapping[str, Any]) -> Transport:
        """Not supported: sockets are connections, not named queues."""
        raise ConfigurationError(
            f"{self.scheme}:// is a connection: use ipckit.listen() and ipckit.connect(), "
            "not open()"
        )

    def listen(self, endpoint: Endpoint, options: Mapping[str, Any]) -> SocketListener:
        """Bind and listen."""
        if self.scheme == "unix":
            return _listen_unix(endpoint, options)
        return _listen_tcp(endpoint, options)

    def connect(
        self, endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline
    ) -> Transport:
        """Connect and run the client side of the handshake."""
        if self.scheme == "unix":
            return _connect_unix(endpoint, options, deadline)
        return _connect_tcp(endpoint, options, deadline)


BACKENDS: dict[str, Any] = {
    "unix": SocketBackend("unix", UNIX_OPTIONS),
    "tcp": SocketBackend("tcp", TCP_OPTIONS),
}
