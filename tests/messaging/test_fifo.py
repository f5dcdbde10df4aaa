"""fifo:// as a named queue: naming, many writers and readers, shutdown, faults."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

import ipckit
from ipckit._framing import encode_header
from ipckit._oob import SHM_DIR
from ipckit.backends.fifo import STATE_SUFFIX
from ipckit.testing import unique_name
from tests.messaging import _workers

BOUND = 60
CTX = multiprocessing.get_context("fork")


@pytest.fixture
def url() -> Iterator[str]:
    path = os.path.join(tempfile.gettempdir(), unique_name("fifo"))
    yield "fifo://" + path
    for leftover in (path, path + STATE_SUFFIX):
        assert not os.path.exists(leftover), f"{leftover} left behind"


def _start(target: Any, *args: Any, ctx: Any = CTX) -> multiprocessing.process.BaseProcess:
    proc: multiprocessing.process.BaseProcess = ctx.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _join(proc: multiprocessing.process.BaseProcess) -> None:
    proc.join(BOUND)
    if proc.is_alive():
        proc.kill()
        proc.join(BOUND)
        raise AssertionError("child did not finish in time")


def _oob_blocks(ch: ipckit.Channel) -> list[str]:
    prefix = ch._transport._oob_prefix  # type: ignore[attr-defined]
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"{prefix}.oob.")]


def test_create_attach_unlink(url: str) -> None:
    path = url.removeprefix("fifo://")
    with pytest.raises(FileNotFoundError):
        ipckit.open(url)
    with ipckit.open(url, create=True) as a:
        assert stat.S_ISFIFO(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path + STATE_SUFFIX).st_mode) == 0o600
        with pytest.raises(ipckit.ChannelExists) as info:
            ipckit.open(url, create=True)
        assert isinstance(info.value, FileExistsError)
        # Attaching never waits for a peer, and a lone handle can talk to itself.
        with ipckit.open(url) as b:
            b.send("hello", timeout=0)
            assert a.recv(timeout=BOUND) == "hello"
        assert a.capabilities.many_producers and a.capabilities.many_consumers
        a.unlink()
        a.unlink()
        with pytest.raises(ipckit.ChannelNotFound):
            ipckit.open(url)
        # Handles already open keep working after unlink.
        a.send(1, timeout=0)
        assert a.recv(timeout=BOUND) == 1


def test_mode_option_and_not_a_fifo(url: str) -> None:
    path = url.removeprefix("fifo://")
    with ipckit.open(url + "?mode=0640", create=True) as a:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
        a.unlink()
    with open(path, "w"):
        pass
    try:
        with pytest.raises(ipckit.ConfigurationError, match="not a FIFO"):
            ipckit.open(url)
    finally:
        os.unlink(path)


def test_full_queue_times_out_without_a_reader(url: str) -> None:
    """No reader at all: sends fill the pipe, then time out (never SIGPIPE, never block)."""
    with ipckit.open(url, create=True, pipe_size="64KiB") as a:
        sent = 0
        while True:
            try:
                a.send_bytes(b"x" * 100, timeout=0)
            except ipckit.Full:
                break
            sent += 1
        assert sent >= 16, "64 KiB of pipe holds at least 16 packets"
        with pytest.raises(ipckit.Full):
            a.send_bytes(b"y", timeout=0.05)
        assert a.recv_bytes(timeout=BOUND) == b"x" * 100
        a.send_bytes(b"z", timeout=BOUND)
        a.unlink()


def test_oob_frames_and_sweep(url: str) -> None:
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b:
        big = os.urandom(100_000)
        a.send_many([b"small", big, b"after"], timeout=BOUND)
        assert b.recv_many(10, timeout=BOUND) == [b"small", big, b"after"]
        assert _oob_blocks(a) == []
        a.send_bytes(big, timeout=BOUND)  # never received: the last close sweeps it
        assert len(_oob_blocks(a)) == 1
        a.unlink()
        assert len(_oob_blocks(a)) == 1  # b may still receive it
        prefix = a._transport._oob_prefix  # type: ignore[attr-defined]
    assert not [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]


def _run_writers(url: str, sizes: list[int], writers: int, readers: int) -> None:
    report = "fifo://" + os.path.join(tempfile.gettempdir(), unique_name("report"))
    with (
        ipckit.open(url, create=True, pipe_size="256KiB") as q,
        ipckit.open(report, create=True) as results,
    ):
        total = writers * len(sizes)
        share = [total // readers + (1 if r < total % readers else 0) for r in range(readers)]
        procs = [
            _start(_workers.read_frames, url, report, share[r], {"max_message_size": 1 << 21})
            for r in range(readers)
        ]
        procs += [
            _start(_workers.write_frames, url, w, sizes, {"max_message_size": 1 << 21})
            for w in range(writers)
        ]
        got: list[tuple[int, int]] = []
        for _ in range(readers):
            got.extend(tuple(pair) for pair in results.recv(timeout=BOUND * 4))
        for proc in procs:
            _join(proc)
            assert proc.exitcode == 0
        assert len(got) == total, f"{total - len(got)} frames lost"
        assert len(set(got)) == total, "a frame was delivered twice"
        for w in range(writers):
            seqs = [s for writer, s in got if writer == w]
            assert sorted(seqs) == list(range(len(sizes)))
        assert _oob_blocks(q) == []
        q.unlink()
        results.unlink()


def test_four_writers_8kib_and_near_pipe_buf(url: str) -> None:
    """4 writers x 1000 frames of 8 KiB (out of band) and of 4000 bytes (one packet each)."""
    _run_writers(url, [8192, 4000] * 500, writers=4, readers=1)


def test_four_writers_1mib_two_readers(url: str) -> None:
    """4 writers x 25 frames of 1 MiB, two readers: no torn, lost or doubled frame."""
    _run_writers(url, [1 << 20] * 25, writers=4, readers=2)


@pytest.mark.slow
def test_four_writers_1000_frames_of_1mib(url: str) -> None:
    _run_writers(url, [1 << 20] * 1000, writers=4, readers=2)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_shutdown_wakes_readers_in_other_processes(url: str, method: str) -> None:
    ctx = multiprocessing.get_context(method)
    report = "fifo://" + os.path.join(tempfile.gettempdir(), unique_name("report"))
    with ipckit.open(url, create=True) as q, ipckit.open(report, create=True) as results:
        procs = [_start(_workers.wait_for_end, url, report, {}, ctx=ctx) for _ in range(3)]
        assert [results.recv(timeout=BOUND) for _ in procs] == ["waiting"] * 3
        q.shutdown()
        assert sorted(results.recv(timeout=BOUND) for _ in procs) == ["closed"] * 3
        for proc in procs:
            _join(proc)
        # A handle attached after the end sees the end too, and cannot send.
        with ipckit.open(url) as late:
            with pytest.raises(ipckit.ChannelClosed):
                late.send(1)
            with pytest.raises(ipckit.ChannelClosed):
                late.recv(timeout=BOUND)
        q.unlink()
        results.unlink()


def test_shutdown_drains_first(url: str) -> None:
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b, ipckit.open(url) as c:
        a.send_many(list(range(10)), timeout=BOUND)
        b.shutdown()
        with pytest.raises(ipckit.ChannelClosed):
            a.send(99, timeout=BOUND)
        assert list(c) == list(range(10))
        with pytest.raises(ipckit.ChannelClosed):
            b.recv(timeout=BOUND)
        a.unlink()


def test_writer_killed_mid_send_leaves_queue_whole(url: str) -> None:
    """SIGKILL a writer sending 1 MiB frames: readers get whole frames; the last close sweeps."""
    with ipckit.open(url, create=True, max_message_size=1 << 21) as q:
        proc = _start(_workers.send_forever_then_die, url, 1 << 20, {"max_message_size": 1 << 21})
        first = q.recv_bytes(timeout=BOUND)
        _workers.check_payload(first)
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(BOUND)
        while True:
            try:
                _workers.check_payload(q.recv_bytes(timeout=0.2))
            except ipckit.Empty:
                break
        q.send_bytes(b"still works", timeout=BOUND)
        assert q.recv_bytes(timeout=BOUND) == b"still works"
        q.unlink()
        prefix = q._transport._oob_prefix  # type: ignore[attr-defined]
    assert not [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]


def test_reader_killed_does_not_stall_others(url: str) -> None:
    """A reader SIGKILLed at any point holds no lock: another reader goes on."""
    with ipckit.open(url, create=True) as q:
        report = "fifo://" + os.path.join(tempfile.gettempdir(), unique_name("report"))
        with ipckit.open(report, create=True) as results:
            proc = _start(_workers.read_frames, url, report, 10**9, {})
            for seq in range(200):
                q.send_bytes(_workers.payload(0, seq, 64), timeout=BOUND)
            os.kill(proc.pid or 0, signal.SIGKILL)
            proc.join(BOUND)
            for seq in range(50):
                q.send_bytes(_workers.payload(1, seq, 64), timeout=BOUND)
            seen = []
            while True:
                try:
                    seen.append(_workers.check_payload(q.recv_bytes(timeout=0.2)))
                except ipckit.Empty:
                    break
            assert [s for w, s in seen if w == 1] == list(range(50))
            results.unlink()
        q.unlink()


@pytest.mark.parametrize(
    "garbage",
    [encode_header(1, 0, 2**60), b"not ipckit at all", encode_header(1, 0, 100) + b"short"],
    ids=["huge-length", "garbage", "truncated"],
)
def test_foreign_bytes_are_a_protocol_error_and_the_queue_goes_on(url: str, garbage: bytes) -> None:
    with ipckit.open(url, create=True) as q:
        fd = os.open(url.removeprefix("fifo://"), os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, garbage)
        finally:
            os.close(fd)
        with pytest.raises(ipckit.ProtocolError):
            q.recv(timeout=BOUND)
        q.send("fine", timeout=BOUND)
        assert q.recv(timeout=BOUND) == "fine"
        q.unlink()
