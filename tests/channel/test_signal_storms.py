"""A handled signal every few milliseconds during blocking calls, on every backend.

The calls must finish or time out on time and never raise InterruptedError or a
raw posix_ipc.SignalError (EINTR is a spurious wake-up, not an error).
"""

from __future__ import annotations

import time

import pytest

import ipckit
from tests._signals import signal_storm
from tests.conformance.test_contract import FACTORIES

BOUND = 30


@pytest.mark.parametrize("backend", sorted(FACTORIES))
def test_a_blocked_recv_keeps_its_deadline_under_signals(backend: str) -> None:
    a, b = FACTORIES[backend]({}, {})
    try:
        with signal_storm() as hits:
            start = time.monotonic()
            with pytest.raises(ipckit.Empty):
                b.recv(timeout=0.3)
            elapsed = time.monotonic() - start
        assert hits[0] > 0, "no signal arrived during the wait"
        assert 0.29 <= elapsed < BOUND, f"the deadline was not kept ({elapsed:.3f}s for 0.3s)"
        a.send("after", timeout=BOUND)
        assert b.recv(timeout=BOUND) == "after"
    finally:
        b.close()
        a.close()
        a.unlink()


# tcp:// may take part of a frame when its buffer is nearly full; finishing it is
# tested on its own below.
@pytest.mark.parametrize("backend", sorted(set(FACTORIES) - {"tcp"}))
def test_a_blocked_send_on_a_full_channel_keeps_its_deadline_under_signals(backend: str) -> None:
    a, b = FACTORIES[backend]({}, {})
    try:
        chunk = b"x" * 1000
        sent = 0
        while True:
            try:
                a.send_bytes(chunk, timeout=0)
                sent += 1
            except ipckit.Full:
                break
        with signal_storm() as hits:
            start = time.monotonic()
            with pytest.raises(ipckit.Full):
                a.send_bytes(chunk, timeout=0.3)
            elapsed = time.monotonic() - start
        assert hits[0] > 0
        assert 0.29 <= elapsed < BOUND, f"the deadline was not kept ({elapsed:.3f}s for 0.3s)"
        for _ in range(sent):
            assert b.recv_bytes(timeout=BOUND) == chunk
    finally:
        b.close()
        a.close()
        a.unlink()


def test_a_lock_wait_on_shm_survives_signals() -> None:
    a, b = FACTORIES["shm"]({}, {})
    lock = b._transport._recv_lock  # type: ignore[attr-defined]
    try:
        assert lock.try_acquire()  # b holds the receive lock: a's recv must wait for it
        with signal_storm() as hits:
            start = time.monotonic()
            with pytest.raises(ipckit.Empty):
                a.recv(timeout=0.3)
            elapsed = time.monotonic() - start
        assert hits[0] > 0
        assert 0.29 <= elapsed < BOUND
    finally:
        lock.release()
        b.close()
        a.close()
        a.unlink()


def test_a_frame_the_peer_stops_reading_is_abandoned_not_waited_for_ever() -> None:
    from ipckit.backends._stream import MID_FRAME_GRACE

    a, b = FACTORIES["tcp"]({}, {})
    try:
        chunk = b"y" * (32 << 20)  # far bigger than the socket buffers: it starts, then stalls
        a.send_bytes(b"whole", timeout=BOUND)
        start = time.monotonic()
        with pytest.raises(ipckit.Full, match="read nothing"):
            a.send_bytes(chunk, timeout=0.2)
        elapsed = time.monotonic() - start
        assert 0.2 <= elapsed < 0.2 + MID_FRAME_GRACE + 5, f"gave up after {elapsed:.1f}s"
        with pytest.raises(ipckit.ChannelClosed, match="stopped mid-frame"):
            a.send_bytes(b"more", timeout=BOUND)
        # The peer gets the whole message, then the end: never a torn one.
        assert b.recv_bytes(timeout=BOUND) == b"whole"
        with pytest.raises(ipckit.ChannelClosed):
            b.recv_bytes(timeout=BOUND)
    finally:
        b.close()
        a.close()
