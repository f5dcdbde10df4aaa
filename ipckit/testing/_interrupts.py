"""Contract checks for interrupts and forks: no point of a call can leave a lock held.

:func:`interrupt_at` raises ``KeyboardInterrupt`` at the n-th point inside ipckit
where CPython could run a signal handler: right after a call into C returns
(``c_return``) and at the entry of a Python function (``call``). The checks walk n
from 1 until a call completes untouched, so every such point of the call is hit
once, one after another, and after each they check what a real Ctrl-C must leave
behind: no lock held (this thread, another thread and another handle go on), no
torn or mixed message, and a ``close()`` that returns.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType
from typing import Any

from ipckit.channel import Channel
from ipckit.errors import ChannelClosed, Empty

__all__ = [
    "check_fork_during_call",
    "check_interrupt_every_point_recv",
    "check_interrupt_every_point_send",
    "interrupt_at",
]

BOUND = 30.0
#: A call with more points than this is a runaway (each point costs one round).
_MOST_POINTS = 5000


def _in_ipckit(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return (
        isinstance(name, str)
        and name.startswith("ipckit")
        and not name.startswith("ipckit.testing")
    )


@contextmanager
def interrupt_at(n: int) -> Iterator[list[bool]]:
    """Raise KeyboardInterrupt at the ``n``-th handler point inside ipckit code (this thread).

    Yields a one-item list that says whether it fired.
    """
    seen = [0]
    fired = [False]

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if fired[0] or event not in ("call", "c_return") or not _in_ipckit(frame):
            return
        seen[0] += 1
        if seen[0] == n:
            fired[0] = True
            raise KeyboardInterrupt(f"injected at point {n}")

    sys.setprofile(profile)
    try:
        yield fired
    finally:
        sys.setprofile(None)


def _run_interrupted(n: int, call: Callable[[], object]) -> bool:
    """Run ``call`` with an interrupt at point ``n``; True when it was interrupted.

    A MessageView the interrupt kept from its ``with`` block is dropped unreleased:
    it must give its message back when collected, with the ResourceWarning it owes.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            with interrupt_at(n) as fired:
                try:
                    call()
                except KeyboardInterrupt:
                    if not fired[0]:
                        raise
            return fired[0]
        finally:
            gc.collect()


def _closes_promptly(ch: Channel) -> None:
    done = threading.Event()

    def close() -> None:
        ch.close()
        done.set()

    thread = threading.Thread(target=close, daemon=True)
    thread.start()
    if not done.wait(BOUND):
        raise AssertionError(f"close() of {ch.url} hung after an interrupted call")


@contextmanager
def _pair(make_pair: Any) -> Iterator[tuple[Channel, Channel]]:
    """A pair whose ends must close promptly afterwards, however the check went."""
    left, right = make_pair({}, {})
    try:
        yield left, right
    finally:
        _closes_promptly(right)
        _closes_promptly(left)
        left.unlink()


def _drain(b: Channel, expected: set[bytes], last: bytes) -> list[bytes]:
    """What b receives up to and including ``last``; each must be one of ``expected``.

    Anything left over from an earlier round shows up as unexpected in the next.
    """
    got: list[bytes] = []
    while True:
        data = b.recv_bytes(timeout=BOUND)
        if data not in expected:
            raise AssertionError(f"a torn, mixed or repeated message arrived: {data[:40]!r}...")
        got.append(data)
        if data == last:
            return got


def check_interrupt_every_point_send(make_pair: Any, start_method: str) -> None:
    """Ctrl-C at every point of send_bytes/send_many: sent whole or not at all, no lock held."""
    with _pair(make_pair) as (left, right):
        n = 1
        while n < _MOST_POINTS:
            msg = b"%06d" % n * 40
            batch = [msg + b"b%d" % i for i in range(3)]
            # send_many encodes its objects: recv_bytes hands back the encoded payloads.
            encoded = [bytes(left._serializer.dumps(m)) for m in batch]
            if n % 2:
                interrupted = _run_interrupted(n, partial(left.send_bytes, msg, timeout=BOUND))
            else:
                interrupted = _run_interrupted(n, partial(left.send_many, batch, timeout=BOUND))
            after = b"after%06d" % n
            # The same thread goes on: no lock of this handle is left held.
            left.send_bytes(after, timeout=BOUND)
            got = _drain(right, {msg, after, *encoded}, after)
            if after not in got:
                raise AssertionError(f"the message sent after the interrupt at {n} is missing")
            if got.count(after) != 1 or any(got.count(m) > 1 for m in got):
                raise AssertionError(f"a message arrived twice after the interrupt at {n}")
            if not interrupted:
                return  # every point of the call has been hit
            n += 1
        raise AssertionError(f"send has more than {_MOST_POINTS} interrupt points")


def check_interrupt_every_point_recv(make_pair: Any, start_method: str) -> None:
    """Ctrl-C at every point of recv_bytes/recv_many/recv_view: no lock held, nothing torn."""
    with _pair(make_pair) as (left, right):
        n = 1
        while n < _MOST_POINTS:
            msg = b"%06d" % n * 40
            left.send_bytes(msg, timeout=BOUND)
            kind = n % 3
            if kind == 0:
                interrupted = _run_interrupted(n, lambda: right.recv_bytes(timeout=BOUND))
            elif kind == 1:
                interrupted = _run_interrupted(n, lambda: right.recv_many(10, timeout=BOUND))
            else:

                def view() -> None:
                    with right.recv_view(timeout=BOUND) as v:
                        bytes(v.data)

                interrupted = _run_interrupted(n, view)
            # A message taken by the interrupted call may be gone (at most once), but
            # the handle, and another handle of the same channel, go on.
            after = b"after%06d" % n
            left.send_bytes(after, timeout=BOUND)
            got = _drain(right, {msg, after}, after)
            if got.count(after) != 1:
                raise AssertionError(f"after an interrupt at point {n} the receiver is stuck")
            if not interrupted:
                return
            n += 1
        raise AssertionError(f"recv has more than {_MOST_POINTS} interrupt points")


def check_fork_during_call(make_pair: Any, start_method: str) -> None:
    """A child forked while another thread is inside recv can use and close its handles."""
    with _pair(make_pair) as (left, right):
        stop = b"stop"
        inside = threading.Event()
        got: list[bytes] = []

        def blocked() -> None:
            inside.set()
            while True:
                data = right.recv_bytes(timeout=BOUND)
                got.append(data)
                if data == stop:
                    return

        thread = threading.Thread(target=blocked, daemon=True)
        thread.start()
        inside.wait(BOUND)
        time.sleep(0.05)  # let it park inside recv, holding the handle's receive lock
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                signal.alarm(int(BOUND))
                try:
                    right.poll(0)
                    right.recv_bytes(timeout=0)
                except Empty:
                    pass
                except ChannelClosed:
                    pass
                left.send_bytes(b"from the child", timeout=BOUND)
                right.close()
                left.close()
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + BOUND
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("a child forked during a recv hung on its inherited handles")
            time.sleep(0.01)
        if os.waitstatus_to_exitcode(status) != 0:
            raise AssertionError(
                f"a child forked during a recv failed on its handles (exit {status})"
            )
        left.send_bytes(stop, timeout=BOUND)
        thread.join(BOUND)
        if thread.is_alive():
            raise AssertionError("the parent's receiving thread never finished")
        if b"from the child" in got:
            got.remove(b"from the child")
        else:
            assert right.recv_bytes(timeout=BOUND) == b"from the child"
