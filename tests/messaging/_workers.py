"""Child-process bodies for the message-passing fault tests (module level, for spawn)."""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import time
from typing import Any

import ipckit
from ipckit._framing import encode_header

_TAG = struct.Struct("<IIQ")  # writer, sequence, size


def payload(writer: int, seq: int, size: int) -> bytes:
    """A payload whose every byte depends on who sent it, so a torn frame cannot pass."""
    head = _TAG.pack(writer, seq, size)
    seed = hashlib.sha256(head).digest()
    body = (seed * (size // len(seed) + 1))[: size - len(head)]
    return head + body


def check_payload(data: bytes) -> tuple[int, int]:
    """(writer, seq) of a payload made by :func:`payload`; AssertionError if it is torn."""
    writer, seq, size = _TAG.unpack_from(data, 0)
    assert len(data) == size, f"writer {writer} seq {seq}: {len(data)} bytes, expected {size}"
    assert data == payload(writer, seq, size), f"writer {writer} seq {seq}: bytes changed"
    return writer, seq


def write_frames(url: str, writer: int, sizes: list[int], options: dict[str, Any]) -> None:
    """Attach to a named queue and send one checked payload per size."""
    with ipckit.open(url, **options) as ch:
        for seq, size in enumerate(sizes):
            ch.send_bytes(payload(writer, seq, size), timeout=60)


def read_frames(url: str, report: str, count: int, options: dict[str, Any]) -> None:
    """Receive ``count`` payloads (or until the end), check each, report (writer, seq) pairs."""
    got: list[tuple[int, int]] = []
    with ipckit.open(url, **options) as ch:
        try:
            for _ in range(count):
                got.append(check_payload(ch.recv_bytes(timeout=60)))
        except ipckit.ChannelClosed:
            pass
    with ipckit.open(report) as out:
        out.send(got, timeout=60)


def wait_for_end(url: str, report: str, options: dict[str, Any]) -> None:
    """Block in recv until the queue ends; report what ended it."""
    with ipckit.open(url, **options) as ch, ipckit.open(report) as out:
        out.send("waiting", timeout=30)
        try:
            ch.recv(timeout=60)
            out.send("message", timeout=30)
        except ipckit.ChannelClosed:
            out.send("closed", timeout=30)
        except ipckit.Empty:
            out.send("timeout", timeout=30)


def send_forever_then_die(url: str, size: int, options: dict[str, Any]) -> None:
    """Send big payloads as fast as possible; the parent SIGKILLs this process meanwhile."""
    with ipckit.open(url, **options) as ch:
        seq = 0
        while True:
            ch.send_bytes(payload(9, seq, size), timeout=60)
            seq += 1


def connect_and_die_mid_frame(url: str, options: dict[str, Any]) -> None:
    """Send three whole messages, then half a frame, then SIGKILL this process."""
    ch = ipckit.connect(url, timeout=30, **options)
    for i in range(3):
        ch.send(i, timeout=30)
    os.write(ch._transport.write_fd(), encode_header(1, 0, 1 << 20) + bytes(1000))
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def connect_as_user(url: str, uid: int, report: str) -> None:
    """Drop to ``uid`` and try to connect; report the exception class name or "ok"."""
    os.setgid(uid)
    os.setuid(uid)
    try:
        with ipckit.connect(url, timeout=10):
            outcome = "ok"
    except Exception as exc:
        outcome = type(exc).__name__
    os.write(int(report), outcome.encode())


def send_until_closed(url: str, options: dict[str, Any]) -> None:
    """With SIGPIPE at its default (kill), send until the peer's close shows; exit 0 if so."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ch = ipckit.connect(url, timeout=30, **options)
    try:
        for _ in range(100_000):
            ch.send_bytes(bytes(65536), timeout=30)
    except ipckit.ChannelClosed:
        os._exit(0)
    os._exit(1)
