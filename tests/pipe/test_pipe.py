"""ipckit.pipe(): behaviour specific to anonymous pipes, with real processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import ipckit
from ipckit import ChannelClosed, Empty, Full, HandleClosed
from ipckit._framing import encode_header

METHODS = ["fork", "spawn"]


def _ctx(method: str) -> Any:
    return multiprocessing.get_context(method)


def _double(ch: ipckit.Channel) -> None:
    with ch:
        msg = ch.recv(timeout=30)
        ch.send({"echo": msg, "n": msg["n"] * 2}, timeout=30)


@pytest.mark.parametrize("method", METHODS)
def test_dict_to_child_and_back(method: str) -> None:
    a, b = ipckit.pipe()
    with a:
        proc = _ctx(method).Process(target=_double, args=(b,))
        proc.start()
        b.close()
        a.send({"n": 21, "text": "hi"}, timeout=30)
        assert a.recv(timeout=30) == {"echo": {"n": 21, "text": "hi"}, "n": 42}
        proc.join(30)
        assert proc.exitcode == 0


def _send_then_die(ch: ipckit.Channel, half_frame: bool) -> None:
    for i in range(50):
        ch.send(i)
    if half_frame:
        wfd = ch._transport.write_fd()  # type: ignore[attr-defined]
        os.write(wfd, encode_header(1, 0, 1000) + b"x" * 10)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("half_frame", [False, True])
def test_killed_child_gives_everything_then_channel_closed(method: str, half_frame: bool) -> None:
    a, b = ipckit.pipe()
    with a:
        proc = _ctx(method).Process(target=_send_then_die, args=(b, half_frame))
        proc.start()
        b.close()
        got = [a.recv(timeout=30) for _ in range(50)]
        assert got == list(range(50))
        with pytest.raises(ChannelClosed) as info:
            a.recv(timeout=30)
        if half_frame:
            assert "middle of a message" in str(info.value)
        proc.join(30)


SIGPIPE_SCRIPT = """
import ipckit
a, b = ipckit.pipe()
b.close()
try:
    a.send("nobody listens", timeout=5)
except ipckit.ChannelClosed as exc:
    print("closed:", exc)
a.close()
"""


def test_send_to_gone_reader_raises_instead_of_sigpipe() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SIGPIPE_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("closed:")


def test_descriptors_not_inherited_by_exec() -> None:
    a, b = ipckit.pipe()
    with a, b:
        ours = {a.fileno(), b.fileno()}
        for ch in (a, b):
            ours |= {ch._transport.read_fd(), ch._transport.write_fd()}  # type: ignore[attr-defined]
        out = subprocess.run(
            [sys.executable, "-c", "import os; print(' '.join(os.listdir('/proc/self/fd')))"],
            check=False,
            capture_output=True,
            text=True,
            close_fds=False,
            timeout=60,
        )
        theirs = {int(x) for x in out.stdout.split()}
        assert not (ours & theirs), f"descriptors {ours & theirs} leaked into an exec'd child"


def test_one_way_pipe() -> None:
    reader, writer = ipckit.pipe(duplex=False)
    with reader, writer:
        writer.send("one way", timeout=5)
        assert reader.recv(timeout=5) == "one way"
        with pytest.raises(HandleClosed, match="only receives"):
            reader.send("back")
        with pytest.raises(HandleClosed, match="only sends"):
            writer.recv(timeout=0)


def test_full_pipe_times_out_without_tearing_frames() -> None:
    a, b = ipckit.pipe()
    with a, b:
        sent = 0
        payload = b"z" * 3000
        with pytest.raises(Full):
            while True:
                a.send_bytes(payload, timeout=0)
                sent += 1
        start = time.monotonic()
        with pytest.raises(Full):
            a.send_bytes(payload, timeout=0.1)
        assert time.monotonic() - start >= 0.09
        with pytest.raises(Full) as info:
            a.send_many([payload] * 3, timeout=0)
        assert info.value.sent == 0
        got = 0
        while True:
            try:
                assert b.recv_bytes(timeout=0) == payload
                got += 1
            except Empty:
                break
        assert got == sent


def test_close_wakes_blocked_sender() -> None:
    a, b = ipckit.pipe()
    with b:
        while True:
            try:
                a.send_bytes(b"f" * 4000, timeout=0)
            except Full:
                break
        errors: list[BaseException] = []

        def blocked() -> None:
            try:
                a.send_bytes(b"g" * 100)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=blocked)
        thread.start()
        time.sleep(0.1)
        a.close()
        thread.join(30)
        assert not thread.is_alive()
        assert errors and isinstance(errors[0], HandleClosed)


def test_big_frame_finishes_even_after_timeout() -> None:
    """A frame bigger than the pipe is never left half-written by a timeout."""
    a, b = ipckit.pipe()
    with a, b:
        big = os.urandom(3 << 20)
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(b.recv_bytes(timeout=30)))
        reader.start()
        a.send_bytes(big, timeout=0.01)
        reader.join(30)
        assert result == [big]


def _close_inherited(ch: ipckit.Channel) -> None:
    ch.close()


def test_child_closing_inherited_handle_does_not_wake_parent() -> None:
    a, b = ipckit.pipe()
    with a, b:
        a.poll(0.01)  # make the wake-up descriptor exist before the fork
        proc = _ctx("fork").Process(target=_close_inherited, args=(a,))
        proc.start()
        proc.join(30)
        with pytest.raises(Empty):
            a.recv(timeout=0.2)
        b.send("still works", timeout=5)
        assert a.recv(timeout=5) == "still works"


def test_pickle_refused_across_processes_unless_chosen() -> None:
    a, b = ipckit.pipe(serializer="pickle")
    with a, b:
        a.send({1, 2})
        assert b.recv(timeout=5) == {1, 2}
