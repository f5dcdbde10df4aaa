"""The channel contract (docs/guide.md), as checks any backend can be run through.

``make_pair(a={...}, b={...})`` must return two connected handles ``(a, b)`` such
that what ``a`` sends, ``b`` receives; ``a`` is the creator (the checks call
``a.unlink()`` at the end) and the option dicts apply to each end. Checks that
start processes take the ``multiprocessing`` start method to use.
"""

from __future__ import annotations

import gc
import multiprocessing
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from ipckit.channel import Channel
from ipckit.errors import (
    ChannelClosed,
    Empty,
    HandleClosed,
    MessageTooLarge,
    SerializationError,
    Timeout,
)
from ipckit.testing import _workers
from ipckit.testing._interrupts import (
    check_fork_during_call,
    check_interrupt_every_point_recv,
    check_interrupt_every_point_send,
)

__all__ = ["CONTRACT_CHECKS", "Check", "PairFactory", "check_channel_contract"]

#: Longest any single wait in a check may take before the check fails.
BOUND = 30.0


class PairFactory(Protocol):
    """Makes a connected pair; ``a`` sends to ``b``. Options apply per end."""

    def __call__(
        self, a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
    ) -> tuple[Channel, Channel]:
        """Return ``(a, b)``."""
        ...


@dataclass(frozen=True)
class Check:
    """One contract check; ``processes`` checks run once per start method."""

    fn: Callable[[PairFactory, str], None]
    processes: bool = False


@contextmanager
def _pair(
    make_pair: PairFactory,
    a: Mapping[str, Any] | None = None,
    b: Mapping[str, Any] | None = None,
) -> Iterator[tuple[Channel, Channel]]:
    left, right = make_pair(a or {}, b or {})
    try:
        yield left, right
    finally:
        right.close()
        left.close()
        left.unlink()


