"""Blocked calls, native and pure: Ctrl-C, close() and shutdown() reach them at once.

The C core waits with the GIL released (poll(2) on a descriptor, or the shm://
doorbell); these check, on every backend and both paths, what a user sees of a
blocked call: a real SIGINT raises KeyboardInterrupt within 100 ms and leaves
the channel working; close() from another thread ends the call with
HandleClosed; the peer's shutdown() ends it with ChannelClosed; a message that
arrives wakes it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import ipckit
from tests.conformance.test_contract import FACTORIES

BOUND = 30
#: The factories that pick a path themselves (shm-pure, shm-mixed) are left out.
BACKENDS = sorted(b for b in FACTORIES if not b.startswith("shm-"))


def _after(delay: float, action: Callable[[], None]) -> tuple[threading.Thread, list[float]]:
    """Run ``action`` in a thread after ``delay`` s; the list gets the time it ran."""
    when: list[float] = []

    def run() -> None:
        time.sleep(delay)
        when.append(time.monotonic())
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, when


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _fill(a: ipckit.Channel) -> int:
    sent = 0
    while True:
        try:
            a.send_bytes(b"x" * 1000, timeout=0)
            sent += 1
        except ipckit.Full:
            return sent


def _pair(backend: str) -> tuple[ipckit.Channel, ipckit.Channel]:
    a, b = FACTORIES[backend]({}, {})
    return a, b


def _closing(a: ipckit.Channel, b: ipckit.Channel) -> None:
    b.close()
    a.close()
    a.unlink()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", ["recv", "recv_bytes", "recv_many"])
def test_ctrl_c_reaches_a_blocked_receive(backend: str, call: str, pure: bool) -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    a, b = _pair(backend)
    try:
        receive: Any = getattr(b, call)
        args: tuple[Any, ...] = (10,) if call == "recv_many" else ()
        thread, when = _after(0.2, _ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            receive(*args, timeout=BOUND)
        late = time.monotonic() - when[0]
        thread.join(BOUND)
        assert late < 0.1, f"KeyboardInterrupt came {late * 1000:.0f} ms after SIGINT"
        a.send("after", timeout=BOUND)  # the channel is whole: nothing taken, no lock held
        assert b.recv(timeout=BOUND) == "after"
    finally:
        _closing(a, b)


@pytest.mark.parametrize("backend", sorted(set(BACKENDS) - {"tcp"}))
def test_ctrl_c_reaches_a_blocked_send(backend: str, pure: bool) -> None:
    a, b = _pair(backend)
    try:
        sent = _fill(a)
        thread, when = _after(0.2, _ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            a.send_bytes(b"y" * 1000, timeout=BOUND)
        late = time.monotonic() - when[0]
        thread.join(BOUND)
        assert late < 0.1, f"KeyboardInterrupt came {late * 1000:.0f} ms after SIGINT"
        got = [b.recv_bytes(timeout=BOUND) for _ in range(sent)]
        assert got == [b"x" * 1000] * sent  # the interrupted message was not sent
        a.send_bytes(b"after", timeout=BOUND)
        assert b.recv_bytes(timeout=BOUND) == b"after"
    finally:
        _closing(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_from_another_thread_ends_a_blocked_receive(backend: str, pure: bool) -> None:
    a, b = _pair(backend)
    try:
        thread, when = _after(0.2, b.close)
        with pytest.raises(ipckit.HandleClosed):
            b.recv(timeout=BOUND)
        late = time.monotonic() - when[0]
        thread.join(BOUND)
        assert late < 1.0, f"the blocked receive ended {late:.2f} s after close()"
    finally:
        _closing(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_peers_shutdown_ends_a_blocked_receive(backend: str, pure: bool) -> None:
    a, b = _pair(backend)
    try:
        a.send("last", timeout=BOUND)
        assert b.recv(timeout=BOUND) == "last"
        thread, when = _after(0.2, a.shutdown)
        with pytest.raises(ipckit.ChannelClosed):
            b.recv(timeout=BOUND)
        late = time.monotonic() - when[0]
        thread.join(BOUND)
        # A queue's shutdown may find the queue full and ring no doorbell: a sliced
        # wait sees the flag within a slice (0.25 s).
        assert late < 1.0, f"the blocked receive ended {late:.2f} s after shutdown()"
    finally:
        _closing(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_message_from_another_thread_wakes_a_blocked_receive(backend: str, pure: bool) -> None:
    a, b = _pair(backend)
    try:
        thread, _ = _after(0.1, lambda: a.send("hello", timeout=BOUND))
        assert b.recv(timeout=BOUND) == "hello"
        thread.join(BOUND)
        start = time.monotonic()
        with pytest.raises(ipckit.Empty):
            b.recv(timeout=0.2)
        assert 0.19 <= time.monotonic() - start < BOUND  # the deadline is kept
    finally:
        _closing(a, b)


def _receive_until_closed(ch: ipckit.Channel, ended: list[BaseException]) -> None:
    try:
        ch.recv(timeout=BOUND)
    except (ipckit.HandleClosed, ipckit.ChannelClosed) as exc:
        ended.append(exc)


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_while_threads_sleep_in_a_receive_frees_nothing_under_them(
    backend: str, pure: bool
) -> None:
    # Native waits sleep with the GIL released on the handle's semaphores, segment or
    # descriptors; close() from another thread must wake them before it releases those
    # (a use-after-free here is a crash, not a failed assertion).
    for trial in range(15):
        a, b = _pair(backend)
        ended: list[BaseException] = []
        threads = [
            threading.Thread(target=_receive_until_closed, args=(b, ended)) for _ in range(3)
        ]
        for t in threads:
            t.start()
        time.sleep(0.002 * (trial % 5))
        b.close()
        for t in threads:
            t.join(BOUND)
        assert not any(t.is_alive() for t in threads)
        assert len(ended) == 3, ended
        a.close()
        a.unlink()
