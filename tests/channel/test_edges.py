"""Issue-8 edges of the Channel layer and shm://: signals, forks, views, options, names."""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import ipckit
from ipckit.testing import unique_name

BOUND = 20.0
SPAWN = multiprocessing.get_context("spawn")
FORK = multiprocessing.get_context("fork")


def _remove(url: str) -> None:
    from ipckit.backends.shm import remove

    remove(url.removeprefix("shm://"))


@pytest.fixture
def url() -> Iterator[str]:
    name = f"shm://{unique_name('edge')}"
    yield name
    _remove(name)


@pytest.fixture
def extra() -> Iterator[list[str]]:
    """More shm:// names for a test; removed even when the test fails half-way."""
    names: list[str] = []
    yield names
    for name in names:
        _remove(name)


def _payload(i: int) -> bytes:
    return (b"%08d" % i) * 16


def _whole(data: bytes) -> bool:
    head = data[:8]
    return len(data) == 128 and data == head * 16


# -- item 2: Ctrl-C from an interval timer, in another process ---------------------------


class _Storm:
    """SIGALRM every few hundred microseconds; it raises KeyboardInterrupt only while
    inside an ipckit call (so the test's own bookkeeping is never hit)."""

    def __init__(self) -> None:
        self.inside = False
        signal.signal(signal.SIGALRM, self._boom)
        signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0003)

    def _boom(self, _sig: int, _frame: object) -> None:
        if self.inside:
            raise KeyboardInterrupt

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)


def _send_under_alarms(url: str, count: int) -> None:
    with ipckit.open(url) as ch:
        storm = _Storm()
        for i in range(count):
            try:
                storm.inside = True
                ch.send_bytes(_payload(i), timeout=BOUND)
            except KeyboardInterrupt:
                pass  # whole or not at all: the receiver checks which
            finally:
                storm.inside = False
        storm.stop()
        ch.send_bytes(b"done", timeout=BOUND)


def _recv_under_alarms(url: str, results: str) -> None:
    got = 0
    torn = False
    with ipckit.open(url) as ch, ipckit.open(results) as out:
        storm = _Storm()
        while True:
            data = b""
            try:
                storm.inside = True
                data = ch.recv_bytes(timeout=BOUND)
            except KeyboardInterrupt:
                pass
            finally:
                storm.inside = False
            if data == b"done":
                break
            if data:
                torn = torn or not _whole(data)
                got += 1
        storm.stop()
        out.send(-1 if torn else got, timeout=BOUND)


def test_timer_storm_in_a_sender_leaves_no_lock_for_others(url: str) -> None:
    with ipckit.open(url, create=True, capacity="16KiB") as ch:
        proc = SPAWN.Process(target=_send_under_alarms, args=(url, 3000))
        proc.start()
        seen: set[bytes] = set()
        while True:
            started = time.monotonic()
            data = ch.recv_bytes(timeout=BOUND)
            # A lock left held would make this wait for the 10 s orphan takeover.
            assert time.monotonic() - started < 5, "a receive waited on a lock left held"
            if data == b"done":
                break
            assert _whole(data), f"torn message {data[:20]!r}"
            assert data not in seen, "a message arrived twice"
            seen.add(data)
        proc.join(BOUND)
        assert proc.exitcode == 0
        assert len(seen) > 100
        ch.send_bytes(b"free", timeout=1)  # the send lock is free too
        assert ch.recv_bytes(timeout=1) == b"free"
        ch.unlink()


