"""mq:// over POSIX message queues: naming, limits, priorities, fileno, OOB, faults."""

from __future__ import annotations

import multiprocessing
import os
import resource
import select
import signal
import stat
from collections.abc import Iterator
from typing import Any

import posix_ipc
import pytest

import ipckit
from ipckit._framing import FLAG_OOB, encode_header
from ipckit._oob import SHM_DIR
from ipckit.backends.mq import QueueLimitError, max_queue_depth
from ipckit.testing import unique_name
from tests.messaging import _workers

BOUND = 60
CTX = multiprocessing.get_context("fork")
MQUEUE = "/dev/mqueue"


@pytest.fixture
def url() -> Iterator[str]:
    name = unique_name("mq")
    yield "mq://" + name
    if os.path.isdir(MQUEUE):
        assert name not in os.listdir(MQUEUE), f"queue {name} left behind"
    assert not [n for n in os.listdir(SHM_DIR) if name in n], "state or blocks left behind"


def _oob_blocks(ch: ipckit.Channel) -> list[str]:
    prefix = ch._transport._oob_prefix  # type: ignore[attr-defined]
    return [n for n in os.listdir(SHM_DIR) if n.startswith(prefix + ".oob.")]


def _start(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    proc: multiprocessing.process.BaseProcess = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def test_create_attach_unlink(url: str) -> None:
    name = url.removeprefix("mq://")
    with pytest.raises(FileNotFoundError):
        ipckit.open(url)
    with ipckit.open(url, create=True) as a:
        if os.path.isdir(MQUEUE):
            assert stat.S_IMODE(os.stat(f"{MQUEUE}/{name}").st_mode) == 0o600
        with pytest.raises(FileExistsError):
            ipckit.open(url, create=True)
        with ipckit.open(url) as b:
            b.send({"x": 1}, timeout=0)
            assert a.recv(timeout=BOUND) == {"x": 1}
        stats = a.stats()
        assert stats.capacity == 10 and stats.depth == 0
        a.unlink()
        a.unlink()
        with pytest.raises(ipckit.ChannelNotFound):
            ipckit.open(url)


def test_bad_names_and_priority(url: str) -> None:
    with pytest.raises(ipckit.ConfigurationError):
        ipckit.open("mq://a/b", create=True)
    with pytest.raises(ipckit.ConfigurationError, match="priority"):
        ipckit.open(url, create=True, priority=-1)


def test_fileno_polls_readable(url: str) -> None:
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b:
        poller = select.poll()
        poller.register(b.fileno(), select.POLLIN)
        assert poller.poll(0) == []
        a.send("ready", timeout=BOUND)
        assert poller.poll(BOUND * 1000)
        assert b.recv(timeout=0) == "ready"
        a.unlink()


def test_priority_orders_delivery(url: str) -> None:
    with ipckit.open(url, create=True) as low, ipckit.open(url, priority=5) as high:
        low.send("low-1", timeout=BOUND)
        low.send("low-2", timeout=BOUND)
        high.send("high", timeout=BOUND)
        assert [low.recv(timeout=BOUND) for _ in range(3)] == ["high", "low-1", "low-2"]
        low.unlink()


def test_messages_bigger_than_the_queue_unit(url: str) -> None:
    with ipckit.open(url, create=True, message_size=1024) as a, ipckit.open(url) as b:
        assert a.stats().extra["message_size"] == 1024
        big = os.urandom(300_000)
        a.send_many([b"a", big, b"b" * 1000, b"c"], timeout=BOUND)
        assert b.recv_many(10, timeout=BOUND) == [b"a", big, b"b" * 1000, b"c"]
        assert _oob_blocks(a) == []
        a.send_bytes(big, timeout=BOUND)  # never received: the last close sweeps its block
        assert len(_oob_blocks(a)) == 1
        a.unlink()
        assert len(_oob_blocks(a)) == 1  # b may still receive it
        prefix = a._transport._oob_prefix  # type: ignore[attr-defined]
    assert not [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]


def test_full_queue(url: str) -> None:
    with ipckit.open(url, create=True, max_messages=2) as a:
        a.send(1, timeout=0)
        a.send(2, timeout=0)
        with pytest.raises(ipckit.Full):
            a.send(3, timeout=0)
        with pytest.raises(ipckit.Full):
            a.send(3, timeout=0.05)
        with pytest.raises(ipckit.Full) as info:
            a.send_many([3, 4], timeout=0)
        assert info.value.sent == 0
        assert a.recv(timeout=0) == 1
        a.unlink()


def test_depth_limit_named(url: str) -> None:
    depth = max_queue_depth() + 1
    with pytest.raises(QueueLimitError) as info:
        ipckit.open(url, create=True, max_messages=depth)
    text = str(info.value)
    assert "msg_max" in text and "/proc/sys/fs/mqueue/msg_max" in text and "sysctl" in text
    assert isinstance(info.value, ipckit.ConfigurationError)


def test_message_size_limit_named(url: str) -> None:
    with pytest.raises(QueueLimitError, match="msgsize_max"):
        ipckit.open(url, create=True, message_size="64MiB", max_messages=1)


def test_per_user_byte_limit_named(url: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (4096, hard))
    try:
        with pytest.raises(QueueLimitError, match="RLIMIT_MSGQUEUE"):
            ipckit.open(url, create=True, max_messages=4, message_size=2048)
    finally:
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (soft, hard))