def _send_all(send: Callable[..., None], items: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for item in items:
            send(item, timeout=BOUND)

    return run


def _in_thread(fn: Callable[[], object]) -> Callable[[], None]:
    """Run ``fn`` in a thread now; the returned function joins it and re-raises.

    Point-to-point channels (pipes, sockets) block a sender until the peer reads,
    so a message bigger than the kernel buffer needs a receiver running at the
    same time, as it would in real use.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(BOUND)
        if thread.is_alive():
            raise AssertionError("sender thread did not finish in time")
        if errors:
            raise errors[0]

    return join


def _expect(exc_type: type[BaseException], fn: Callable[[], object], what: str) -> BaseException:
    try:
        fn()
    except exc_type as exc:
        return exc
    except BaseException as exc:
        raise AssertionError(f"{what}: expected {exc_type.__name__}, got {exc!r}") from exc
    raise AssertionError(f"{what}: expected {exc_type.__name__}, nothing was raised")


SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    3.25,
    "",
    "héllo wörld ✓",
    b"",
    b"\x00\xffbytes",
    [],
    [1, "two", [3.0, None]],
    {"a": 1, "nested": {"list": [1, 2], "bytes": b"x"}},
    {1: "int key", 2: "another"},
    "x" * 100_000,
    list(range(1000)),
]


def check_roundtrip_objects(make_pair: PairFactory, start_method: str) -> None:
    """Every msgpack-representable sample comes back equal, in order."""
    with _pair(make_pair) as (a, b):
        join = _in_thread(_send_all(a.send, SAMPLES))
        for obj in SAMPLES:
            got = b.recv(timeout=BOUND)
            assert got == obj, f"sent {obj!r:.80}, received {got!r:.80}"
            assert type(got) is type(obj), f"{type(obj)} came back as {type(got)}"
        join()
        a.send((1, 2), timeout=BOUND)
        assert b.recv(timeout=BOUND) == [1, 2], "tuples arrive as lists under msgpack"


def check_roundtrip_bytes(make_pair: PairFactory, start_method: str) -> None:
    """send_bytes/recv_bytes carry any bytes-like object exactly, empty included."""
    payloads = [b"", b"x", bytes(range(256)) * 4, b"\x00" * 65536, bytes(1 << 20)]
    with _pair(make_pair) as (a, b):
        join = _in_thread(_send_all(a.send_bytes, payloads))
        for p in payloads:
            got = b.recv_bytes(timeout=BOUND)
            assert type(got) is bytes and got == p, f"{len(p)}-byte payload changed"
        join()
        a.send_bytes(bytearray(b"ba"), timeout=BOUND)
        a.send_bytes(memoryview(b"xmvx")[1:3], timeout=BOUND)
        assert b.recv_bytes(timeout=BOUND) == b"ba"
        assert b.recv_bytes(timeout=BOUND) == b"mv"
        a.send_bytes(b"raw", timeout=BOUND)
        assert b.recv(timeout=BOUND) == b"raw", "recv() of a send_bytes message gives bytes"


def check_recv_view(make_pair: PairFactory, start_method: str) -> None:
    """recv_view lends the payload read-only until released; the handle then goes on."""
    with _pair(make_pair) as (a, b):
        big = bytes(range(256)) * 4096
        join = _in_thread(_send_all(a.send_bytes, [b"small", big, b"after"]))
        with b.recv_view(timeout=BOUND) as view:
            assert bytes(view) == b"small" and len(view) == 5
            assert view.data.readonly
        with b.recv_view(timeout=BOUND) as view:
            assert view.data == big
        view.release()  # idempotent
        assert b.recv_bytes(timeout=BOUND) == b"after"
        join()
        _expect(Empty, lambda: b.recv_view(timeout=0), "recv_view(timeout=0) when empty")


def check_recv_bytes_into(make_pair: PairFactory, start_method: str) -> None:
    """recv_bytes_into fills a caller's buffer at an offset; too small loses nothing."""
    with _pair(make_pair) as (a, b):
        target = bytearray(32)
        a.send_bytes(b"hello", timeout=BOUND)
        assert b.recv_bytes_into(target, 3, timeout=BOUND) == 5
        assert target[3:8] == b"hello" and target[:3] == bytes(3)
        a.send_bytes(b"y" * 100, timeout=BOUND)
        exc = _expect(MessageTooLarge, lambda: b.recv_bytes_into(target, timeout=BOUND), "no room")
        assert isinstance(exc, MessageTooLarge)
        assert exc.needed == 100, f"needed={exc.needed}"
        assert exc.payload == b"y" * 100, "the message that did not fit is in the exception"
        a.send_bytes(b"after", timeout=BOUND)
        assert b.recv_bytes(timeout=BOUND) == b"after"


def check_order_kept(make_pair: PairFactory, start_method: str) -> None:
    """One sender's messages arrive in the order sent."""
    with _pair(make_pair) as (a, b):
        received: list[int] = []
        for i in range(2000):
            a.send(i, timeout=BOUND)
            if i % 7 == 6:
                while True:
                    try:
                        received.append(b.recv(timeout=0))
                    except Empty:
                        break
        while len(received) < 2000:
            received.append(b.recv(timeout=BOUND))
        assert received == list(range(2000))


def check_recv_timeouts(make_pair: PairFactory, start_method: str) -> None:
    """timeout=0 never waits; a positive timeout waits at least that long; errors are typed."""
    with _pair(make_pair) as (a, b):
        exc = _expect(Empty, lambda: b.recv(timeout=0), "recv(timeout=0) on an empty channel")
        assert isinstance(exc, queue.Empty) and isinstance(exc, Timeout)
        assert isinstance(exc, TimeoutError)
        start = time.monotonic()
        _expect(Empty, lambda: b.recv(timeout=0.2), "recv(timeout=0.2)")
        _expect(Empty, lambda: b.recv_bytes(timeout=0.05), "recv_bytes(timeout=0.05)")
        _expect(Empty, lambda: b.recv_many(5, timeout=0.05), "recv_many(timeout=0.05)")
        elapsed = time.monotonic() - start
        assert elapsed >= 0.29, f"timeouts returned early ({elapsed:.3f}s for 0.3s)"
        _expect(Empty, lambda: b.recv(timeout=-1), "a negative timeout (means 0)")
        assert b.poll(-1) is False, "poll(-1) looks once, as multiprocessing's does"
        a.send("after", timeout=BOUND)
        assert b.recv(timeout=BOUND) == "after", "a timed-out recv must not break the channel"


def check_bad_object_keeps_channel(make_pair: PairFactory, start_method: str) -> None:
    """An object the serializer refuses raises SerializationError and sends nothing."""
    with _pair(make_pair) as (a, b):
        exc = _expect(SerializationError, lambda: a.send({1, 2}), "sending a set with msgpack")
        assert "pickle" in str(exc), "the error should name the serializer that can do it"
        _expect(SerializationError, lambda: a.send(2**70), "an int beyond 64 bits")
        _expect(SerializationError, lambda: a.send(object()), "an arbitrary object")
        _expect(SerializationError, lambda: a.send_many([1, {3}]), "a batch with a bad item")
        _expect(Empty, lambda: b.recv(timeout=0.05), "nothing should have been sent")
        a.send("still fine", timeout=BOUND)
        assert b.recv(timeout=BOUND) == "still fine"


def check_size_limit(make_pair: PairFactory, start_method: str) -> None:
    """A message over max_message_size raises MessageTooLarge before anything is sent."""
    limit = {"max_message_size": 4096}
    with _pair(make_pair, limit, limit) as (a, b):
        assert a.max_message_size == 4096
        exc = _expect(MessageTooLarge, lambda: a.send_bytes(bytes(4097)), "4097 bytes > 4096")
        assert isinstance(exc, ValueError) and "max_message_size" in str(exc)
        _expect(MessageTooLarge, lambda: a.send("x" * 5000), "a 5000-char string")
        _expect(MessageTooLarge, lambda: a.send_many(["ok", "x" * 5000]), "a batch")
        _expect(Empty, lambda: b.recv(timeout=0.05), "nothing should have been sent")
        a.send_bytes(bytes(4096), timeout=BOUND)
        assert b.recv_bytes(timeout=BOUND) == bytes(4096), "exactly the limit is allowed"


def check_serializer_mismatch(make_pair: PairFactory, start_method: str) -> None:
    """A receiver detects another serializer from the header; pickle is refused."""
    with _pair(make_pair, {"serializer": "json"}, {"serializer": "msgpack"}) as (a, b):
        a.send({"k": 1}, timeout=BOUND)
        exc = _expect(SerializationError, lambda: b.recv(timeout=BOUND), "json -> msgpack")
        assert isinstance(exc, SerializationError) and exc.payload == b'{"k":1}'
        a.send_bytes(b"raw is fine", timeout=BOUND)
        assert b.recv(timeout=BOUND) == b"raw is fine"
    with _pair(make_pair, {"serializer": "pickle"}, {"serializer": "msgpack"}) as (a, b):
        a.send({"k": 1}, timeout=BOUND)
        exc = _expect(SerializationError, lambda: b.recv(timeout=BOUND), "pickle -> msgpack")
        assert "pickle" in str(exc)
    with _pair(make_pair, {"serializer": "pickle"}, {"serializer": "pickle"}) as (a, b):
        a.send({1, 2, (3, 4)}, timeout=BOUND)
        assert b.recv(timeout=BOUND) == {1, 2, (3, 4)}


def check_batches(make_pair: PairFactory, start_method: str) -> None:
    """send_many/recv_many keep order and never return more than max_items."""
    with _pair(make_pair) as (a, b):
        a.send_many([], timeout=BOUND)
        a.send_many([{"i": i} for i in range(250)], timeout=BOUND)
        got: list[Any] = []
        while len(got) < 250:
            batch = b.recv_many(max_items=100, timeout=BOUND)
            assert 1 <= len(batch) <= 100
            got.extend(batch)
        assert got == [{"i": i} for i in range(250)]
        _expect(ValueError, lambda: b.recv_many(max_items=0), "max_items=0")


def check_poll(make_pair: PairFactory, start_method: str) -> None:
    """poll() reports readiness without consuming."""
    with _pair(make_pair) as (a, b):
        assert b.poll() is False
        assert b.poll(0.05) is False
        a.send("x", timeout=BOUND)
        assert b.poll(BOUND) is True
        assert b.poll() is True, "poll must not consume the message"
        assert b.recv(timeout=0) == "x"


def check_close(make_pair: PairFactory, start_method: str) -> None:
    """close() is idempotent; a closed handle raises HandleClosed (a ChannelClosed)."""
    with _pair(make_pair) as (a, b):
        b.close()
        b.close()
        assert b.closed
        exc = _expect(HandleClosed, lambda: b.recv(timeout=0), "recv on a closed handle")
        assert isinstance(exc, ChannelClosed)
        _expect(HandleClosed, lambda: b.send("x"), "send on a closed handle")
        _expect(HandleClosed, b.poll, "poll on a closed handle")
        a.unlink()
        a.unlink()


def check_context_manager_and_warning(make_pair: PairFactory, start_method: str) -> None:
    """A with block closes the handle; a forgotten one warns ResourceWarning."""
    a, b = make_pair({}, {})
    try:
        with b as same:
            assert same is b
        assert b.closed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a_url = a.url
            del a
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) for w in caught), (
            f"no ResourceWarning for an unclosed handle on {a_url}"
        )
    finally:
        # The collected handle closed itself; remove the named objects through the other.
        b.close()
        b.unlink()