def test_timer_storm_in_a_receiver_leaves_no_lock_for_others(url: str, extra: list[str]) -> None:
    results = f"shm://{unique_name('res')}"
    extra.append(results)
    with (
        ipckit.open(url, create=True, capacity="16KiB") as ch,
        ipckit.open(results, create=True) as res,
    ):
        proc = SPAWN.Process(target=_recv_under_alarms, args=(url, results))
        proc.start()
        for i in range(3000):
            started = time.monotonic()
            ch.send_bytes(_payload(i), timeout=BOUND)
            assert time.monotonic() - started < 5, "a send waited on a lock left held"
        # An interrupt right after the child took "done" loses it (at most once on
        # receive): say it until the child answers.
        got = None
        deadline = time.monotonic() + BOUND
        while got is None and time.monotonic() < deadline:
            ch.send_bytes(b"done", timeout=BOUND)
            try:
                got = res.recv(timeout=0.5)
            except ipckit.Empty:
                pass
        proc.join(BOUND)
        assert proc.exitcode == 0
        assert got != -1, "a torn message arrived"
        assert 0 < got <= 3000
        res.unlink()
        ch.unlink()


def test_sigint_from_another_process_during_blocked_recv_returns_promptly(url: str) -> None:
    with ipckit.open(url, create=True) as ch:
        started = time.monotonic()
        killer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        killer.start()
        with pytest.raises(KeyboardInterrupt):
            ch.recv(timeout=BOUND)
        assert time.monotonic() - started < 2
        ch.send("after", timeout=1)
        assert ch.recv(timeout=1) == "after"
        ch.unlink()


# -- item 3: fork while another thread is inside a send -----------------------------------


@pytest.mark.parametrize("kind", ["shm", "pipe"])
def test_fork_while_another_thread_is_blocked_in_send(url: str, kind: str) -> None:
    if kind == "shm":
        a = ipckit.open(url, create=True, capacity="4KiB")
        b = ipckit.open(url)
    else:
        b, a = ipckit.pipe()
    try:
        # Fill the channel so the thread's send blocks inside the handle's send lock.
        with pytest.raises(ipckit.Full):
            while True:
                a.send_bytes(b"x" * 512, timeout=0)
        inside = threading.Event()

        def blocked() -> None:
            inside.set()
            a.send_bytes(b"y" * 512, timeout=BOUND)

        thread = threading.Thread(target=blocked, daemon=True)
        thread.start()
        inside.wait(BOUND)
        time.sleep(0.1)

        def child() -> None:
            with pytest.raises(ipckit.Full) as info:
                a.send_bytes(b"z" * 512, timeout=0)
            assert "another thread" not in str(info.value)
            assert b.recv_bytes(timeout=BOUND)
            a.close()
            b.close()

        proc = FORK.Process(target=child)
        proc.start()
        proc.join(BOUND)
        assert proc.exitcode == 0, "the child could not use or close its inherited handles"
        while thread.is_alive():
            try:
                b.recv_bytes(timeout=0.1)
            except ipckit.Empty:
                pass
        thread.join(BOUND)
    finally:
        a.close()
        b.close()
        if kind == "shm":
            a.unlink()


# -- item 7: views ---------------------------------------------------------------------


def _drop_a_view(ch: ipckit.Channel) -> None:
    assert bytes(ch.recv_view(timeout=1).data) == b"first"
    gc.collect()


def test_a_dropped_view_gives_its_message_back(url: str) -> None:
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b, ipckit.open(url) as c:
        a.send_bytes(b"first", timeout=1)
        a.send_bytes(b"second", timeout=1)
        with pytest.warns(ResourceWarning, match="never released"):
            _drop_a_view(b)
        assert c.recv_bytes(timeout=1) == b"second", "another handle was wedged"
        a.send_bytes(b"third", timeout=1)
        assert b.recv_bytes(timeout=1) == b"third", "the same handle was wedged"
        a.unlink()


def test_release_refuses_while_a_slice_of_the_ring_is_alive(url: str) -> None:
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b:
        a.send_bytes(b"abcdef", timeout=1)
        a.send_bytes(b"ghijkl", timeout=1)
        view = b.recv_view(timeout=1)
        part = view.data[1:3]
        with pytest.raises(BufferError, match="still alive"):
            view.release()
        assert bytes(part) == b"bc", "the lent bytes stay valid while it is refused"
        del part
        view.release()
        assert b.recv_bytes(timeout=1) == b"ghijkl"
        a.unlink()


