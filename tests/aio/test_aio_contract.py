"""The async face's contract, on every backend of the conformance suite and on uvloop.

Each check runs both ends in one event loop (so a wait that blocked the loop
instead of parking the task would hang, and the bound fails it), except the
process checks, whose peer is a real child process using the sync API.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from typing import Any

import pytest

import ipckit
from ipckit import aio
from ipckit.testing import _workers
from tests.aio._helpers import BOUND, LOOPS, async_pair, fill, run
from tests.conformance.test_contract import FACTORIES

BACKENDS = list(FACTORIES)
STREAMS = ["pipe", "unix", "tcp"]
# TCP takes part of a write when its buffer is nearly full, so a full TCP connection
# ends inside a frame: it cannot be filled to a frame boundary for the checks that
# need a full channel (the mid-frame checks cover it instead).
FILLABLE = [b for b in BACKENDS if b != "tcp"]

MESSAGES: list[Any] = [0, -1, 2**40, 1.5, "text", b"bytes", [1, [2, 3]], {"k": {"n": None}}, True]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_roundtrip(backend: str, loop: str) -> None:
    """Objects, raw bytes and batches arrive whole and in order."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            for m in MESSAGES:
                await a.send(m)
                assert await b.recv() == m
            await a.send_bytes(b"raw")
            assert await b.recv_bytes() == b"raw"
            await a.send_many(list(range(50)))
            got: list[int] = []
            while len(got) < 50:
                got += await b.recv_many(20)
            assert got == list(range(50))

    run(loop, body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_waiting_receiver_and_sender_share_one_loop(backend: str) -> None:
    """A consumer parked in recv and a producer that fills the channel interleave in one loop."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            count = 3000
            payload = b"p" * 3000

            async def produce() -> None:
                for i in range(count):
                    await a.send([i, payload])

            async def consume() -> list[int]:
                return [(await b.recv())[0] for _ in range(count)]

            _, got = await asyncio.gather(produce(), consume())
            assert got == list(range(count))

    run("asyncio", body)


@pytest.mark.parametrize("backend", [*STREAMS, "shm", "mq", "fifo"])
def test_big_messages_in_one_loop(backend: str) -> None:
    """Messages bigger than any kernel buffer: the sender parks mid-frame, the loop goes on."""

    async def body() -> None:
        big = [os.urandom(1 << 20), os.urandom(3 << 20)]
        with async_pair(backend, {"max_message_size": 8 << 20}, {"max_message_size": 8 << 20}) as (
            a,
            b,
        ):

            async def produce() -> None:
                for m in big:
                    await a.send_bytes(m)
                await a.send("after")

            async def consume() -> list[Any]:
                return [await b.recv_bytes(), await b.recv_bytes(), await b.recv()]

            _, got = await asyncio.gather(produce(), consume())
            assert got == [*big, "after"]
            assert a.stats().messages_sent == 3
            assert a.stats().bytes_sent >= sum(map(len, big))

    run("asyncio", body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_timeouts(backend: str) -> None:
    """timeout=0 never waits, a number waits about that long, poll() says what recv would do."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            with pytest.raises(ipckit.Empty):
                await b.recv(timeout=0)
            started = time.monotonic()
            with pytest.raises(ipckit.Empty, match=r"timeout=0\.1"):
                await b.recv(timeout=0.1)
            waited = time.monotonic() - started
            assert 0.09 <= waited < 5
            assert await b.poll() is False
            assert await b.poll(timeout=0.05) is False
            await a.send("x")
            assert await b.poll(timeout=5) is True
            assert await b.recv(timeout=0) == "x"
            if backend == "tcp":
                return
            fill(a)
            with pytest.raises(ipckit.Full) as info:
                await a.send_many([b"y" * 4000, b"z" * 4000], timeout=0.05)
            assert aio.sent_before(info.value) == info.value.sent == 0
            while await b.poll():
                await b.recv_bytes()

    run("asyncio", body)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelled_recv_loses_nothing(backend: str, loop: str) -> None:
    """A recv cancelled while parked, or in the same turn as the message arrives, takes nothing."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            for i in range(20):
                task = asyncio.create_task(b.recv())
                await asyncio.sleep(0.001 * (i % 3))
                if i % 2:
                    a._ch.send(i)  # arrives while the task is parked, before it runs again
                task.cancel()
                try:
                    got = await task
                except asyncio.CancelledError:
                    got = None
                if got is None and i % 2:
                    assert await b.recv(timeout=BOUND) == i
                elif got is not None:
                    assert got == i
            with pytest.raises(ipckit.Empty):
                await b.recv(timeout=0)
            # asyncio.timeout() around a recv: the same.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await b.recv()
            await a.send("next")
            assert await b.recv(timeout=BOUND) == "next"

    run(loop, body)


@pytest.mark.parametrize("backend", FILLABLE)
def test_cancelled_send_sent_nothing_and_says_so(backend: str) -> None:
    """A send cancelled while the channel is full sent nothing; sent_before() says 0."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            filled = fill(a)
            task = asyncio.create_task(a.send(b"M" * 4000))
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await task
            assert aio.sent_before(info.value) == 0
            with pytest.raises(TimeoutError) as timed_out:
                async with asyncio.timeout(0.05):
                    await a.send_many([b"1" * 4000, b"2" * 4000])
            assert aio.sent_before(timed_out.value) == 0
            drained = []
            while True:
                try:
                    drained.append(await b.recv_bytes(timeout=0.2))
                except ipckit.Empty:
                    break
            assert len(drained) == filled
            assert all(d == b"f" * 4000 for d in drained)
            await a.send("works")
            assert await b.recv(timeout=BOUND) == "works"

    run("asyncio", body)


@pytest.mark.parametrize("backend", STREAMS)
def test_send_cancelled_mid_frame_finishes_the_frame(backend: str) -> None:
    """A cancel after a big frame started: the frame goes out whole, and the caller is told."""

    async def body() -> None:
        big = os.urandom(24 << 20)  # more than any socket buffer ipckit sets (4 MiB, doubled)
        limit = {"max_message_size": 32 << 20}
        with async_pair(backend, limit, limit) as (a, b):
            task = asyncio.create_task(a.send_bytes(big))
            await asyncio.sleep(0.05)  # the kernel took the first part; the rest waits
            task.cancel()
            reader = asyncio.create_task(b.recv_bytes())
            with pytest.raises(asyncio.CancelledError) as info:
                await task
            assert aio.sent_before(info.value) == 1
            assert await reader == big
            await a.send("after")
            assert await b.recv(timeout=BOUND) == "after"

    run("asyncio", body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shutdown_and_close_wake_parked_tasks(backend: str) -> None:
    """shutdown() ends a parked receive with ChannelClosed; aclose() ends one with HandleClosed."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            parked = asyncio.create_task(b.recv())
            await asyncio.sleep(0.02)
            await a.send("last")
            assert await parked == "last"

            async def drain() -> list[Any]:
                return [m async for m in b]

            consumer = asyncio.create_task(drain())
            await asyncio.sleep(0.02)
            await a.send("one")
            a.shutdown()
            assert await asyncio.wait_for(consumer, BOUND) == ["one"]
        with async_pair(backend) as (a, b):
            parked = asyncio.create_task(b.recv())
            await asyncio.sleep(0.02)
            await b.aclose()
            with pytest.raises(ipckit.HandleClosed):
                await asyncio.wait_for(parked, BOUND)
            await b.aclose()  # idempotent
            assert b.closed

    run("asyncio", body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tasks_queue_up_per_direction(backend: str) -> None:
    """Many tasks receiving on one handle each get a different message; none is lost."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            receivers = [asyncio.create_task(b.recv()) for _ in range(10)]
            await asyncio.sleep(0.01)
            await asyncio.gather(*(a.send(i) for i in range(10)))
            assert sorted(await asyncio.gather(*receivers)) == list(range(10))

    run("asyncio", body)


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("backend", ["shm", "shm-pure", "mq", "fifo", "unix", "tcp", "pipe"])
def test_echo_with_a_sync_child_process(backend: str, loop: str, method: str) -> None:
    """A child using the sync API echoes what the loop sends; big messages included."""
    messages: list[Any] = [{"i": i, "s": "x" * (i % 50)} for i in range(200)]
    messages += [b"b" * (1 << 20), "end"]
    make = FACTORIES[backend]
    to_child, child_in = make({}, {})
    child_out, from_child = make({}, {})
    try:
        ctx: Any = multiprocessing.get_context(method)
        proc = ctx.Process(
            target=_workers.echo, args=(child_in, child_out, len(messages)), daemon=True
        )
        proc.start()
        child_in.close()
        child_out.close()

        async def body() -> list[Any]:
            tx, rx = aio.AsyncChannel(to_child), aio.AsyncChannel(from_child)

            async def produce() -> None:
                for m in messages:
                    await tx.send(m)

            async def consume() -> list[Any]:
                return [await rx.recv() for _ in messages]

            _, got = await asyncio.gather(produce(), consume())
            return got

        assert run(loop, body) == messages
        proc.join(BOUND)
        assert proc.exitcode == 0
    finally:
        for ch in (from_child, child_out, child_in, to_child):
            ch.close()
        to_child.unlink()
        from_child.unlink()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_parked_task_is_a_registered_descriptor_not_a_thread(backend: str) -> None:
    """While a receive waits, the loop watches one more descriptor and no thread was started."""
    import threading

    async def body() -> None:
        with async_pair(backend) as (a, b):
            loop = asyncio.get_running_loop()
            watched = set(loop._selector.get_map())  # type: ignore[attr-defined]
            threads = threading.active_count()
            task = asyncio.create_task(b.recv())
            await asyncio.sleep(0.05)
            now = set(loop._selector.get_map())  # type: ignore[attr-defined]
            assert len(now - watched) == 1
            assert threading.active_count() == threads
            await a.send("x")
            assert await task == "x"
            assert set(loop._selector.get_map()) == watched  # type: ignore[attr-defined]

    run("asyncio", body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_poll_and_recv_wait_side_by_side(backend: str) -> None:
    """Two tasks of one handle waiting on one descriptor (poll and recv) both wake."""

    async def body() -> None:
        with async_pair(backend) as (a, b):
            polled = asyncio.create_task(b.poll(timeout=BOUND))
            received = asyncio.create_task(b.recv(timeout=BOUND))
            await asyncio.sleep(0.02)
            await a.send_many(["one", "two"])  # the receive may take the first before poll looks
            assert await received == "one"
            assert await polled is True
            assert await b.recv(timeout=BOUND) == "two"

    run("asyncio", body)


def test_concurrent_accepts_and_close(tmp_path: Any) -> None:
    """Two tasks accepting on one listener each get a client; close() wakes a waiting accept."""

    async def body() -> None:
        lst = aio.listen(f"unix://{tmp_path}/two.sock")
        first = asyncio.create_task(lst.accept(timeout=BOUND))
        second = asyncio.create_task(lst.accept(timeout=BOUND))
        await asyncio.sleep(0.02)
        clients = [await aio.connect(lst.url, timeout=BOUND) for _ in range(2)]
        served = [await first, await second]
        for ch in clients + served:
            await ch.aclose()
        waiting = asyncio.create_task(lst.accept(timeout=BOUND))
        await asyncio.sleep(0.02)
        await lst.aclose()
        with pytest.raises(ipckit.HandleClosed):
            await waiting

    run("asyncio", body)


@pytest.mark.parametrize("backend", STREAMS)
def test_big_sends_from_many_tasks_keep_their_turns(backend: str) -> None:
    """Tasks sending big messages at once on one handle: each goes out whole, in turn order."""

    async def body() -> None:
        limit = {"max_message_size": 32 << 20}
        with async_pair(backend, limit, limit) as (a, b):
            big = [bytes([i]) * (9 << 20) for i in range(4)]
            senders = [asyncio.create_task(a.send_bytes(m)) for m in big]
            got = [await b.recv_bytes() for _ in big]
            await asyncio.gather(*senders)
            assert got == big

    run("asyncio", body)


@pytest.mark.parametrize("backend", STREAMS)
def test_aclose_during_a_big_send(backend: str) -> None:
    """aclose() while another task is mid-frame: the send fails, aclose itself does not."""

    async def body() -> None:
        limit = {"max_message_size": 32 << 20}
        with async_pair(backend, limit, limit) as (a, _):
            task = asyncio.create_task(a.send_bytes(b"z" * (24 << 20)))
            await asyncio.sleep(0.05)  # parked mid-frame: nobody reads
            await a.aclose()
            assert a.closed
            with pytest.raises(ipckit.IPCError):
                await asyncio.wait_for(task, BOUND)

    run("asyncio", body)


@pytest.mark.parametrize("backend", STREAMS)
def test_a_cancel_mid_frame_waits_only_the_grace(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timeout=None, a peer that never reads, a cancel: the frame is abandoned after the grace."""
    monkeypatch.setattr(aio, "MID_FRAME_GRACE", 0.3)

    async def body() -> None:
        limit = {"max_message_size": 32 << 20}
        with async_pair(backend, limit, limit) as (a, _):
            task = asyncio.create_task(a.send_bytes(b"z" * (24 << 20)))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await task
            assert time.monotonic() - started < 5
            assert aio.sent_before(info.value) == 0  # abandoned, not sent
            with pytest.raises(ipckit.ChannelClosed):
                await a.send("after")  # the sending direction ended with the frame

    run("asyncio", body)


@pytest.mark.parametrize("backend", ["shm", "shm-pure", "shm-mixed", "shm-small-ring"])
def test_parked_counts_come_back_to_zero(backend: str) -> None:
    """After waits that ended every way (woken, timed out, cancelled), nobody is counted."""
    from ipckit.backends import _ring as ring

    async def body() -> None:
        with async_pair(backend) as (a, b):
            for i in range(30):
                task = asyncio.create_task(b.recv(timeout=None if i % 3 else 0.01))
                await asyncio.sleep(0.002)
                if i % 3 == 1:
                    task.cancel()
                elif i % 3 == 2:
                    await a.send(i)
                try:
                    await task
                except (asyncio.CancelledError, ipckit.Empty):
                    pass
            fill(a)
            sender = asyncio.create_task(a.send(b"s" * 4000))
            await asyncio.sleep(0.01)
            sender.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sender
            w = b._ch._transport._w  # type: ignore[attr-defined]
            assert w[ring.ASYNC_RECV_WAITERS // 4] == 0
            assert w[ring.ASYNC_SEND_WAITERS // 4] == 0
            while await b.poll():
                await b.recv()

    run("asyncio", body)


def test_one_channel_one_async_handle() -> None:
    """Adopting one sync channel twice is refused (the two would fight over the loop)."""
    a, b = ipckit.pipe()
    with a, b:
        aio.AsyncChannel(a)
        with pytest.raises(ipckit.ConfigurationError, match="already belongs"):
            aio.AsyncChannel(a)