def test_shutdown_reaches_other_processes(url: str) -> None:
    report = "mq://" + unique_name("report")
    with ipckit.open(url, create=True) as q, ipckit.open(report, create=True) as results:
        procs = [_start(_workers.wait_for_end, url, report, {}) for _ in range(3)]
        assert [results.recv(timeout=BOUND) for _ in procs] == ["waiting"] * 3
        q.shutdown()
        assert sorted(results.recv(timeout=BOUND) for _ in procs) == ["closed"] * 3
        for proc in procs:
            proc.join(BOUND)
            assert proc.exitcode == 0
        with ipckit.open(url) as late:
            with pytest.raises(ipckit.ChannelClosed):
                late.send(1)
            with pytest.raises(ipckit.ChannelClosed):
                late.recv(timeout=BOUND)
        q.unlink()
        results.unlink()


def test_sender_killed_mid_send(url: str) -> None:
    """SIGKILL a sender of out-of-band messages: receivers get whole ones; unlink sweeps."""
    options = {"max_message_size": 1 << 21}
    with ipckit.open(url, create=True, **options) as q:
        proc = _start(_workers.send_forever_then_die, url, 200_000, options)
        _workers.check_payload(q.recv_bytes(timeout=BOUND))
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(BOUND)
        while True:
            try:
                _workers.check_payload(q.recv_bytes(timeout=0.2))
            except ipckit.Empty:
                break
        q.send("alive", timeout=BOUND)
        assert q.recv(timeout=BOUND) == "alive"
        q.unlink()


@pytest.mark.parametrize(
    "garbage",
    [encode_header(1, 0, 2**60), b"not ipckit at all", encode_header(1, FLAG_OOB, 3) + b"ref"],
    ids=["huge-length", "garbage", "bad-oob-reference"],
)
def test_foreign_messages_are_a_protocol_error_and_the_queue_goes_on(
    url: str, garbage: bytes
) -> None:
    with ipckit.open(url, create=True) as q:
        raw = posix_ipc.MessageQueue("/" + url.removeprefix("mq://"))
        try:
            raw.send(garbage)
        finally:
            raw.close()
        with pytest.raises(ipckit.ProtocolError):
            q.recv(timeout=BOUND)
        q.send("fine", timeout=BOUND)
        assert q.recv(timeout=BOUND) == "fine"
        q.unlink()


def test_units_too_small_for_a_reference_are_refused(url: str) -> None:
    with pytest.raises(ipckit.ConfigurationError, match="512"):
        ipckit.open(url, create=True, message_size=100)


def test_many_writers_and_readers_mixed_sizes(url: str) -> None:
    """3 writers x 300 messages (inline and out of band), 2 readers: each once, none torn."""
    report = "mq://" + unique_name("report")
    options = {"max_message_size": 1 << 20}
    sizes = [100, 20_000, 8000] * 100
    with ipckit.open(url, create=True, **options) as q, ipckit.open(report, create=True) as out:
        total = 3 * len(sizes)
        readers = [_start(_workers.read_frames, url, report, total // 2, options) for _ in range(2)]
        writers = [_start(_workers.write_frames, url, w, sizes, options) for w in range(3)]
        got: list[tuple[int, int]] = []
        for _ in readers:
            got.extend(tuple(pair) for pair in out.recv(timeout=BOUND * 2))
        for proc in readers + writers:
            proc.join(BOUND)
            assert proc.exitcode == 0
        assert len(got) == total and len(set(got)) == total
        for w in range(3):
            assert sorted(s for writer, s in got if writer == w) == list(range(len(sizes)))
        assert _oob_blocks(q) == []
        q.unlink()
        out.unlink()