def check_shutdown_and_iteration(make_pair: PairFactory, start_method: str) -> None:
    """After shutdown receivers drain, then get ChannelClosed; iteration ends; sends fail."""
    with _pair(make_pair) as (a, b):
        a.send_many([1, 2, 3], timeout=BOUND)
        a.shutdown()
        _expect(ChannelClosed, lambda: a.send(4, timeout=BOUND), "send after shutdown")
        assert list(b) == [1, 2, 3]
        _expect(ChannelClosed, lambda: b.recv(timeout=BOUND), "recv after the end")


def check_shutdown_wakes_receiver(make_pair: PairFactory, start_method: str) -> None:
    """A receiver blocked forever in another thread wakes on shutdown."""
    with _pair(make_pair) as (a, b):
        outcome: list[BaseException] = []

        def blocked() -> None:
            try:
                b.recv()
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                outcome.append(exc)

        thread = threading.Thread(target=blocked, daemon=True)
        thread.start()
        time.sleep(0.1)
        a.shutdown()
        thread.join(BOUND)
        assert not thread.is_alive(), "the blocked receiver did not wake on shutdown"
        assert outcome and isinstance(outcome[0], ChannelClosed), outcome


def check_close_wakes_own_waiter(make_pair: PairFactory, start_method: str) -> None:
    """Closing a handle wakes its own blocked receiver with HandleClosed."""
    with _pair(make_pair) as (_, b):
        outcome: list[BaseException] = []

        def blocked() -> None:
            try:
                b.recv()
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                outcome.append(exc)

        thread = threading.Thread(target=blocked, daemon=True)
        thread.start()
        time.sleep(0.1)
        b.close()
        thread.join(BOUND)
        assert not thread.is_alive(), "close() did not wake the blocked receiver"
        assert outcome and isinstance(outcome[0], HandleClosed), outcome


