"""Issue 8, items 8, 13a and 13c: fileno() readiness and a poll() that never reads."""

from __future__ import annotations

import multiprocessing
import os
import select
import selectors
import time

import pytest

import ipckit
from ipckit._framing import HEADER_SIZE, encode_header
from ipckit.serializers import RAW_ID
from tests.streams._children import PAIRS, poll_and_exit, select_loop

BOUND = 30


def _readable(fd: int, timeout: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


@pytest.mark.parametrize("backend", sorted(PAIRS))
def test_selector_loop_gets_every_message_of_a_burst(backend: str) -> None:
    a, b = PAIRS[backend]()
    with a, b, selectors.DefaultSelector() as sel:
        sel.register(b.fileno(), selectors.EVENT_READ)
        for burst in range(3):
            a.send_many(list(range(20)), timeout=BOUND)
            got = []
            deadline = time.monotonic() + BOUND
            while len(got) < 20 and time.monotonic() < deadline:
                for _ in sel.select(timeout=1):
                    got.append(b.recv(timeout=0))  # one receive per readable event
            assert got == list(range(20)), f"burst {burst}"
            assert not sel.select(timeout=0), "readable with nothing left to receive"


@pytest.mark.parametrize("backend", sorted(PAIRS))
def test_fileno_is_readable_at_end_of_stream(backend: str) -> None:
    a, b = PAIRS[backend]()
    with a, b:
        fd = b.fileno()
        a.send_many(["x", "y"], timeout=BOUND)
        a.shutdown()
        assert _readable(fd, BOUND)
        assert b.recv(timeout=0) == "x"
        assert _readable(fd)
        assert b.recv(timeout=0) == "y"
        assert _readable(fd), "end of stream is something a receive returns at once"
        with pytest.raises(ipckit.ChannelClosed):
            b.recv(timeout=0)
        assert _readable(fd)


def test_fileno_after_an_incomplete_frame_is_read() -> None:
    a, b = ipckit.pipe()
    with a, b:
        fd = b.fileno()
        wfd = a._transport.write_fd()  # type: ignore[attr-defined]
        frame = encode_header(RAW_ID, 0, 1000) + bytes(range(250)) * 4
        os.write(wfd, frame[:300])
        assert _readable(fd, BOUND)
        with pytest.raises(ipckit.Empty):
            b.recv_bytes(timeout=0)
        assert not _readable(fd), "nothing whole is ready and the kernel is empty"
        os.write(wfd, frame[300:] + frame)
        assert _readable(fd, BOUND)
        assert b.recv_bytes(timeout=0) == frame[HEADER_SIZE:]
        assert _readable(fd), "the second frame waits in the handle"
        assert b.recv_bytes(timeout=0) == frame[HEADER_SIZE:]
        assert not _readable(fd)


def test_fileno_in_a_fork_child_is_its_own() -> None:
    a, b = ipckit.pipe()
    with a, b:
        parent_fd = b.fileno()
        a.send("before", timeout=BOUND)
        assert b.recv(timeout=BOUND) == "before"
        proc = multiprocessing.get_context("fork").Process(target=select_loop, args=(b, 20))
        proc.start()
        a.send_many(list(range(20)), timeout=BOUND)
        proc.join(BOUND)
        assert proc.exitcode == 0
        a.send("after", timeout=BOUND)
        assert _readable(parent_fd, BOUND)
        assert b.recv(timeout=0) == "after"
        assert not _readable(parent_fd)


@pytest.mark.parametrize("timeout", [0.0, 5.0])
def test_poll_in_a_fork_child_leaves_the_messages(timeout: float) -> None:
    a, b = ipckit.pipe()
    with a, b:
        ctx = multiprocessing.get_context("fork")
        if timeout:
            proc = ctx.Process(target=poll_and_exit, args=(b, timeout))
            proc.start()
            time.sleep(0.1)  # let the child wait inside poll
            a.send_many(["one", "two"], timeout=BOUND)
        else:
            a.send_many(["one", "two"], timeout=BOUND)
            proc = ctx.Process(target=poll_and_exit, args=(b, timeout))
            proc.start()
        proc.join(BOUND)
        assert proc.exitcode == 0, "the child's poll() did not see the messages"
        assert b.recv(timeout=BOUND) == "one"
        assert b.recv(timeout=BOUND) == "two"


def test_poll_never_consumes_kernel_bytes() -> None:
    a, b = ipckit.pipe()
    with a, b:
        assert b.poll() is False
        a.send("m", timeout=BOUND)
        assert b.poll(BOUND) is True
        assert b._transport._decoder.pending is False  # type: ignore[attr-defined]
        assert not b._transport._ready  # type: ignore[attr-defined]
        assert b.recv(timeout=0) == "m"
        assert b.poll() is False


def test_poll_on_the_send_only_end_raises_like_recv() -> None:
    reader, writer = ipckit.pipe(duplex=False)
    with reader, writer:
        with pytest.raises(ipckit.HandleClosed, match="only sends") as polled:
            writer.poll()
        with pytest.raises(ipckit.HandleClosed, match="only sends") as received:
            writer.recv(timeout=0)
        assert str(polled.value) == str(received.value)
