"""Named kill points on every backend: a child goes to a point of the protocol and dies there.

``shm://`` has its own points (tests/shm/_workers.py: holding either lock, mid-copy,
reserved but not committed, after taking, asleep in a receive). Here, the others:

- queues (``mq://``, ``fifo://``): an out-of-band block made and its unit never sent
  (between reserve and commit); a ``send_many`` cut after its first unit (mid-write);
  a unit taken and never used (after taking); asleep in a receive;
- streams (``pipe``, ``unix://``, ``tcp://``): half a frame written (mid-frame);
- listeners (``unix://``, ``tcp://``): half a hello sent (mid-handshake).

Each trial returns how long the survivors took to go on after the death, and checks
that they lost nothing they should not have.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import ipckit
from ipckit import _accel
from ipckit._framing import encode_header
from ipckit.serializers import RAW_ID
from ipckit.testing import unique_name

__all__ = ["QUEUE_POINTS", "STREAM_POINTS", "trial"]

QUEUE_POINTS = ["block_made_unit_unsent", "mid_send_many", "after_taking", "sleeping_in_recv"]
STREAM_POINTS = ["mid_frame", "mid_handshake"]
_CTX: Any = multiprocessing.get_context("fork")
_BOUND = 30.0
_MANY_SIZE = {"fifo": 3000, "mq": 5000}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def _queue_child(url: str, point: str, ready: str) -> None:
    # The pure path: the points patch its one write call (the C core writes in C).
    _accel.set_pure(True)
    ch = ipckit.open(url)
    t: Any = ch._transport
    if point == "block_made_unit_unsent":
        t._try_write = lambda *_a, **_k: _die()  # the block exists; its reference never goes
        ch.send_bytes(os.urandom(64 << 10))
    elif point == "mid_send_many":
        real = t._try_write
        calls = [0]

        def once_then_die(*args: Any, **kwargs: Any) -> bool:
            calls[0] += 1
            if calls[0] > 1:
                _die()
            return bool(real(*args, **kwargs))

        t._try_write = once_then_die
        # Frames too big for two per unit (a 4 KiB FIFO packet, an 8 KiB mq message) and
        # small enough to stay inline: the first unit is one whole frame.
        ch.send_many([bytes([i]) * _MANY_SIZE[url.partition(":")[0]] for i in range(4)])
    elif point == "after_taking":
        ch.recv_bytes(timeout=_BOUND)
    elif point == "sleeping_in_recv":
        Path(ready).touch()  # just before it waits
        ch.recv_bytes(timeout=_BOUND)  # nothing comes: the parent kills it as it waits
    _die()


def _queue_trial(backend: str, point: str, tmp: Path) -> float:
    name = unique_name("kp")
    url = f"fifo://{tmp}/{name}" if backend == "fifo" else f"{backend}://{name}"
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b:
        try:
            return _queue_kill(a, b, url, point, tmp)
        finally:
            a.unlink()


def _queue_kill(a: ipckit.Channel, b: ipckit.Channel, url: str, point: str, tmp: Path) -> float:
    a.send_bytes(b"before")
    if point == "sleeping_in_recv":
        b.recv_bytes(timeout=_BOUND)  # the child must find the queue empty
    ready = tmp / f"{url.rpartition('/')[2]}.ready"
    proc = _CTX.Process(target=_queue_child, args=(url, point, str(ready)))
    proc.start()
    try:
        if point == "sleeping_in_recv":
            end = time.monotonic() + _BOUND
            while not ready.exists():
                assert time.monotonic() < end, "the child never reached its receive"
                time.sleep(0.001)
            time.sleep(0.05)  # inside the wait by now
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(_BOUND)
        assert proc.exitcode == -signal.SIGKILL, proc.exitcode
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(_BOUND)
    start = time.monotonic()
    a.send_bytes(b"after")
    got = []
    while not got or got[-1] != b"after":
        got.append(b.recv(timeout=_BOUND))
    took = time.monotonic() - start
    expected = {
        "block_made_unit_unsent": [b"before", b"after"],
        "mid_send_many": [b"before", b"\x00" * _MANY_SIZE[url.partition(":")[0]], b"after"],
        "after_taking": [b"after"],  # the child took "before": it is gone with it
        "sleeping_in_recv": [b"after"],
    }[point]
    assert got == expected, (point, [g[:8] for g in got])
    return took


def _stream_child_mid_frame(ch: ipckit.Channel) -> None:
    ch.send_bytes(b"whole")
    fd = ch._transport.write_fd()  # type: ignore[attr-defined]
    frame = encode_header(RAW_ID, 0, 1000) + b"h" * 1000
    os.write(fd, frame[:500])  # half a frame, then death
    _die()


def _mid_frame_trial(backend: str, tmp: Path) -> float:
    if backend == "pipe":
        a, b = ipckit.pipe()
    else:
        url = f"unix://{tmp}/{unique_name('kp')}.sock" if backend == "unix" else "tcp://127.0.0.1:0"
        lst = ipckit.listen(url)
        with lst:
            a = ipckit.connect(lst.url, timeout=_BOUND)
            b = lst.accept(timeout=_BOUND)
    with a, b:
        proc = _CTX.Process(target=_stream_child_mid_frame, args=(a,))
        proc.start()
        a.close()  # the child holds the only sending end now
        proc.join(_BOUND)
        assert proc.exitcode == -signal.SIGKILL
        start = time.monotonic()
        assert b.recv_bytes(timeout=_BOUND) == b"whole"
        with pytest.raises(ipckit.ChannelClosed, match="middle of a message"):
            b.recv_bytes(timeout=_BOUND)  # every whole message, then the cut is reported
        return time.monotonic() - start


def _handshake_child(address: Any, family: int) -> None:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.connect(address)
    # Half a hello, then death. (Not waiting for the server's: a listener in a process
    # that forks pauses its acceptor until it calls accept() again.)
    s.sendall(b"IKS")
    _die()


def _mid_handshake_trial(backend: str, tmp: Path) -> float:
    url = f"unix://{tmp}/{unique_name('kp')}.sock" if backend == "unix" else "tcp://127.0.0.1:0"
    with ipckit.listen(url) as lst:
        if backend == "unix":
            address: Any = lst.url.removeprefix("unix://")
            family = socket.AF_UNIX
        else:
            host, _, port = lst.url.removeprefix("tcp://").rpartition(":")
            address, family = (host, int(port)), socket.AF_INET
        proc = _CTX.Process(target=_handshake_child, args=(address, family))
        proc.start()
        proc.join(_BOUND)
        assert proc.exitcode == -signal.SIGKILL
        start = time.monotonic()
        # The fork paused the acceptor (the child might have been meant to accept); an
        # accept() here resumes it, as a server's accept loop would.
        with pytest.raises(ipckit.Timeout):
            lst.accept(timeout=0)
        with ipckit.connect(lst.url, timeout=_BOUND) as c, lst.accept(timeout=_BOUND) as s:
            c.send("after")
            assert s.recv(timeout=_BOUND) == "after"
        return time.monotonic() - start


def trial(backend: str, point: str, tmp: Path) -> float:
    """One kill at ``point`` on ``backend``; the survivors' recovery time in seconds."""
    if point in QUEUE_POINTS:
        return _queue_trial(backend, point, tmp)
    if point == "mid_frame":
        return _mid_frame_trial(backend, tmp)
    return _mid_handshake_trial(backend, tmp)
