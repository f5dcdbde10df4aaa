"""Signals arriving during blocking calls: retried with the deadline kept, never an error."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import ipckit
from ipckit.testing import unique_name
from tests.conformance.factories_messaging import FACTORIES

BOUND = 30


@contextmanager
def _signal_storm(period: float = 0.01) -> Iterator[list[int]]:
    """Deliver SIGUSR1 (handled, not fatal) to the main thread until the block ends."""
    hits = [0]

    def handler(signum: int, frame: object) -> None:
        hits[0] += 1

    previous = signal.signal(signal.SIGUSR1, handler)
    stop = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    def storm() -> None:
        while not stop.wait(period):
            signal.pthread_kill(main, signal.SIGUSR1)

    thread = threading.Thread(target=storm, daemon=True)
    thread.start()
    try:
        yield hits
    finally:
        stop.set()
        thread.join(BOUND)
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("backend", ["fifo", "mq", "unix", "tcp"])
def test_recv_timeout_survives_signals(backend: str) -> None:
    a, b = FACTORIES[backend]()
    try:
        with _signal_storm() as hits:
            start = time.monotonic()
            with pytest.raises(ipckit.Empty):
                b.recv(timeout=0.3)
            elapsed = time.monotonic() - start
        assert hits[0] > 0, "no signal arrived during the wait"
        assert elapsed >= 0.29, f"the deadline was cut short ({elapsed:.3f}s for 0.3s)"
        a.send("after", timeout=BOUND)
        assert b.recv(timeout=BOUND) == "after"
    finally:
        b.close()
        a.close()
        a.unlink()


def test_send_on_a_full_fifo_survives_signals() -> None:
    url = "fifo://" + os.path.join(tempfile.gettempdir(), unique_name("fifo"))
    with ipckit.open(url, create=True, pipe_size="64KiB") as q:
        while True:
            try:
                q.send_bytes(b"x", timeout=0)
            except ipckit.Full:
                break
        with _signal_storm() as hits:
            start = time.monotonic()
            with pytest.raises(ipckit.Full):
                q.send_bytes(b"y", timeout=0.3)
            elapsed = time.monotonic() - start
        assert hits[0] > 0
        assert elapsed >= 0.29
        q.unlink()
