"""Blocked calls, native and pure: close(), shutdown() and a message reach them at once.

The C core waits with the GIL released (poll(2) on a descriptor, or the shm://
doorbell); these check, on every backend and both paths, what a user sees of a
blocked call: close() from another thread ends the call with HandleClosed; the
peer's shutdown() ends it with ChannelClosed; a message that arrives wakes it.
(Ctrl-C reaching a blocked call is tests/faults/test_blocked_calls.py.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

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