def check_threads(make_pair: PairFactory, start_method: str) -> None:
    """Four threads share one handle: every message once, each thread's order kept."""
    per_thread = 500
    with _pair(make_pair) as (a, b):

        def produce(tag: int) -> None:
            for seq in range(per_thread):
                a.send([tag, seq], timeout=BOUND)

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        got: list[list[int]] = []
        while len(got) < 4 * per_thread:
            got.extend(b.recv_many(64, timeout=BOUND))
        for t in threads:
            t.join(BOUND)
        for tag in range(4):
            seqs = [s for t, s in got if t == tag]
            assert seqs == list(range(per_thread)), f"thread {tag} lost or reordered messages"


def check_stats(make_pair: PairFactory, start_method: str) -> None:
    """stats() counts this handle's messages and payload bytes."""
    with _pair(make_pair) as (a, b):
        a.send_bytes(b"12345", timeout=BOUND)
        a.send_bytes(b"678", timeout=BOUND)
        b.recv_bytes(timeout=BOUND)
        sa, sb = a.stats(), b.stats()
        assert (sa.messages_sent, sa.bytes_sent) == (2, 8)
        assert (sb.messages_received, sb.bytes_received) == (1, 5)
        assert sa.url == a.url
        try:
            sa.messages_sent = 0  # type: ignore[misc]
        except AttributeError:
            pass
        else:
            raise AssertionError("ChannelStats must be frozen")


def check_numpy(make_pair: PairFactory, start_method: str) -> None:
    """Numpy arrays keep dtype, shape, order and values, and arrive writable."""
    try:
        import numpy as np
    except ImportError:
        return
    arrays = [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(20, dtype=np.float32)[::3],
        np.zeros((0, 5), dtype=np.uint8),
        np.array(7.5),
        np.ones(300_000, dtype=np.float64),
    ]
    with _pair(make_pair) as (a, b):
        join = _in_thread(_send_all(a.send, [{"arr": x, "n": 1} for x in arrays]))
        for arr in arrays:
            got = b.recv(timeout=BOUND)["arr"]
            assert got.dtype == arr.dtype and got.shape == arr.shape
            assert (got == arr).all()
            assert got.flags.writeable
            if arr.ndim == 2 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
                assert got.flags.f_contiguous
        join()


def _start(
    method: str, target: Callable[..., None], *args: Any
) -> multiprocessing.process.BaseProcess:
    ctx: Any = multiprocessing.get_context(method)
    proc: multiprocessing.process.BaseProcess = ctx.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _finish(proc: multiprocessing.process.BaseProcess) -> None:
    proc.join(BOUND)
    if proc.is_alive():
        proc.kill()
        proc.join(BOUND)
        raise AssertionError("child process did not finish in time")


