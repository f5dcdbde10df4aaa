"""The C core and the pure path on one channel: mixed processes, crashes, a kill storm.

Every process here picks its path with ``ipckit._accel.set_pure`` before it opens
its handles, so one test can pair a native producer with a pure consumer (and the
reverse) on the same segment and semaphores, and kill either while it holds a lock.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import ipckit
from ipckit import Empty, _accel
from ipckit.backends.shm import remove
from ipckit.testing import unique_name
from tests.shm import _workers

pytestmark = pytest.mark.skipif(not _accel.built(), reason="the C core is not built")

PATHS = {"native": False, "pure": True}  # name -> set_pure argument


@pytest.fixture
def url() -> Iterator[str]:
    name = f"shm://{unique_name('mix')}"
    yield name
    remove(name.removeprefix("shm://"))


@pytest.fixture(autouse=True)
def _restore_path() -> Iterator[None]:
    before = _accel.core is None
    yield
    _accel.set_pure(before)


def test_native_core_is_in_use_when_the_build_requires_it() -> None:
    # CI installs with IPCKIT_REQUIRE_NATIVE=1: the suite must not pass pure by accident.
    if not os.environ.get("IPCKIT_REQUIRE_NATIVE") or os.environ.get("IPCKIT_PURE"):
        pytest.skip("only meaningful in a build that requires the C core")
    assert ipckit.native is True


def test_open_handles_say_which_path_serves_them(url: str) -> None:
    _accel.set_pure(False)
    with ipckit.open(url, create=True) as native:
        _accel.set_pure(True)
        with ipckit.open(url) as pure:
            assert native._transport.native_core is not None  # type: ignore[attr-defined]
            assert pure._transport.native_core is None  # type: ignore[attr-defined]
            native.send({"k": [1, 2]})
            pure.send_bytes(b"raw")
            assert pure.recv(timeout=5) == {"k": [1, 2]}
            assert native.recv_bytes(timeout=5) == b"raw"
            native.send_many(list(range(50)))
            assert pure.recv_many(100, timeout=5) == list(range(50))
            assert native.stats().messages_sent == 51
            assert native.stats().messages_received == 1
        native.unlink()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_mixed_producers_and_consumers_deliver_exactly_once_in_order(url: str, method: str) -> None:
    _workers.run_many(
        url,
        2000,
        method,
        pure_producers=(False, True, False, True),
        pure_consumers=(False, True),
        capacity="64KiB",
    )


@pytest.mark.parametrize("victim", list(PATHS))
@pytest.mark.parametrize("survivors", list(PATHS))
@pytest.mark.parametrize("point", _workers.KILL_POINTS)
def test_survivors_of_either_path_recover_from_a_killed_peer_of_either(
    url: str, point: str, victim: str, survivors: str
) -> None:
    _accel.set_pure(PATHS[survivors])
    with ipckit.open(url, create=True, capacity="16KiB") as a, ipckit.open(url) as b:
        a.send_many([b"m0", b"m1"], timeout=5)
        proc = multiprocessing.get_context("fork").Process(
            target=_workers.die_at, args=(url, point, PATHS[victim])
        )
        proc.start()
        proc.join(60)
        assert proc.exitcode == -signal.SIGKILL
        a.send_bytes(b"n0", timeout=10)
        want = [b"m1", b"n0"] if point == "after_taking" else [b"m0", b"m1", b"n0"]
        got: list[bytes] = []
        while len(got) < len(want):
            got += b.recv_many(10, timeout=10)
        assert got == want, "nothing committed lost, torn or duplicated"
        limit = a.stats().extra["max_inline_message"]
        assert isinstance(limit, int)
        a.send_bytes(bytes(limit), timeout=5)
        assert b.recv_bytes(timeout=5) == bytes(limit), "the whole ring is usable again"
        a.unlink()


def _check_stream(got: list[bytes]) -> None:
    for seq, body in enumerate(got):
        assert body == seq.to_bytes(8, "little") * (1 + seq % 7), f"message {seq} torn or lost"


@pytest.mark.parametrize("victim", list(PATHS))
@pytest.mark.parametrize("receiver", list(PATHS))
def test_sender_killed_at_a_random_moment_leaves_a_whole_prefix(
    url: str, victim: str, receiver: str
) -> None:
    """SIGKILL a sender in a tight loop (inside C or Python, wherever it is)."""
    rng = random.Random(f"{victim}-{receiver}")
    _accel.set_pure(PATHS[receiver])
    ctx = multiprocessing.get_context("fork")
    for _ in range(4):
        with ipckit.open(url, create=True, capacity="16KiB") as rx, ipckit.open(url) as tx:
            proc: Any = ctx.Process(target=_workers.send_until_killed, args=(url, PATHS[victim]))
            proc.start()
            # Kill only once it is sending: a loaded machine may take long to start it.
            got: list[bytes] = rx.recv_many(64, timeout=30)
            stop = time.monotonic() + rng.uniform(0.02, 0.2)
            while time.monotonic() < stop:
                try:
                    got.extend(rx.recv_many(64, timeout=0.01))
                except Empty:
                    pass
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
            while True:
                try:
                    got.extend(rx.recv_many(64, timeout=0.2))
                except Empty:
                    break
            _check_stream(got)
            # A lock the victim held is taken over; the channel goes on whole.
            tx.send_bytes(b"after", timeout=15)
            assert rx.recv_bytes(timeout=5) == b"after"
            rx.unlink()
