"""Issue 8, items 3 and 10: passing ends to other processes, and forking mid-call."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time

import pytest

import ipckit
from tests.streams._children import receive_end

BOUND = 30


@pytest.fixture(scope="module", autouse=True)
def _resource_sharer() -> None:
    """multiprocessing's resource sharer keeps one listening socket for the process's life."""
    from multiprocessing import resource_sharer

    sharer = resource_sharer._resource_sharer  # type: ignore[attr-defined]
    ident = sharer.register(lambda conn, pid: None, lambda: None)
    with sharer.get_connection(ident):
        pass


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("duplex", [True, False])
def test_pickling_in_a_loop_leaks_nothing(duplex: bool) -> None:
    before = _fds()
    a, b = ipckit.pipe(duplex=duplex)
    for _ in range(50):
        pickle.dumps(a)
        pickle.dumps(b)
    a.close()
    b.close()
    assert _fds() == before


def test_unpickled_ends_work_and_close_cleanly() -> None:
    a, b = ipckit.pipe()
    with a, b:
        for i in range(20):
            with pickle.loads(pickle.dumps(b)) as copy:
                a.send(i, timeout=BOUND)
                assert copy.recv(timeout=BOUND) == i


def test_unpickling_after_the_sender_closed_is_a_clear_error() -> None:
    a, b = ipckit.pipe()
    data = pickle.dumps(b)
    b.close()
    a.close()
    with pytest.raises(ipckit.ChannelClosed, match="keep the sender's handle open"):
        pickle.loads(data)


def _double(ch: ipckit.Channel) -> None:
    with ch:
        ch.send(ch.recv(timeout=BOUND) * 2, timeout=BOUND)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_ends_passed_to_children_leak_nothing(method: str) -> None:
    # The suite's leak fixture checks the descriptors (the first spawn also starts
    # multiprocessing's resource tracker, whose descriptor it knows to ignore).
    ctx = multiprocessing.get_context(method)
    for i in range(5):
        a, b = ipckit.pipe()
        with a:
            proc = ctx.Process(target=_double, args=(b,))
            proc.start()
            b.close()
            a.send(i, timeout=BOUND)
            assert a.recv(timeout=BOUND) == 2 * i
            proc.join(BOUND)
            assert proc.exitcode == 0
            proc.close()
            with pytest.raises(ipckit.ChannelClosed):
                a.recv(timeout=BOUND)  # the child's close ended the stream: no copy left over


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_end_sent_to_a_running_child(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    conn, child_conn = ctx.Pipe()
    report, child_report = ctx.Pipe()
    proc = ctx.Process(target=receive_end, args=(child_conn, child_report))
    proc.start()
    child_conn.close()
    child_report.close()
    try:
        a, b = ipckit.pipe()
        with a:
            conn.send(b)  # pickled here, fetched by the child
            assert report.poll(BOUND) and report.recv() == "got it"
            b.close()
            a.send(21, timeout=BOUND)
            assert a.recv(timeout=BOUND) == 42
            proc.join(BOUND)
            assert proc.exitcode == 0
            with pytest.raises(ipckit.ChannelClosed):
                a.recv(timeout=BOUND)
    finally:
        conn.close()
        report.close()
        if proc.is_alive():
            proc.kill()
        proc.join(BOUND)


def _child_uses_inherited(ch: ipckit.Channel, go: ipckit.Channel) -> None:
    # The parent's thread still owns the frame it is writing; send once it is out.
    go.recv(timeout=10)
    ch.send_bytes(b"from the child", timeout=10)
    ch.close()
    go.close()


def test_fork_while_another_thread_is_mid_send() -> None:
    a, b = ipckit.pipe()
    go_r, go_w = ipckit.pipe(duplex=False)
    with b, go_r, go_w:
        started = threading.Event()

        def sender() -> None:
            started.set()
            try:
                a.send_bytes(bytes(8 << 20), timeout=BOUND)  # blocks: nobody reads yet
            except ipckit.ChannelClosed:
                pass

        thread = threading.Thread(target=sender)
        thread.start()
        started.wait(BOUND)
        time.sleep(0.1)
        assert a._transport._writing  # type: ignore[attr-defined]
        ctx = multiprocessing.get_context("fork")
        proc = ctx.Process(target=_child_uses_inherited, args=(a, go_r))
        proc.start()
        assert len(b.recv_bytes(timeout=BOUND)) == 8 << 20
        thread.join(BOUND)
        go_w.send("go", timeout=BOUND)
        assert b.recv_bytes(timeout=BOUND) == b"from the child"
        proc.join(BOUND)
        assert proc.exitcode == 0
        a.send_bytes(b"parent still works", timeout=BOUND)
        assert b.recv_bytes(timeout=BOUND) == b"parent still works"
        a.close()


def test_a_forked_child_never_delivers_frames_its_parent_had_buffered() -> None:
    a, b = ipckit.pipe()
    try:
        a.send_many([1, 2, 3], timeout=30)
        assert b.recv(timeout=30) == 1  # 2 and 3 now wait inside b, read with 1
        pid = os.fork()
        if pid == 0:  # pragma: no cover - reports through the exit code
            code = 1
            try:
                try:
                    b.recv(timeout=0)
                    code = 2  # a duplicate of the parent's message
                except ipckit.Empty:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child delivered a parent's frame"
        assert b.recv_many(10, timeout=30) == [2, 3]
    finally:
        a.close()
        b.close()
