"""One critical section: interrupts at its edges, and the receive lock a view borrows.

Every take / dirty mark / give-back of a shm:// lock goes through
``ShmTransport._locked``; a ``recv_view`` lends the held receive lock to the
message it lends, recorded on the lock (``lock.lent``) inside that section. These
tests raise ``KeyboardInterrupt`` where a signal handler could (right after a
call returns, at a function's entry) and check that the lock is never left held
with nobody to give it back, and that no message is lost or taken twice.
"""

from __future__ import annotations

import ast
import gc
import inspect
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ipckit
from ipckit import Empty, _accel
from ipckit._deadline import Deadline
from ipckit.backends import shm
from ipckit.backends.shm import remove
from ipckit.testing import unique_name

PATHS = ["pure", "native"] if _accel.built() else ["pure"]
Trio = tuple[ipckit.Channel, ipckit.Channel, ipckit.Channel]


@pytest.fixture(params=PATHS)
def trio(request: pytest.FixtureRequest) -> Iterator[Trio]:
    """A sender ``a``, the receiver under test ``b`` and a bystander receiver ``c``."""
    before = _accel.core is None
    _accel.set_pure(request.param == "pure")
    name = unique_name("crit")
    try:
        a = ipckit.open(f"shm://{name}", create=True, capacity="8KiB")
        b = ipckit.open(f"shm://{name}")
        c = ipckit.open(f"shm://{name}")
    finally:
        _accel.set_pure(before)
    yield a, b, c
    for ch in (a, b, c):
        ch.close()
    remove(name)


def _transport(ch: ipckit.Channel) -> Any:
    return ch._transport


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, work: str) -> None:
    """Make the critical-section work ``shm.<work>`` raise KeyboardInterrupt once it returns.

    As a signal handler could, right after the call returns and before the
    section's ``finally``.
    """
    original = getattr(shm, work)

    def wrapped(transport: Any, arg: Any) -> Any:
        monkeypatch.setattr(shm, work, original)
        original(transport, arg)
        raise KeyboardInterrupt

    monkeypatch.setattr(shm, work, wrapped)


def _interrupted(call: Callable[[], object]) -> None:
    try:
        call()
    except KeyboardInterrupt:
        pass
    else:
        pytest.fail("the injected interrupt did not reach the caller")
    gc.collect()  # the traceback's frames held the views; they are gone now