def check_process_echo(make_pair: PairFactory, start_method: str) -> None:
    """A child process receives every message and echoes it back, big ones included."""
    messages: list[Any] = [{"i": i, "s": "x" * (i % 50)} for i in range(300)]
    messages += [b"b" * (1 << 20), "end"]
    with _pair(make_pair) as (to_child, child_in), _pair(make_pair) as (child_out, from_child):
        proc = _start(start_method, _workers.echo, child_in, child_out, len(messages))
        child_in.close()
        child_out.close()
        # Send while receiving, as a real client would: a bounded queue (mq:// holds
        # 10 messages by default) cannot take the whole batch before any echo is read.
        join = _in_thread(_send_all(to_child.send, messages))
        echoed = [from_child.recv(timeout=BOUND) for _ in messages]
        join()
        _finish(proc)
        assert echoed == messages
        assert proc.exitcode == 0


def check_killed_sender(make_pair: PairFactory, start_method: str) -> None:
    """A sender SIGKILLed after sending loses nothing and never hangs the receiver."""
    with _pair(make_pair) as (a, b):
        proc = _start(start_method, _workers.produce_then_die, a, 200)
        got = [b.recv(timeout=BOUND) for _ in range(200)]
        assert got == list(range(200))
        proc.join(BOUND)
        assert proc.exitcode == -9
        a.close()
        # Point-to-point: the peer is gone. Queue: simply nothing more arrives.
        try:
            b.recv(timeout=0.5)
        except (ChannelClosed, Empty):
            pass
        else:
            raise AssertionError("a message appeared from nowhere")


def check_many_processes(make_pair: PairFactory, start_method: str) -> None:
    """Three producer processes: every message exactly once, per-producer order kept."""
    count = 300
    with _pair(make_pair) as (a, b):
        multi = a.capabilities.many_producers
        producers = 3 if multi else 1
        procs = [
            _start(start_method, _workers.produce_tagged, a, tag, count, 100)
            for tag in range(producers)
        ]
        a.close()
        got = [b.recv(timeout=BOUND) for _ in range(producers * count)]
        for proc in procs:
            _finish(proc)
        for tag in range(producers):
            seqs = [m[1] for m in got if m[0] == tag]
            assert seqs == list(range(count)), f"producer {tag} lost or reordered messages"


def check_pickled_handle(make_pair: PairFactory, start_method: str) -> None:
    """A handle passed to a child works there; the child receives and reports."""
    with _pair(make_pair) as (a, b), _pair(make_pair) as (res_a, res_b):
        proc = _start(start_method, _workers.receive_count, b, res_a, 50)
        b.close()
        res_a.close()
        for i in range(50):
            a.send(i, timeout=BOUND)
        assert res_b.recv(timeout=BOUND) == list(range(50))
        _finish(proc)


CONTRACT_CHECKS: dict[str, Check] = {
    "roundtrip_objects": Check(check_roundtrip_objects),
    "roundtrip_bytes": Check(check_roundtrip_bytes),
    "order_kept": Check(check_order_kept),
    "recv_view": Check(check_recv_view),
    "recv_bytes_into": Check(check_recv_bytes_into),
    "recv_timeouts": Check(check_recv_timeouts),
    "bad_object_keeps_channel": Check(check_bad_object_keeps_channel),
    "size_limit": Check(check_size_limit),
    "serializer_mismatch": Check(check_serializer_mismatch),
    "batches": Check(check_batches),
    "poll": Check(check_poll),
    "close": Check(check_close),
    "context_manager_and_warning": Check(check_context_manager_and_warning),
    "shutdown_and_iteration": Check(check_shutdown_and_iteration),
    "shutdown_wakes_receiver": Check(check_shutdown_wakes_receiver),
    "close_wakes_own_waiter": Check(check_close_wakes_own_waiter),
    "threads": Check(check_threads),
    "stats": Check(check_stats),
    "numpy": Check(check_numpy),
    "process_echo": Check(check_process_echo, processes=True),
    "killed_sender": Check(check_killed_sender, processes=True),
    "many_processes": Check(check_many_processes, processes=True),
    "pickled_handle": Check(check_pickled_handle, processes=True),
    "interrupt_every_point_send": Check(check_interrupt_every_point_send),
    "interrupt_every_point_recv": Check(check_interrupt_every_point_recv),
    "fork_during_call": Check(check_fork_during_call),
}


def check_channel_contract(
    make_pair: PairFactory, *, start_methods: tuple[str, ...] = ("fork", "spawn")
) -> None:
    """Run every contract check against ``make_pair``; raise AssertionError on the first failure."""
    for name, check in CONTRACT_CHECKS.items():
        methods = start_methods if check.processes else ("fork",)
        for method in methods:
            try:
                check.fn(make_pair, method)
            except AssertionError as exc:
                raise AssertionError(f"contract check {name} ({method}) failed: {exc}") from exc
