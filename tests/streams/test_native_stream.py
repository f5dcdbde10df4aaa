"""The C core's stream paths beside the pure ones, in one handle and across processes.

A stream handle's fast calls and its pure path share one state (the
transport's fields, its decoder and its ``_ready`` frames), so any mix of them
keeps order and loses nothing; a corrupt frame ends the stream the same way on
both; a native end talks to a pure one in another process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

import msgpack
import pytest

import ipckit
from ipckit import _accel
from tests.streams._children import PAIRS

BOUND = 30


@pytest.mark.parametrize("backend", sorted(PAIRS))
def test_every_mix_of_calls_keeps_order(backend: str, pure: bool) -> None:
    a, b = PAIRS[backend]()
    with a, b:
        # The fixture picked the path (TCP without an authkey checks every frame for
        # pickle in Python, so it has no fast path).
        assert (a._core is None) == (pure or backend == "tcp")
        # Small messages take the fast path where there is one; 6000 bytes are over a
        # whole write and always take the pure path: the two interleave on one stream.
        sent = [bytes([i % 251]) * (6000 if i % 7 == 3 else 1 + i % 60) for i in range(400)]
        for i, msg in enumerate(sent):
            if i % 5 == 0:
                a.send_many([msg])
            elif i % 5 == 1:
                a.send(msg, timeout=BOUND)
            else:
                a.send_bytes(msg)
        # recv/recv_many give the objects back; recv_bytes/recv_view the raw payloads,
        # which for send/send_many are the msgpack encoding.
        raw = [msgpack.packb(m) if i % 5 < 2 else m for i, m in enumerate(sent)]
        got: list[bytes] = []
        i = 0
        while len(got) < len(sent):
            i += 1
            at = len(got)
            if i % 4 == 0:
                with b.recv_view(timeout=BOUND) as view:  # always the pure path
                    assert bytes(view.data) == raw[at]
            elif i % 4 == 1:
                batch = b.recv_many(3, timeout=BOUND)
                assert batch == sent[at : at + len(batch)]
                got.extend(batch)
                continue
            elif i % 4 == 2:
                assert b.recv(timeout=BOUND) == sent[at]
            else:
                assert b.recv_bytes(timeout=BOUND) == raw[at]
            got.append(sent[at])
        assert not b.poll(0)
        stats = b.stats()
        assert stats.messages_received == len(sent)
        assert a.stats().messages_sent == len(sent)
        assert a.stats().bytes_sent == sum(len(m) for m in raw)  # payload bytes


@pytest.mark.parametrize("backend", ["pipe", "unix"])
def test_a_corrupt_frame_ends_the_stream_after_the_whole_ones(backend: str, pure: bool) -> None:
    a, b = PAIRS[backend]()
    with a, b:
        a.send_bytes(b"one")
        a.send_bytes(b"two")
        # Garbage straight onto the stream, behind the two whole frames.
        fd = a._transport.write_fd()
        assert fd is not None
        os.write(fd, b"this is no ipckit frame")
        a.send_bytes(b"never seen")
        assert b.poll(BOUND)
        assert b.recv_bytes(timeout=BOUND) == b"one"
        assert b.recv_bytes(timeout=BOUND) == b"two"
        for _ in range(2):
            with pytest.raises(ipckit.ProtocolError, match="magic"):
                b.recv_bytes(timeout=BOUND)
        assert b.poll(0)  # a broken stream is "ready": a receive does not wait, it raises


def test_a_frame_the_kernel_tore_ends_the_stream_cleanly(pure: bool) -> None:
    # The C core sends only writes the kernel takes whole; if one were torn anyway it
    # sets _wtorn, as an interrupted pure write does. The next send must then end the
    # stream (the peer sees the whole messages, then the end) and say why.
    a, b = ipckit.pipe()
    with a, b:
        a.send_bytes(b"whole")
        a._transport._wtorn = True
        with pytest.raises(ipckit.ChannelClosed, match="stopped mid-frame"):
            a.send_bytes(b"after")
        assert b.recv_bytes(timeout=BOUND) == b"whole"
        with pytest.raises(ipckit.ChannelClosed):
            b.recv_bytes(timeout=BOUND)


def test_big_frames_and_small_ones_interleave(pure: bool) -> None:
    a, b = ipckit.pipe()
    with a, b:
        sizes = [10, 70_000, 20, 300_000, 1, 65_536, 0, 5]
        done = []

        def reader() -> None:
            for _ in sizes:
                done.append(b.recv_bytes(timeout=BOUND))

        t = threading.Thread(target=reader)
        t.start()
        for n in sizes:
            a.send_bytes(bytes([n % 256]) * n, timeout=BOUND)
        t.join(BOUND)
        assert [len(d) for d in done] == sizes
        assert all(type(d) is bytes for d in done)


def _echo(url: str, pure: bool) -> None:
    _accel.set_pure(pure)
    with ipckit.connect(url, timeout=BOUND) as ch:
        assert (ch._core is None) == pure
        while True:
            batch = ch.recv_many(50, timeout=BOUND)
            if batch[-1] is None:
                ch.send_many(batch[:-1], timeout=BOUND)
                return
            ch.send_many(batch, timeout=BOUND)


@pytest.mark.skipif(not _accel.built(), reason="the C core is not built")
@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("child_pure", [True, False], ids=["pure-child", "native-child"])
def test_a_native_end_and_a_pure_end_in_two_processes(method: str, child_pure: bool) -> None:
    from ipckit.testing import unique_name

    was = _accel.core is None
    _accel.set_pure(not child_pure)  # the parent's end takes the other path
    try:
        with ipckit.listen(f"unix://@{unique_name('mix')}") as lst:
            child = multiprocessing.get_context(method).Process(
                target=_echo, args=(lst.url, child_pure)
            )
            child.start()
            try:
                with lst.accept(timeout=BOUND) as ch:
                    assert (ch._core is None) == (not child_pure)
                    msgs: list[Any] = [{"i": i, "b": bytes(i % 300)} for i in range(2000)]
                    got: list[Any] = []
                    for i in range(0, len(msgs), 100):
                        ch.send_many(msgs[i : i + 100], timeout=BOUND)
                        while len(got) < i + 100:
                            got.extend(ch.recv_many(100, timeout=BOUND))
                    ch.send(None, timeout=BOUND)
                    assert got == msgs
                    with pytest.raises(ipckit.ChannelClosed):
                        ch.recv(timeout=BOUND)  # the child ended; nothing extra came
            finally:
                child.join(BOUND)
                if child.is_alive():
                    child.kill()
                    child.join()
            assert child.exitcode == 0
    finally:
        _accel.set_pure(was)