def test_an_interrupt_after_the_borrow_keeps_the_lock_lent_and_the_message_queued(
    trio: Trio, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = trio
    a.send_bytes(b"m1")
    a.send_bytes(b"m2")
    tr = _transport(b)
    _interrupt_after(monkeypatch, "_BORROW")
    _interrupted(lambda: b.recv_view(timeout=5))
    assert tr._recv_lock.lent is not None, "the lend is recorded, not lost"
    with pytest.raises(Empty):
        c.recv_bytes(timeout=0.2)  # the receive lock is still the lend's
    # The next receive of this handle drops the lend nobody holds: the message stays.
    assert b.recv_bytes(timeout=5) == b"m1"
    assert tr._recv_lock.lent is None
    assert c.recv_bytes(timeout=5) == b"m2"
    assert a.stats().extra["messages_out"] == 2


def test_close_gives_back_a_lend_nobody_holds(trio: Trio, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = trio
    a.send_bytes(b"m1")
    _interrupt_after(monkeypatch, "_BORROW")
    _interrupted(lambda: b.recv_view(timeout=5))
    b.close()
    assert c.recv_bytes(timeout=5) == b"m1"


def test_an_out_of_band_lend_nobody_holds_keeps_its_block(
    trio: Trio, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = trio
    big = os.urandom(20_000)  # more than half the 8 KiB ring: out of band
    a.send_bytes(big)
    _interrupt_after(monkeypatch, "_BORROW")
    _interrupted(lambda: b.recv_view(timeout=5))
    b.close()
    with c.recv_view(timeout=5) as view:
        assert view.data == big


class _InterruptOnce:
    """Stands in for ``sys`` in shm.py: its next getrefcount call is cut by Ctrl-C."""

    def __init__(self) -> None:
        self.armed = True

    def getrefcount(self, obj: object) -> int:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt  # as a handler would, right after the call returned
        return sys.getrefcount(obj) - 1  # not counting this frame's own reference


def test_an_interrupt_inside_the_give_back_leaves_it_to_be_finished_once(
    trio: Trio, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = trio
    a.send_bytes(b"m1")
    a.send_bytes(b"m2")
    view = b.recv_view(timeout=5)
    tr = _transport(b)
    fake = _InterruptOnce()
    monkeypatch.setattr(shm, "sys", fake)  # views released, the record not taken yet
    _interrupted(view.release)
    assert not fake.armed
    assert tr._recv_lock.lent is not None
    with pytest.raises(Empty):
        c.recv_bytes(timeout=0.2)
    view.release()  # again: finishes the give-back
    assert tr._recv_lock.lent is None
    assert c.recv_bytes(timeout=5) == b"m2", "m1 was taken exactly once"
    with pytest.raises(Empty):
        b.recv_bytes(timeout=0)


def test_a_stale_give_back_does_not_release_another_section(trio: Trio) -> None:
    a, b, _c = trio
    a.send_bytes(b"m1")
    tr = _transport(b)
    frame, give_back, _ = tr.recv_view(Deadline(5))
    frame.payload.release()
    give_back(False)
    lock = tr._recv_lock
    assert lock.try_acquire()  # held by this handle, as another section would hold it
    try:
        give_back(False)  # given back already: must not touch the lock
        assert lock.held()
    finally:
        lock.release()


def test_a_lend_whose_view_lives_refuses_the_next_receive(trio: Trio) -> None:
    a, b, _c = trio
    a.send_bytes(b"m1")
    tr = _transport(b)
    frame, _give_back, in_place = tr.recv_view(Deadline(5))
    assert in_place
    kept = memoryview(frame.payload)[:2]
    with pytest.raises(BufferError, match="still alive"):
        tr.recv_frames(1, Deadline(1))
    assert bytes(kept) == b"m1"[:2]
    kept.release()
    del frame, kept
    assert [bytes(f.payload) for f in tr.recv_frames(1, Deadline(5))] == [b"m1"]


def test_a_forked_child_does_not_inherit_the_parents_lend(trio: Trio) -> None:
    a, b, _c = trio
    a.send_bytes(b"m1")
    with b.recv_view(timeout=5) as view:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            os._exit(0 if _transport(b)._recv_lock.lent is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert bytes(view.data) == b"m1"


def _uses(func: ast.FunctionDef, attr: str) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == attr for n in ast.walk(func))


def test_every_lock_step_and_wake_goes_through_one_helper() -> None:
    """Taking, marking and giving back a lock, and waking waiters, each live in one place."""
    steps = ["give", "take_steps", "try_acquire", "acquire", "ring_if_below"]
    owners: dict[str, set[str]] = {step: set() for step in steps}
    for node in ast.walk(ast.parse(inspect.getsource(shm))):
        if isinstance(node, ast.FunctionDef):
            for step in steps:
                if _uses(node, step):
                    owners[step].add(node.name)
    assert owners["give"] == owners["take_steps"] == owners["acquire"] == {"_locked"}
    assert owners["try_acquire"] == set()
    assert owners["ring_if_below"] == {"_wake"}


def _die_holding_a_view(url: str) -> None:
    ch = ipckit.open(url)
    view = ch.recv_view(timeout=10)  # lent: the receive lock stays held
    os.kill(os.getpid(), signal.SIGKILL)
    view.release()  # pragma: no cover - never reached


def test_a_receiver_killed_holding_a_view_leaves_the_message_to_another(trio: Trio) -> None:
    a, _b, c = trio
    a.send_bytes(b"m1")
    proc = multiprocessing.get_context("fork").Process(target=_die_holding_a_view, args=(a.url,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert c.recv_bytes(timeout=15) == b"m1", "the lent message was not taken by the dead"
    assert a.stats().extra["recoveries"] == 1