def test_close_with_an_array_from_a_view_alive_raises_nothing(url: str) -> None:
    with ipckit.open(url, create=True) as a:
        b = ipckit.open(url)
        a.send_bytes(np.arange(64, dtype=np.uint8).tobytes(), timeout=1)
        view = b.recv_view(timeout=1)
        arr = np.frombuffer(view.data, dtype=np.uint8)
        b.close()  # gives the message back; the array keeps its mapping alive
        assert arr.shape == (64,)
        del arr
        view.release()
        a.send_bytes(b"next", timeout=1)
        with ipckit.open(url) as c:
            assert c.recv_bytes(timeout=1) == b"next"
        a.unlink()


def test_recv_bytes_into_fits_offsets_and_refuses_without_losing(url: str) -> None:
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b:
        target = np.zeros(16, dtype=np.uint8)
        a.send_bytes(b"hello", timeout=1)
        assert b.recv_bytes_into(target, 4, timeout=1) == 5
        assert bytes(target[4:9]) == b"hello"
        a.send_bytes(b"x" * 40, timeout=1)
        with pytest.raises(ipckit.MessageTooLarge) as info:
            b.recv_bytes_into(target, timeout=1)
        assert info.value.needed == 40
        assert info.value.payload == b"x" * 40
        with pytest.raises(ipckit.ConfigurationError):
            b.recv_bytes_into(b"readonly", timeout=0)
        with pytest.raises(ipckit.ConfigurationError):
            b.recv_bytes_into(bytearray(4), 9, timeout=0)
        a.unlink()


# -- item 9: options -----------------------------------------------------------------------


def test_infinite_and_huge_timeouts_wait_and_negative_means_zero(url: str) -> None:
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b:
        threading.Timer(0.2, a.send, ("late",)).start()
        assert b.recv(timeout=math.inf) == "late"
        threading.Timer(0.2, a.send, ("later",)).start()
        assert b.recv(timeout=1e300) == "later"
        started = time.monotonic()
        with pytest.raises(ipckit.Empty):
            b.recv(timeout=-5)
        assert time.monotonic() - started < 1
        assert b.poll(-1) is False
        with pytest.raises(ipckit.ConfigurationError):
            b.recv(timeout=math.nan)
        a.unlink()


def test_bad_counts_sizes_modes_and_positional_timeouts(url: str) -> None:
    with ipckit.open(url, create=True) as a:
        with pytest.raises(ipckit.ConfigurationError, match="whole number"):
            a.recv_many("5")  # type: ignore[arg-type]
        with pytest.raises(ipckit.ConfigurationError, match="at least 1"):
            a.recv_many(0)
        with pytest.raises(TypeError):
            a.send_bytes(b"x", 5)  # type: ignore[misc]
        with pytest.raises(TypeError):
            a.recv(1.0)  # type: ignore[misc]
        a.unlink()
    with pytest.raises(ipckit.ConfigurationError, match="at least 1 byte"):
        ipckit.pipe(max_message_size=0)
    with pytest.raises(ipckit.ConfigurationError, match=r"0\.\.0o777"):
        ipckit.open(url, create=True, mode=0o7777)
    assert not os.path.exists(f"/dev/shm/ikshm.{url.removeprefix('shm://')}")


def test_creator_only_options_are_refused_when_attaching(url: str) -> None:
    with ipckit.open(url, create=True, capacity="64KiB", mode=0o640) as a:
        with pytest.raises(ipckit.ConfigurationError, match="capacity"):
            ipckit.open(url, capacity="64KiB")
        with pytest.raises(ipckit.ConfigurationError, match="mode"):
            ipckit.open(f"{url}?mode=0600")
        with ipckit.open(url, spin=0.0001) as b:  # per-handle options are fine
            a.send(1, timeout=1)
            assert b.recv(timeout=1) == 1
        a.unlink()


