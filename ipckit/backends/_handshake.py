"""The connection handshake for ``unix://`` and ``tcp://``: version check and mutual HMAC.

Wire (every field fixed-size, so a garbage client fails fast)::

    server -> client  HELLO  b"IKSH" version flags [challenge(32) if AUTH]
    client -> server  HELLO  b"IKSH" version flags [hmac(key, C + challenge)(32)
                                                     client_challenge(32) if AUTH]
    server -> client  b"OKAY" [hmac(key, S + client_challenge)(32) if AUTH] | b"FAIL"
    client -> server  b"OKAY" | b"FAIL"          (only with AUTH: the client's verdict)

Both directions prove knowledge of the key without sending it, as
``multiprocessing.connection`` does, with SHA-256 and different labels (C, S) per
direction so one side's answer cannot be reflected back as the other's. Digests
are compared with :func:`hmac.compare_digest`. A server flag ``DENIED`` tells a
client that it was refused before any key was checked (another user's process).

Every read and write runs against one deadline; the caller picks it (the
listener's ``handshake_timeout``), so a silent peer costs that long at most.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import ssl

from ipckit._deadline import Deadline
from ipckit.errors import AuthenticationError, ChannelClosed, ProtocolError, Timeout

__all__ = ["client_handshake", "deny", "recv_exact", "send_all", "server_handshake"]

_MAGIC = b"IKSH"
_VERSION = 1
_AUTH = 0x01
_DENIED = 0x80
_OKAY = b"OKAY"
_FAIL = b"FAIL"
_LABEL_CLIENT = b"ipckit client proof"
_LABEL_SERVER = b"ipckit server proof"
_NONCE = 32
_DIGEST = 32


def _hello(flags: int) -> bytes:
    return _MAGIC + bytes((_VERSION, flags))


def _mac(key: bytes, label: bytes, challenge: bytes) -> bytes:
    return hmac.new(key, label + challenge, hashlib.sha256).digest()


def recv_exact(sock: socket.socket, count: int, deadline: Deadline, what: str) -> bytes:
    """Read exactly ``count`` bytes before the deadline."""
    buf = bytearray(count)
    view = memoryview(buf)
    got = 0
    while got < count:
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise Timeout(f"{what}: the peer sent nothing in time (handshake deadline)")
        sock.settimeout(left)
        try:
            n = sock.recv_into(view[got:])
        except (TimeoutError, ssl.SSLWantReadError):
            raise Timeout(f"{what}: the peer sent nothing in time (handshake deadline)") from None
        except (ConnectionError, ssl.SSLEOFError) as exc:
            raise ChannelClosed(f"{what}: the peer closed the connection ({exc})") from exc
        if n == 0:
            raise ChannelClosed(f"{what}: the peer closed the connection during the handshake")
        got += n
    return bytes(buf)


def send_all(sock: socket.socket, data: bytes, deadline: Deadline, what: str) -> None:
    """Write all of ``data`` before the deadline (never raising SIGPIPE on plain sockets)."""
    sock.settimeout(deadline.remaining())
    try:
        if isinstance(sock, ssl.SSLSocket):
            sock.sendall(data)
        else:
            sock.sendall(data, socket.MSG_NOSIGNAL)
    except TimeoutError:
        raise Timeout(f"{what}: the peer did not read in time (handshake deadline)") from None
    except (ConnectionError, ssl.SSLEOFError) as exc:
        raise ChannelClosed(f"{what}: the peer closed the connection ({exc})") from exc


def _check_hello(data: bytes, what: str) -> int:
    if data[:4] != _MAGIC:
        raise ProtocolError(f"{what}: the peer does not speak the ipckit protocol")
    if data[4] != _VERSION:
        raise ProtocolError(
            f"{what}: the peer speaks handshake version {data[4]}, this ipckit {_VERSION}; "
            "upgrade the older side"
        )
    return data[5]


def deny(sock: socket.socket, deadline: Deadline) -> None:
    """Tell a client it is refused (before any key is checked), best effort."""
    try:
        send_all(sock, _hello(_DENIED), deadline, "refusing a client")
    except Exception:  # noqa: S110, BLE001 - the client is being dropped anyway
        pass


def server_handshake(sock: socket.socket, authkey: bytes | None, deadline: Deadline) -> None:
    """Run the server side; raise AuthenticationError, ProtocolError, Timeout or ChannelClosed."""
    what = "handshake with a client"
    challenge = secrets.token_bytes(_NONCE) if authkey else b""
    send_all(sock, _hello(_AUTH if authkey else 0) + challenge, deadline, what)
    flags = _check_hello(recv_exact(sock, 6, deadline, what), what)
    if not authkey:
        if flags & _AUTH:
            # The client insists on authenticating us; it will refuse us, so say so first.
            send_all(sock, _FAIL, deadline, what)
            raise AuthenticationError(f"{what}: the client has an authkey, this listener none")
        send_all(sock, _OKAY, deadline, what)
        return
    if not flags & _AUTH:
        send_all(sock, _FAIL, deadline, what)
        raise AuthenticationError(f"{what}: the client sent no authkey; this listener needs one")
    answer = recv_exact(sock, _DIGEST + _NONCE, deadline, what)
    if not hmac.compare_digest(answer[:_DIGEST], _mac(authkey, _LABEL_CLIENT, challenge)):
        send_all(sock, _FAIL, deadline, what)
        raise AuthenticationError(f"{what}: the client's authkey does not match")
    send_all(sock, _OKAY + _mac(authkey, _LABEL_SERVER, answer[_DIGEST:]), deadline, what)
    verdict = recv_exact(sock, 4, deadline, what)
    if verdict == _FAIL:
        raise AuthenticationError(f"{what}: the client rejected this listener's authkey")
    if verdict != _OKAY:
        raise ProtocolError(f"{what}: unexpected reply {verdict!r}")


def client_handshake(
    sock: socket.socket, authkey: bytes | None, deadline: Deadline, url: str
) -> None:
    """Run the client side; raise AuthenticationError, ProtocolError, Timeout or ChannelClosed."""
    what = f"handshake with {url}"
    flags = _check_hello(recv_exact(sock, 6, deadline, what), what)
    if flags & _DENIED:
        raise AuthenticationError(
            f"{what}: the server refused this process (it runs as another user; the server "
            "may pass allow_other_users=True)"
        )
    if flags & _AUTH and not authkey:
        raise AuthenticationError(f"{what}: the server requires an authkey; pass authkey=")
    if not flags & _AUTH and authkey:
        send_all(sock, _hello(_AUTH), deadline, what)
        raise AuthenticationError(
            f"{what}: the server has no authkey, so it cannot prove who it is; give the "
            "listener the same authkey="
        )
    if not authkey:
        send_all(sock, _hello(0), deadline, what)
        reply = recv_exact(sock, 4, deadline, what)
        if reply != _OKAY:
            raise ProtocolError(f"{what}: the server refused the connection ({reply!r})")
        return
    challenge = recv_exact(sock, _NONCE, deadline, what)
    mine = secrets.token_bytes(_NONCE)
    proof = _mac(authkey, _LABEL_CLIENT, challenge)
    send_all(sock, _hello(_AUTH) + proof + mine, deadline, what)
    reply = recv_exact(sock, 4, deadline, what)
    if reply == _FAIL:
        raise AuthenticationError(f"{what}: the server rejected this authkey (wrong key)")
    if reply != _OKAY:
        raise ProtocolError(f"{what}: unexpected reply {reply!r}")
    theirs = recv_exact(sock, _DIGEST, deadline, what)
    if not hmac.compare_digest(theirs, _mac(authkey, _LABEL_SERVER, mine)):
        send_all(sock, _FAIL, deadline, what)
        raise AuthenticationError(f"{what}: the server could not prove it has the same authkey")
    send_all(sock, _OKAY, deadline, what)
