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
import os
import select
import socket
import ssl
import stat
from collections.abc import Mapping
from typing import Any

from ipckit._deadline import Deadline
from ipckit._oserror import os_error_to_ipc, translate_os_errors
from ipckit._transport import ConnectionBackend, Transport
from ipckit._url import Endpoint, OptionSpec
from ipckit.backends._handshake import client_handshake
from ipckit.backends._listener import SocketListener, check_authkey, configure_tcp, peer_uid
from ipckit.backends._sockstream import SOCKET_CAPABILITIES, make_transport
from ipckit.errors import (
    AuthenticationError,
    ChannelExists,
    ChannelNotFound,
    ConfigurationError,
    ConnectionRefused,
    Timeout,
    TransportError,
)

__all__ = ["BACKENDS", "SOCKET_CAPABILITIES", "SocketBackend", "SocketListener"]

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


#: sun_path in struct sockaddr_un (unix(7)): 108 bytes, a path's terminating NUL included.
SUN_PATH_MAX = 108


def _unix_address(endpoint: Endpoint) -> str:
    """The address to bind or connect, checked against sun_path before any system call."""
    address = endpoint.address
    if address.startswith("@"):
        if len(address) < 2:
            raise ConfigurationError(f"{endpoint.url}: an abstract name follows '@'")
        size = len(os.fsencode(address[1:]))
        if size > SUN_PATH_MAX - 1:
            raise ConfigurationError(
                f"{endpoint.url}: the abstract name is {size} bytes; at most "
                f"{SUN_PATH_MAX - 1} fit (sun_path is {SUN_PATH_MAX} bytes, one of them the "
                "leading NUL); use a shorter name"
            )
        return "\0" + address[1:]
    if "\0" in address:
        raise ConfigurationError(f"{endpoint.url}: a socket path cannot contain a NUL byte")
    size = len(os.fsencode(address))
    if size > SUN_PATH_MAX - 1:
        raise ConfigurationError(
            f"{endpoint.url}: the socket path is {size} bytes; at most {SUN_PATH_MAX - 1} fit "
            f"(sun_path is {SUN_PATH_MAX} bytes including the terminating NUL); use a shorter "
            "path (e.g. a relative one, or under /run or /tmp) or an abstract name unix://@NAME"
        )
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
    authkey = check_authkey(options)
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
                raise ConnectionRefused(
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
    authkey = check_authkey(options)
    sock = _connect_socket(socket.AF_UNIX, _unix_address(endpoint), endpoint.url, deadline)
    try:
        uid = peer_uid(sock)
        if not options["allow_other_users"] and uid not in (os.getuid(), 0):
            raise AuthenticationError(
                f"connecting to {endpoint.url}: the server runs as uid {uid}, not as this "
                "user; pass allow_other_users=True if that is expected"
            )
        client_handshake(sock, authkey, _handshake_deadline(deadline, options), endpoint.url)
        return make_transport(sock, endpoint.url, options["max_message_size"], no_pickle=False)
    except BaseException:
        sock.close()
        raise


def _connect_tcp(endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline) -> Transport:
    host, port = _tcp_address(endpoint)
    authkey = check_authkey(options)
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
        configure_tcp(sock)
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
        return make_transport(
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

    def listen(self, endpoint: Endpoint, options: Mapping[str, Any]) -> SocketListener:
        """Bind and listen."""
        with translate_os_errors(f"listening on {endpoint.url}"):
            if self.scheme == "unix":
                return _listen_unix(endpoint, options)
            return _listen_tcp(endpoint, options)

    def connect(
        self, endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline
    ) -> Transport:
        """Connect and run the client side of the handshake."""
        with translate_os_errors(f"connecting to {endpoint.url}"):
            if self.scheme == "unix":
                return _connect_unix(endpoint, options, deadline)
            return _connect_tcp(endpoint, options, deadline)


BACKENDS: dict[str, ConnectionBackend] = {
    "unix": SocketBackend("unix", UNIX_OPTIONS),
    "tcp": SocketBackend("tcp", TCP_OPTIONS),
}
