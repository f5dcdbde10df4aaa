"""What the producer and consumer processes do in one round, and how they check it.

The hot loops are plain Python on purpose: the same loop drives every contender,
so the per-message cost of the harness (a comparison of the received bytes with
the expected ones) is the same for all of them. Times come from
``time.perf_counter_ns`` (``CLOCK_MONOTONIC`` on Linux, one clock for the whole
machine), so a start taken in the producer and an end taken in the consumer can
be subtracted.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import cycle
from time import perf_counter_ns
from typing import Any

import msgpack
from typing_extensions import Buffer

from ipckit._bench.contender import Endpoint
from ipckit._bench.stats import percentile
from ipckit._bench.workloads import END

__all__ = [
    "consume",
    "consume_objects",
    "describe_mismatch",
    "describe_object_mismatch",
    "echo",
    "ping",
    "produce",
    "produce_objects",
]

_TAG = struct.Struct("<II")
#: Ping-pong exchanges before the timed ones: first touches, page faults, wake-up paths.
_WARMUP = 20


def describe_mismatch(index: int, got: Buffer, expected: bytes) -> str:
    """Say how message ``index`` differs from what was expected, in a line."""
    data = bytes(got)
    if len(data) != len(expected):
        return f"message #{index}: expected {len(expected)} bytes, got {len(data)}"
    at = next(i for i, (a, b) in enumerate(zip(data, expected, strict=True)) if a != b)
    if at < _TAG.size:
        got_tag = _TAG.unpack_from(data)
        want_tag = _TAG.unpack_from(expected)
        return (
            f"message #{index}: got (producer, variant) {got_tag}, expected {want_tag} "
            "(a message lost, duplicated, reordered or mixed)"
        )
    return f"message #{index}: byte {at} of {len(data)} differs (corrupted payload)"


def produce(
    ep: Endpoint, variants: Sequence[bytes], duration_ns: int, min_messages: int
) -> dict[str, Any]:
    """Send variants in turn for ``duration_ns`` (and at least ``min_messages``), then END."""
    size = max(len(v) for v in variants)
    # Read the clock every few messages: a clock read per 64-byte message would cost 5-10 %.
    stride = max(1, min(64, 65536 // size))
    sent = 0
    nbytes = 0
    t0 = perf_counter_ns()
    deadline = t0 + duration_ns
    if ep.batch > 1:
        width = min(ep.batch, len(variants))
        batches = [list(variants[j : j + width]) for j in range(0, len(variants), width)]
        batch_bytes = [sum(map(len, b)) for b in batches]
        send_many = ep.send_many
        j = 0
        while sent < min_messages or perf_counter_ns() < deadline:
            send_many(batches[j])
            sent += width
            nbytes += batch_bytes[j]
            j = (j + 1) % len(batches)
    else:
        send = ep.send
        source = cycle(variants)
        lengths = cycle([len(v) for v in variants])
        while sent < min_messages or perf_counter_ns() < deadline:
            for _ in range(stride):
                send(next(source))
                nbytes += next(lengths)
            sent += stride
    t1 = perf_counter_ns()
    ep.send(END)
    return {"sent": sent, "bytes": nbytes, "t0": t0, "t1": t1}


def consume(
    ep: Endpoint, variants: Sequence[Sequence[bytes]], producers: int = 1
) -> dict[str, Any]:
    """Receive and check every message until each producer's END; report counts and the time."""
    received = 0
    nbytes = 0
    failure: str | None = None
    ends = 0
    if producers == 1 and ep.batch == 1:  # the common case, kept tight
        expected = variants[0]
        mask = len(expected) - 1  # a power of two (see workloads._variant_count)
        recv = ep.recv
        i = 0
        while True:
            data = recv()
            if data != expected[i & mask]:
                if data == END:
                    break
                if failure is None:
                    failure = describe_mismatch(i, data, expected[i & mask])
            nbytes += len(data)  # type: ignore[arg-type]
            i += 1
        received = i
    elif producers == 1:
        expected = variants[0]
        mask = len(expected) - 1
        i = 0
        while ends < producers:
            for data in ep.recv_many():
                if data != expected[i & mask]:
                    if data == END:
                        ends += 1
                        continue
                    if failure is None:
                        failure = describe_mismatch(i, data, expected[i & mask])
                nbytes += len(data)  # type: ignore[arg-type]
                i += 1
        received = i
    else:
        # Many producers interleave: follow each one's stream by the tag in its messages.
        nxt = [0] * producers
        while ends < producers:
            for data in ep.recv_many() if ep.batch > 1 else (ep.recv(),):
                if data == END:
                    ends += 1
                    continue
                received += 1
                nbytes += len(data)  # type: ignore[arg-type]
                if failure is not None:
                    continue
                try:
                    p, _ = _TAG.unpack_from(data)
                    want = variants[p][nxt[p] % len(variants[p])]
                except (struct.error, IndexError):
                    failure = f"message #{received - 1}: not from any producer (corrupted tag)"
                    continue
                if data != want:
                    failure = describe_mismatch(nxt[p], data, want) + f" from producer {p}"
                nxt[p] += 1
    t_end = perf_counter_ns()
    return {"received": received, "bytes": nbytes, "t_end": t_end, "failure": failure}


