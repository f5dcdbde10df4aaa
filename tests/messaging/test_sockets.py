"""unix:// and tcp://: addresses, who may connect, authkeys, TLS, bad clients, faults."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ipckit
from ipckit._deadline import Deadline
from ipckit._framing import encode_header
from ipckit.backends._handshake import client_handshake
from ipckit.testing import unique_name
from tests.messaging import _workers

BOUND = 30
CTX = multiprocessing.get_context("fork")
KEY = b"a shared secret for tests"


def _unix_url() -> str:
    return "unix://" + os.path.join(tempfile.gettempdir(), unique_name("sock"))


def _abstract_url() -> str:
    return "unix://@" + unique_name("abs")


LISTENERS: dict[str, tuple[Callable[[], str], dict[str, Any]]] = {
    "unix": (_unix_url, {}),
    "unix-abstract": (_abstract_url, {}),
    "tcp": (lambda: "tcp://127.0.0.1:0", {}),
    "tcp-authkey": (lambda: "tcp://127.0.0.1:0", {"authkey": KEY}),
}


class Accepter:
    """Accepts in a background thread, so a test can misbehave as a client meanwhile."""

    def __init__(self, listener: ipckit.Listener, count: int) -> None:
        self.channels: list[ipckit.Channel] = []
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(listener, count), daemon=True)
        self._thread.start()

    def _run(self, listener: ipckit.Listener, count: int) -> None:
        try:
            for _ in range(count):
                self.channels.append(listener.accept(timeout=BOUND))
        except BaseException as exc:
            self.errors.append(exc)

    def join(self) -> list[ipckit.Channel]:
        self._thread.join(BOUND + 5)
        assert not self._thread.is_alive(), "accept() did not return"
        if self.errors:
            raise self.errors[0]
        return self.channels


def _raw_client(url: str) -> socket.socket:
    """A plain socket connected to a listener (no handshake), to misbehave with."""
    rest = url.split("://", 1)[1]
    if url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect("\0" + rest[1:] if rest.startswith("@") else rest)
    else:
        host, port = rest.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
    sock.settimeout(BOUND)
    return sock


def _rejected(listener: ipckit.Listener, expect: int) -> int:
    """The listener's count of dropped clients, once it reaches ``expect`` (or BOUND passes).

    A dropped client's handshake thread may finish after a good client's does.
    """
    deadline = Deadline(BOUND)
    while True:
        count = int(listener._transport.rejected)  # type: ignore[attr-defined]
        if count >= expect or deadline.expired():
            return count
        time.sleep(0.01)


@pytest.fixture(params=sorted(LISTENERS))
def listener(request: pytest.FixtureRequest) -> Iterator[tuple[ipckit.Listener, dict[str, Any]]]:
    make_url, options = LISTENERS[request.param]
    with ipckit.listen(make_url(), handshake_timeout=BOUND, **options) as lst:
        yield lst, options


# -- bad clients ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        encode_header(1, 0, 2**60),  # a frame header claiming an enormous payload
        b"IKSH\x07\x00",  # a future handshake version
        b"\x00" * 4096,
    ],
    ids=["http", "huge-length", "bad-version", "zeros"],
)
def test_garbage_clients_are_dropped(
    listener: tuple[ipckit.Listener, dict[str, Any]], garbage: bytes
) -> None:
    lst, options = listener
    accepter = Accepter(lst, 1)
    with _raw_client(lst.url) as bad:
        bad.sendall(garbage)
        try:
            bad.recv(100)  # the listener's hello, then it hangs up on us
        except ConnectionResetError:
            pass
        with ipckit.connect(lst.url, timeout=BOUND, **options) as good:
            [server] = accepter.join()
            with server:
                good.send("hi", timeout=BOUND)
                assert server.recv(timeout=BOUND) == "hi"
    assert _rejected(lst, 1) == 1


def test_silent_client_does_not_block_others(
    listener: tuple[ipckit.Listener, dict[str, Any]],
) -> None:
    """A client that says nothing holds its own handshake thread, not accept()."""
    lst, options = listener
    accepter = Accepter(lst, 2)
    silent = [_raw_client(lst.url) for _ in range(3)]
    try:
        goods = [ipckit.connect(lst.url, timeout=BOUND, **options) for _ in range(2)]
        servers = accepter.join()
        for good in goods:
            good.send_bytes(b"ok", timeout=BOUND)
        assert sorted(s.recv_bytes(timeout=BOUND) for s in servers) == [b"ok", b"ok"]
        for ch in goods + servers:
            ch.close()
    finally:
        for sock in silent:
            sock.close()


def test_silent_client_times_out() -> None:
    with ipckit.listen("tcp://127.0.0.1:0", handshake_timeout=0.2) as lst:
        with _raw_client(lst.url) as silent:
            with pytest.raises(ipckit.Timeout):
                lst.accept(timeout=0.5)
            assert silent.recv(100)[:4] == b"IKSH"
            # The listener gave up on it: the connection ends (EOF or reset).
            try:
                rest = silent.recv(100)
            except ConnectionResetError:
                rest = b""
            assert rest == b""
        assert _rejected(lst, 1) == 1


def test_huge_length_after_handshake_is_protocol_error() -> None:
    url = _unix_url()
    with ipckit.listen(url) as lst:
        accepter = Accepter(lst, 1)
        with _raw_client(url) as raw:
            client_handshake(raw, None, Deadline(BOUND), url)
            [server] = accepter.join()
            with server:
                raw.sendall(encode_header(1, 0, 2**60))
                with pytest.raises(ipckit.ProtocolError, match="max_message_size"):
                    server.recv(timeout=BOUND)


def test_server_that_never_speaks_times_out_the_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as mute:
        url = f"tcp://127.0.0.1:{mute.getsockname()[1]}"
        with pytest.raises(ipckit.Timeout):
            ipckit.connect(url, handshake_timeout=0.2)
        with pytest.raises(ipckit.Timeout):
            ipckit.connect(url, timeout=0.2)


# -- authkeys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_key", "client_key"),
    [(KEY, b"wrong key"), (KEY, None), (None, KEY), (b"other key", KEY)],
    ids=["wrong", "client-missing", "server-missing", "server-wrong"],
)
def test_authkey_mismatch_fails_both_sides(
    server_key: bytes | None, client_key: bytes | None
) -> None:
    with ipckit.listen("tcp://127.0.0.1:0", authkey=server_key) as lst:
        accepter = Accepter(lst, 1)
        with pytest.raises(ipckit.AuthenticationError):
            ipckit.connect(lst.url, timeout=BOUND, authkey=client_key)
        # The listener dropped that client and still serves a good one.
        with ipckit.connect(lst.url, timeout=BOUND, authkey=server_key) as good:
            [server] = accepter.join()
            with server:
                server.send("welcome", timeout=BOUND)
                assert good.recv(timeout=BOUND) == "welcome"
        assert _rejected(lst, 1) == 1


def test_empty_authkey_is_refused() -> None:
    with pytest.raises(ipckit.ConfigurationError, match="empty"):
        ipckit.listen("tcp://127.0.0.1:0", authkey=b"")
    with (
        ipckit.listen("tcp://127.0.0.1:0", authkey=KEY) as lst,
        pytest.raises(ipckit.ConfigurationError, match="empty"),
    ):
        ipckit.connect(lst.url, authkey="")


def test_authkey_on_unix_sockets() -> None:
    url = _unix_url()
    with ipckit.listen(url, authkey=KEY) as lst:
        accepter = Accepter(lst, 1)
        with pytest.raises(ipckit.AuthenticationError):
            ipckit.connect(url, timeout=BOUND, authkey=b"nope")
        with ipckit.connect(url, timeout=BOUND, authkey=KEY) as good:
            [server] = accepter.join()
            with server:
                good.send(1, timeout=BOUND)
                assert server.recv(timeout=BOUND) == 1


def test_pickle_over_tcp_needs_an_authkey() -> None:
    with ipckit.listen("tcp://127.0.0.1:0", serializer="pickle") as lst:
        accepter = Accepter(lst, 1)
        with ipckit.connect(lst.url, timeout=BOUND, serializer="pickle") as client:
            [server] = accepter.join()
            with server:
                with pytest.raises(ipckit.ConfigurationError, match="authkey"):
                    client.send({1, 2})
                with pytest.raises(ipckit.ConfigurationError, match="authkey"):
                    server.send({1, 2})
                client.send_bytes(b"raw is fine", timeout=BOUND)
                assert server.recv_bytes(timeout=BOUND) == b"raw is fine"


# -- TCP addresses ------------------------------------------------------------------------


def test_port_zero_and_nodelay() -> None:
    with ipckit.listen("tcp://127.0.0.1:0", authkey=KEY) as lst:
        port = int(lst.url.rsplit(":", 1)[1])
        assert port > 0
        accepter = Accepter(lst, 1)
        with ipckit.connect(lst.url, timeout=BOUND, authkey=KEY) as client:
            [server] = accepter.join()
            with server:
                for ch in (client, server):
                    with socket.socket(fileno=os.dup(ch._transport.read_fd())) as sock:  # type: ignore[attr-defined]
                        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_non_loopback_needs_authkey_or_explicit_permission() -> None:
    with pytest.raises(ipckit.ConfigurationError, match="allow_remote"):
        ipckit.listen("tcp://0.0.0.0:0")
    with ipckit.listen("tcp://0.0.0.0:0", allow_remote=True) as lst:
        assert lst.url.startswith("tcp://0.0.0.0:")
    with ipckit.listen("tcp://0.0.0.0:0?allow_remote=1"):
        pass
    with ipckit.listen("tcp://0.0.0.0:0", authkey=KEY):
        pass


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        lst = ipckit.listen("tcp://[::1]:0")
    except ipckit.IPCError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    with lst:
        assert lst.url.startswith("tcp://[::1]:")
        accepter = Accepter(lst, 1)
        with ipckit.connect(lst.url, timeout=BOUND) as client:
            [server] = accepter.join()
            with server:
                client.send("v6", timeout=BOUND)
                assert server.recv(timeout=BOUND) == "v6"


@pytest.fixture
def tls_contexts() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", cert, "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert, key)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(cert)
        yield server, client


def test_tls(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls_contexts
    with ipckit.listen("tcp://127.0.0.1:0", authkey=KEY, ssl_context=server_ctx) as lst:
        accepter = Accepter(lst, 1)
        with ipckit.connect(lst.url, timeout=BOUND, authkey=KEY, ssl_context=client_ctx) as client:
            [server] = accepter.join()
            with server:
                big = os.urandom(3 << 20)

                def send() -> None:
                    client.send_many([b"small", big, b"after"], timeout=BOUND)

                thread = threading.Thread(target=send)
                thread.start()
                assert [server.recv(timeout=BOUND) for _ in range(3)] == [
                    b"small",
                    big,
                    b"after",
                ]
                thread.join(BOUND)
                server.send({"reply": 1}, timeout=BOUND)
                assert client.recv(timeout=BOUND) == {"reply": 1}
                client.shutdown()
                with pytest.raises(ipckit.ChannelClosed):
                    server.recv(timeout=BOUND)
        # A plain client cannot talk to a TLS listener: each side waits for the other's
        # hello until its handshake deadline.
        with pytest.raises((ipckit.IPCError, OSError)):
            ipckit.connect(lst.url, timeout=2, authkey=KEY, handshake_timeout=2)


# -- unix addresses ---------------------------------------------------------------------


def test_socket_file_mode_and_removal() -> None:
    url = _unix_url()
    path = url.removeprefix("unix://")
    with ipckit.listen(url):
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(path)


def test_stale_socket_file_is_reclaimed() -> None:
    url = _unix_url()
    path = url.removeprefix("unix://")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # a server that died: the file stays, nobody listens
    assert os.path.exists(path)
    with ipckit.listen(url) as lst:
        accepter = Accepter(lst, 1)
        with ipckit.connect(url, timeout=BOUND) as client:
            [server] = accepter.join()
            server.close()
            assert client is not None
    assert not os.path.exists(path)


@pytest.mark.parametrize("make_url", [_unix_url, _abstract_url], ids=["path", "abstract"])
def test_two_servers_on_one_address(make_url: Callable[[], str]) -> None:
    url = make_url()
    with ipckit.listen(url) as first:
        with pytest.raises(ipckit.ChannelExists, match="address in use"):
            ipckit.listen(url)
        # In another process too; and the first server keeps serving.
        proc = CTX.Process(target=_listen_expecting_in_use, args=(url,), daemon=True)
        proc.start()
        proc.join(BOUND)
        assert proc.exitcode == 0
        accepter = Accepter(first, 1)
        with ipckit.connect(url, timeout=BOUND) as client:
            [server] = accepter.join()
            with server:
                client.send("first", timeout=BOUND)
                assert server.recv(timeout=BOUND) == "first"


def _listen_expecting_in_use(url: str) -> None:
    try:
        ipckit.listen(url).close()
    except ipckit.ChannelExists:
        os._exit(0)
    os._exit(1)


def test_regular_file_is_not_replaced() -> None:
    url = _unix_url()
    path = url.removeprefix("unix://")
    with open(path, "w") as f:
        f.write("precious")
    try:
        with pytest.raises(ipckit.ChannelExists, match="not a socket"):
            ipckit.listen(url)
        with open(path) as f:
            assert f.read() == "precious"
    finally:
        os.unlink(path)


def test_connect_to_nothing() -> None:
    with pytest.raises(ipckit.ChannelNotFound):
        ipckit.connect(_unix_url(), timeout=BOUND)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ipckit.IPCError, match="refused"):
        ipckit.connect(f"tcp://127.0.0.1:{port}", timeout=BOUND)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
@pytest.mark.parametrize("make_url", [_unix_url, _abstract_url], ids=["path", "abstract"])
def test_other_users_are_refused(make_url: Callable[[], str]) -> None:
    url = make_url()
    nobody = 65534
    with ipckit.listen(url, handshake_timeout=BOUND) as lst:
        if not url.startswith("unix://@"):
            os.chmod(url.removeprefix("unix://"), 0o666)  # only the uid check stands in the way
        # Handshakes run while someone accepts: keep accepting through the refused client.
        accepter = Accepter(lst, 1)
        r, w = os.pipe()
        try:
            proc = CTX.Process(target=_workers.connect_as_user, args=(url, nobody, str(w)))
            proc.start()
            os.close(w)
            w = -1
            proc.join(BOUND)
            proc.close()
            assert os.read(r, 100) == b"AuthenticationError"
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        with ipckit.connect(url, timeout=BOUND) as client:
            [server] = accepter.join()
            server.close()
            assert client is not None
        assert _rejected(lst, 1) == 1


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unix", "tcp-authkey"])
def test_peer_killed_mid_frame(name: str) -> None:
    make_url, options = LISTENERS[name]
    with ipckit.listen(make_url(), **options) as lst:
        proc = CTX.Process(
            target=_workers.connect_and_die_mid_frame, args=(lst.url, options), daemon=True
        )
        proc.start()
        with lst.accept(timeout=BOUND) as server:
            assert [server.recv(timeout=BOUND) for _ in range(3)] == [0, 1, 2]
            with pytest.raises(ipckit.ChannelClosed, match="middle of a message"):
                server.recv(timeout=BOUND)
        proc.join(BOUND)
        assert proc.exitcode == -9


@pytest.mark.parametrize("name", ["unix", "tcp-authkey"])
def test_reader_gone_while_writing(name: str) -> None:
    """The receiver closes mid-stream: the sender gets ChannelClosed, never SIGPIPE."""
    make_url, options = LISTENERS[name]
    with ipckit.listen(make_url(), **options) as lst:
        accepter = Accepter(lst, 1)
        with ipckit.connect(lst.url, timeout=BOUND, **options) as client:
            [server] = accepter.join()
            errors: list[BaseException] = []

            def flood() -> None:
                try:
                    for _ in range(100_000):
                        client.send_bytes(bytes(64 * 1024), timeout=BOUND)
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=flood)
            thread.start()
            server.recv_bytes(timeout=BOUND)
            server.close()
            thread.join(BOUND)
            assert not thread.is_alive()
            assert errors and isinstance(errors[0], ipckit.ChannelClosed), errors


@pytest.mark.parametrize("name", ["unix", "tcp-authkey"])
def test_sigpipe_never_kills_a_sender(name: str) -> None:
    """A child with SIGPIPE at its default action writes to a closed peer and survives."""
    make_url, options = LISTENERS[name]
    with ipckit.listen(make_url(), **options) as lst:
        proc = CTX.Process(target=_workers.send_until_closed, args=(lst.url, options))
        proc.start()
        lst.accept(timeout=BOUND).close()
        proc.join(BOUND)
        assert proc.exitcode == 0, f"sender ended with {proc.exitcode} (-13 is SIGPIPE)"
        proc.close()


def test_listener_close_wakes_accept() -> None:
    lst = ipckit.listen(_unix_url())
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            lst.accept()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    with _raw_client(lst.url):
        lst.close()
        thread.join(BOUND)
    assert not thread.is_alive()
    assert outcome and isinstance(outcome[0], ipckit.ChannelClosed)