def test_an_attachers_smaller_limit_holds_on_receive(url: str) -> None:
    with (
        ipckit.open(url, create=True, capacity="64KiB") as a,
        ipckit.open(url, max_message_size=100) as b,
    ):
        a.send_bytes(b"x" * 1000, timeout=1)  # inline in the ring
        a.send_bytes(b"y" * 100_000, timeout=1)  # out of band
        a.send_bytes(b"ok", timeout=1)
        with pytest.raises(ipckit.MessageTooLarge, match="max_message_size=100"):
            b.recv_bytes(timeout=1)
        with pytest.raises(ipckit.MessageTooLarge, match="max_message_size=100"):
            b.recv_bytes(timeout=1)
        assert b.recv_bytes(timeout=1) == b"ok"
        a.unlink()
    assert not [n for n in os.listdir("/dev/shm") if url.removeprefix("shm://") in n]


def test_a_stale_handles_unlink_spares_a_newer_channel(url: str) -> None:
    old = ipckit.open(url, create=True)
    old.unlink()
    with ipckit.open(url, create=True) as new:
        old.unlink()  # the name is the newer channel's now
        with ipckit.open(url) as again:
            new.send("still here", timeout=1)
            assert again.recv(timeout=1) == "still here"
        new.unlink()
    old.close()


# -- item 5: names ---------------------------------------------------------------------


def test_shm_names_are_checked_against_every_derived_object() -> None:
    from ipckit.backends.shm import NAME_TEMPLATES

    longest = 255 - max(len(t.replace("{}", "")) for _, t in NAME_TEMPLATES)
    with pytest.raises(ipckit.ConfigurationError, match="NAME_MAX"):
        ipckit.open("shm://" + "n" * (longest + 1), create=True)
    base = unique_name("n")
    name = base + "n" * (longest - len(base))
    with (
        ipckit.open(f"shm://{name}", create=True, capacity="64KiB") as a,
        ipckit.open(f"shm://{name}") as b,
    ):
        a.send_bytes(b"big" * 100_000, timeout=1)  # an out-of-band block with the longest name
        assert b.recv_bytes(timeout=1) == b"big" * 100_000
        a.unlink()
    for bad in ("shm://a\x00b", "shm://..", "shm://a b"):
        with pytest.raises(ipckit.ConfigurationError):
            ipckit.open(bad, create=True)


# -- item 4: big messages survive unlink() for handles still open -----------------------


def _receive_big_after_unlink(url: str, to_child: str, to_parent: str, size: int) -> None:
    with ipckit.open(url) as ch, ipckit.open(to_child) as inbox, ipckit.open(to_parent) as out:
        out.send("attached", timeout=BOUND)
        assert inbox.recv(timeout=BOUND) == "unlinked"
        assert ch.recv_bytes(timeout=BOUND) == b"b" * size
        out.send("got it", timeout=BOUND)


def test_unlink_keeps_big_messages_for_open_handles_and_the_last_close_cleans_up(
    url: str, extra: list[str]
) -> None:
    name = url.removeprefix("shm://")
    to_child, to_parent = f"shm://{unique_name('down')}", f"shm://{unique_name('up')}"
    extra += [to_child, to_parent]
    size = 600_000  # over half the ring: out of band
    with (
        ipckit.open(url, create=True, capacity="64KiB") as a,
        ipckit.open(to_child, create=True) as down,
        ipckit.open(to_parent, create=True) as up,
    ):
        proc = SPAWN.Process(
            target=_receive_big_after_unlink, args=(url, to_child, to_parent, size)
        )
        proc.start()
        assert up.recv(timeout=BOUND) == "attached"
        a.send_bytes(b"b" * size, timeout=BOUND)
        a.unlink()  # the creator removes the channel first; the child is still reading
        assert [n for n in os.listdir("/dev/shm") if name in n and ".oob." in n]
        down.send("unlinked", timeout=BOUND)
        assert up.recv(timeout=BOUND) == "got it"
        proc.join(BOUND)
        assert proc.exitcode == 0
        a.send_bytes(b"c" * size, timeout=BOUND)  # a big message nobody will take
        down.unlink()
        up.unlink()
    # The last handle closed: nothing of the channel is left, blocks included.
    assert [n for n in os.listdir("/dev/shm") if name in n] == []