def ping(
    ep: Endpoint, variants: Sequence[bytes], duration_ns: int, min_messages: int
) -> dict[str, Any]:
    """Send one message, wait for it to come back, check it; time each round trip."""
    send, recv = ep.send, ep.recv
    samples: list[int] = []
    failure: str | None = None
    n = len(variants)
    i = 0
    t0 = perf_counter_ns()
    deadline = t0 + duration_ns
    while i < _WARMUP + min_messages or perf_counter_ns() < deadline:
        msg = variants[i % n]
        start = perf_counter_ns()
        send(msg)
        back = recv()
        took = perf_counter_ns() - start
        if back != msg and failure is None:
            failure = describe_mismatch(i, back, msg) + " (after a round trip)"
        if i >= _WARMUP:
            samples.append(took)
        i += 1
    send(END)
    return round_trips(i, samples, failure)


def round_trips(sent: int, samples: list[int], failure: str | None) -> dict[str, Any]:
    """A ping-pong's report: round-trip percentiles (us) from ``samples`` (ns)."""
    samples.sort()
    return {
        "sent": sent,
        "samples": len(samples),
        "p50_us": percentile(samples, 50) / 1000,
        "p99_us": percentile(samples, 99) / 1000,
        "failure": failure,
    }


def echo(ep: Endpoint) -> dict[str, Any]:
    """Send every message straight back until END."""
    send, recv = ep.send, ep.recv
    count = 0
    while True:
        data = recv()
        if data == END:
            return {"received": count}
        send(data)  # type: ignore[arg-type]
        count += 1


def describe_object_mismatch(index: int, got: Any, expected: dict[str, Any]) -> str:
    """Say how object ``index`` differs from the dict expected, in a line."""
    if isinstance(got, dict):
        tag = (got.get("producer"), got.get("seq"))
        want = (expected["producer"], expected["seq"])
        if tag != want:
            return (
                f"message #{index}: got (producer, seq) {tag}, expected {want} "
                "(a message lost, duplicated, reordered or mixed)"
            )
        return f"message #{index}: the dict differs from the one sent (corrupted body)"
    return f"message #{index}: expected a dict, got {type(got).__name__} {got!r:.60}"


def _encoded_sizes(variants: Sequence[Any]) -> list[int]:
    # The MB/s column of the dict workload counts msgpack's size for every contender
    # (the peers pickle, a little larger), so it is msgs/s times a fixed size.
    return [len(msgpack.packb(v)) for v in variants]


def produce_objects(
    ep: Endpoint, variants: Sequence[Any], duration_ns: int, min_messages: int
) -> dict[str, Any]:
    """:func:`produce` for objects: ``send_obj`` (or ``send_obj_many``) of each in turn."""
    sizes = _encoded_sizes(variants)
    stride = 64  # small objects: read the clock every 64 messages
    sent = 0
    nbytes = 0
    t0 = perf_counter_ns()
    deadline = t0 + duration_ns
    if ep.batch > 1:
        width = min(ep.batch, len(variants))
        batches = [list(variants[j : j + width]) for j in range(0, len(variants), width)]
        batch_bytes = [sum(sizes[j : j + width]) for j in range(0, len(variants), width)]
        send_many = ep.send_obj_many
        j = 0
        while sent < min_messages or perf_counter_ns() < deadline:
            send_many(batches[j])
            sent += width
            nbytes += batch_bytes[j]
            j = (j + 1) % len(batches)
    else:
        send = ep.send_obj
        source = cycle(variants)
        lengths = cycle(sizes)
        while sent < min_messages or perf_counter_ns() < deadline:
            for _ in range(stride):
                send(next(source))
                nbytes += next(lengths)
            sent += stride
    t1 = perf_counter_ns()
    ep.send_obj(END)
    return {"sent": sent, "bytes": nbytes, "t0": t0, "t1": t1}


def consume_objects(ep: Endpoint, variants: Sequence[Any]) -> dict[str, Any]:
    """:func:`consume` for objects, one producer: every object must equal the one expected."""
    sizes = _encoded_sizes(variants)
    mask = len(variants) - 1  # a power of two (see workloads.make_dicts)
    failure: str | None = None
    nbytes = 0
    i = 0
    many = ep.batch > 1
    recv, recv_many = ep.recv_obj, ep.recv_obj_many
    ended = False
    while not ended:
        for obj in recv_many() if many else (recv(),):
            if obj != variants[i & mask]:
                if obj == END:
                    ended = True
                    continue
                if failure is None:
                    failure = describe_object_mismatch(i, obj, variants[i & mask])
            nbytes += sizes[i & mask]
            i += 1
    t_end = perf_counter_ns()
    return {"received": i, "bytes": nbytes, "t_end": t_end, "failure": failure}
