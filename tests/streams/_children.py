"""Child-process bodies for the stream tests (module level, so spawn can import them)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import ipckit
from ipckit.testing import unique_name
from tests.messaging._workers import payload

#: seq of the message a child tries after its big send was interrupted.
AFTER_SEQ = 1_000_000

Pair = tuple[ipckit.Channel, ipckit.Channel]


def _pipe() -> Pair:
    return ipckit.pipe()


def _sockets(scheme: str) -> Callable[[], Pair]:
    def make() -> Pair:
        url = f"unix://@{unique_name('s')}" if scheme == "unix" else "tcp://127.0.0.1:0"
        with ipckit.listen(url) as lst:
            client = ipckit.connect(lst.url, timeout=30)
            return client, lst.accept(timeout=30)

    return make


#: A connected (client, server) pair of every stream backend.
PAIRS: dict[str, Callable[[], Pair]] = {
    "pipe": _pipe,
    "unix": _sockets("unix"),
    "tcp": _sockets("tcp"),
}


def big_sender(end: Any, url: str | None, report: ipckit.Channel, size: int) -> None:
    """Send big checked payloads until SIGINT; then try one more send and report."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ch = end if url is None else ipckit.connect(url, timeout=30)
    outcome: dict[str, Any] = {"interrupted": False, "sent": 0}
    try:
        report.send("ready", timeout=30)
        seq = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ch.send_bytes(payload(1, seq, size), timeout=30)
            seq += 1
            outcome["sent"] = seq
    except KeyboardInterrupt:
        outcome["interrupted"] = True
    try:
        ch.send_bytes(payload(1, AFTER_SEQ, 1000), timeout=10)
        outcome["after"] = "sent"
    except ipckit.ChannelClosed as exc:
        outcome["after"] = f"{type(exc).__name__}: {exc}"
    report.send(outcome, timeout=30)
    ch.close()
    report.close()


def poll_and_exit(end: ipckit.Channel, timeout: float) -> None:
    """Poll an inherited end, report the answer in the exit code, receive nothing."""
    ready = end.poll(timeout)
    raise SystemExit(0 if ready else 3)


def select_loop(end: ipckit.Channel, count: int) -> None:
    """In a forked child: one recv(timeout=0) per readable event until ``count`` arrived."""
    import selectors

    got = []
    with selectors.DefaultSelector() as sel:
        sel.register(end.fileno(), selectors.EVENT_READ)
        deadline = time.monotonic() + 20
        while len(got) < count and time.monotonic() < deadline:
            for _ in sel.select(timeout=1):
                try:
                    got.append(end.recv(timeout=0))
                except ipckit.Empty:
                    pass
    raise SystemExit(0 if got == list(range(count)) else 4)


def receive_end(conn: Any, report: Any) -> None:
    """Receive a pickled pipe end over a multiprocessing connection and use it."""
    end = conn.recv()
    with end:
        report.send("got it")
        end.send(end.recv(timeout=30) * 2, timeout=30)
    conn.close()
    report.close()
