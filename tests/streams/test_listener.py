"""Issue 8, items 13b and 5/11: connect before accept, and Unix socket path limits."""

from __future__ import annotations

import os
import socket
import tempfile
import time

import pytest

import ipckit
from ipckit.testing import unique_name

BOUND = 30


def _url(scheme: str) -> str:
    return f"unix://@{unique_name('l')}" if scheme == "unix" else "tcp://127.0.0.1:0"


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
def test_connect_returns_before_the_server_accepts(scheme: str) -> None:
    with ipckit.listen(_url(scheme), handshake_timeout=2) as lst:
        clients = []
        try:
            start = time.monotonic()
            for i in range(5):
                client = ipckit.connect(lst.url, timeout=BOUND)
                clients.append(client)
                client.send(i, timeout=BOUND)
            assert time.monotonic() - start < BOUND
            for i in range(5):
                with lst.accept(timeout=BOUND) as server:
                    assert server.recv(timeout=BOUND) == i
        finally:
            for client in clients:
                client.close()


def test_listener_fileno_is_readable_while_a_connection_waits() -> None:
    import select

    with ipckit.listen(_url("unix")) as lst:
        fd = lst.fileno()
        assert not select.select([fd], [], [], 0)[0]
        with ipckit.connect(lst.url, timeout=BOUND), ipckit.connect(lst.url, timeout=BOUND):
            assert select.select([fd], [], [], BOUND)[0]
            with lst.accept(timeout=0.5):
                pass
            assert select.select([fd], [], [], BOUND)[0], "a second connection still waits"
            with lst.accept(timeout=0.5):
                pass
            assert not select.select([fd], [], [], 0)[0]


def test_close_closes_queued_connections() -> None:
    lst = ipckit.listen(_url("unix"))
    clients = [ipckit.connect(lst.url, timeout=BOUND) for _ in range(3)]
    try:
        lst.close()  # three finished connections were queued, never accepted
        for client in clients:
            with pytest.raises(ipckit.ChannelClosed):
                client.recv(timeout=BOUND)
    finally:
        for client in clients:
            client.close()


def test_finished_connections_queue_up_to_the_backlog() -> None:
    with ipckit.listen(_url("unix"), backlog=2, handshake_timeout=0.5) as lst:
        first = [ipckit.connect(lst.url, timeout=BOUND) for _ in range(2)]
        try:
            # The queue is full: the kernel holds the next client, whose handshake waits.
            with pytest.raises(ipckit.Timeout):
                ipckit.connect(lst.url, timeout=0.5).close()
            with lst.accept(timeout=BOUND), lst.accept(timeout=BOUND):
                pass
            with ipckit.connect(lst.url, timeout=BOUND), lst.accept(timeout=BOUND):
                pass
        finally:
            for client in first:
                client.close()


def test_garbage_client_before_accept_is_dropped() -> None:
    with ipckit.listen(_url("tcp"), handshake_timeout=1) as lst:
        host, port = lst.url[len("tcp://") :].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=BOUND) as raw:
            raw.sendall(b"GET / HTTP/1.0\r\n\r\n" * 10)
            with ipckit.connect(lst.url, timeout=BOUND) as good, lst.accept(timeout=BOUND) as s:
                good.send("ok", timeout=BOUND)
                assert s.recv(timeout=BOUND) == "ok"


def test_too_long_unix_path_is_a_clear_error() -> None:
    directory = tempfile.gettempdir()
    name = "x" * (108 - len(directory) - 1)  # 108 bytes with the slash: one too many
    url = "unix://" + os.path.join(directory, name)
    for call in (lambda: ipckit.listen(url), lambda: ipckit.connect(url, timeout=1)):
        with pytest.raises(ipckit.ConfigurationError, match="at most 107") as info:
            call()
        assert isinstance(info.value, ValueError)
        assert "Errno" not in str(info.value)
    assert not os.path.exists(os.path.join(directory, name))


def test_longest_unix_path_works() -> None:
    directory = tempfile.mkdtemp()
    try:
        path = os.path.join(directory, "y" * (107 - len(directory) - 1))
        assert len(os.fsencode(path)) == 107
        with (
            ipckit.listen("unix://" + path) as lst,
            ipckit.connect(lst.url, timeout=BOUND) as c,
            lst.accept(timeout=BOUND) as s,
        ):
            c.send("fits", timeout=BOUND)
            assert s.recv(timeout=BOUND) == "fits"
    finally:
        os.rmdir(directory)


def test_abstract_name_limit() -> None:
    with pytest.raises(ipckit.ConfigurationError, match="at most 107"):
        ipckit.listen("unix://@" + "n" * 108)
    with (
        ipckit.listen("unix://@" + unique_name("n").ljust(107, "n")) as lst,
        ipckit.connect(lst.url, timeout=BOUND),
        lst.accept(timeout=BOUND),
    ):
        pass
