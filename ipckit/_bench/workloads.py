"""The workloads and the payloads they send.

Every message is one of a small set of *variants*: random bytes, each starting with
an 8-byte tag (producer number, variant number). Message ``i`` of a producer is
variant ``i mod V``, so the consumer knows exactly which bytes must arrive next and
compares every message in full. A flipped byte, a truncated, dropped, duplicated,
reordered or interleaved message all show as a mismatch; the counts are compared
at the end too. The variants are made once in the parent and reach the children
through ``fork``, so building messages costs the producer nothing.

Two other payloads follow the same idea. ``small-dict`` sends dicts (producer,
``seq`` = the variant number, a fixed body) through the contender's serializer.
The many-producer workloads send a fixed number of messages per producer, each
tagged with its full sequence number (:func:`make_numbered`), because with several
consumers each one sees only part of a producer's stream and must still tell a
gap (another consumer's share) from a loss or a duplicate.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

import msgpack

__all__ = [
    "AUTO",
    "BYTES",
    "DICT",
    "DICT_BODY",
    "END",
    "MANY_CONTENDERS",
    "THROUGHPUT",
    "PINGPONG",
    "WORKLOADS",
    "Workload",
    "baseline_of",
    "make_dicts",
    "make_numbered",
    "make_variants",
]

Kind = Literal["throughput", "pingpong"]
THROUGHPUT: Final = "throughput"
PINGPONG: Final = "pingpong"
Payload = Literal["bytes", "dict"]
BYTES: Final = "bytes"
DICT: Final = "dict"

#: Sent by a producer after its last message; never equal to a variant (wrong tag).
END = b"\xff\xff\xff\xffipckit-bench-end"

_TAG = struct.Struct("<II")
#: Keep the variants of one workload within this many bytes (they live in every process).
_VARIANT_BUDGET = 64 * 1024 * 1024


@dataclass(frozen=True)
class Workload:
    """One column group of the table: what is sent, how much, and what is reported.

    ``sizes`` are the message sizes, cycled through (one size for the standard
    workloads; for dicts, the msgpack-encoded size). A round lasts ``--duration``
    seconds but never sends fewer than ``min_messages`` messages per producer,
    unless ``messages`` is set: then every producer sends exactly that many and
    ``--duration`` does not apply.

    ``payload``: ``"bytes"``, or ``"dict"`` for Python objects through the
    contender's serializer. ``producers``: producer processes (``None``: the run's
    setting, 1 for ``ipckit bench``); ``consumers``: consumer processes sharing the
    stream. ``baseline``: the contender the ratio column compares with, unless
    ``--baseline`` names one; ``batch_baseline``: the one a batch row (a contender
    with ``batch`` above 1) compares with instead, so batches meet batches.
    ``contenders``: the only contenders in this comparison (``None``: all); the
    others get no row.
    """

    name: str
    label: str
    kind: Kind
    sizes: tuple[int, ...]
    min_messages: int
    payload: Payload = BYTES
    producers: int | None = None
    consumers: int = 1
    messages: int | None = None
    baseline: str | None = "raw-pipe"
    batch_baseline: str | None = None
    contenders: tuple[str, ...] | None = None

    @property
    def max_size(self) -> int:
        """The largest message of this workload, in bytes."""
        return max(self.sizes)

    @property
    def primary(self) -> str:
        """The metric the ratio column compares."""
        if self.kind == PINGPONG:
            return "p50_us"
        return "gb_per_s" if self.max_size >= 1024 * 1024 else "msgs_per_s"

    @property
    def higher_is_better(self) -> bool:
        """True for rates, False for latencies."""
        return self.kind == THROUGHPUT

    def producer_count(self, default: int = 1) -> int:
        """How many producers a round runs: this workload's own number, else ``default``."""
        return self.producers if self.producers is not None else default

    def baseline_for(self, batch: int) -> str | None:
        """The contender a row sending ``batch`` messages per call is compared with."""
        if batch > 1 and self.batch_baseline is not None:
            return self.batch_baseline
        return self.baseline


#: A run's baseline setting meaning "each workload's own" (:meth:`Workload.baseline_for`).
AUTO: Final = "auto"


def baseline_of(baseline: str | None, workload: Workload, batch: int = 1) -> str | None:
    """The contender a row is compared with when the run's baseline setting is ``baseline``.

    ``AUTO``: the workload's own (its batch baseline for a row of ``batch`` above 1);
    a contender's name: that one everywhere; ``None``: no ratio.
    """
    if baseline == AUTO:
        return workload.baseline_for(batch)
    return baseline


#: The body every small-dict message carries, the same in every message.
DICT_BODY: Final[dict[str, Any]] = {
    "op": "update",
    "key": "sensor-17",
    "ok": True,
    "score": 0.25,
    "values": [1, 2, 3, 4],
}
#: Variants per producer for the dicts (a power of two, like the byte variants).
_DICTS = 256


@lru_cache(maxsize=32)
def make_dicts(producer: int = 0) -> tuple[dict[str, Any], ...]:
    """The dicts producer ``producer`` cycles through: message ``i`` has ``seq`` i mod 256."""
    return tuple({"producer": producer, "seq": k, "body": DICT_BODY} for k in range(_DICTS))


#: The msgpack-encoded size of the largest dict (the pickles of the peers are larger).
DICT_SIZE: Final = max(len(msgpack.packb(d)) for d in make_dicts(0))

#: The many-producer comparison: ipckit shm:// (native and pure) against faster-fifo,
#: with multiprocessing.Queue for scale.
MANY_CONTENDERS: Final = (
    "mp-queue",
    "faster-fifo",
    "faster-fifo-batch",
    "ipckit-shm",
    "ipckit-shm-pure",
    "ipckit-shm-batch",
    "ipckit-shm-batch-pure",
)


def _many(producers: int, consumers: int, messages: int) -> Workload:
    return Workload(
        f"many-{producers}x{consumers}",
        f"{producers} producers x {consumers} consumer{'s' if consumers > 1 else ''}, "
        f"64-byte messages, {messages} per producer",
        THROUGHPUT,
        (64,),
        messages,
        producers=producers,
        consumers=consumers,
        messages=messages,
        baseline="faster-fifo",
        batch_baseline="faster-fifo-batch",
        contenders=MANY_CONTENDERS,
    )


WORKLOADS: tuple[Workload, ...] = (
    Workload("thru-64B", "throughput, 64-byte messages", THROUGHPUT, (64,), 1000),
    Workload("thru-4KiB", "throughput, 4 KiB messages", THROUGHPUT, (4096,), 200),
    Workload("bw-1MiB", "bandwidth, 1 MiB payloads", THROUGHPUT, (1024 * 1024,), 8),
    Workload(
        "bw-16MiB",
        "bandwidth, 16 MiB payloads",
        THROUGHPUT,
        (16 * 1024 * 1024,),
        3,
        baseline="raw-memcpy",
    ),
    Workload("pingpong-64B", "ping-pong round trip, 64-byte messages", PINGPONG, (64,), 50),
    Workload(
        "small-dict",
        "small dict send/recv (msgpack for ipckit; the peers pickle)",
        THROUGHPUT,
        (DICT_SIZE,),
        1000,
        payload=DICT,
        baseline="mp-queue",
    ),
    # Counts sized for 2 CPUs: a --quick run stays under a minute with all three.
    _many(10, 1, 5000),
    _many(20, 3, 2500),
    _many(20, 20, 2000),
)


def _variant_count(sizes: tuple[int, ...]) -> int:
    """A power of two (so the batch of 64 divides it), at least 4, within the budget."""
    count = 256
    while count > 4 and count * (sum(sizes) / len(sizes)) > _VARIANT_BUDGET:
        count //= 2
    return count


@lru_cache(maxsize=32)
def make_variants(sizes: tuple[int, ...], producer: int = 0) -> tuple[bytes, ...]:
    """The payloads producer number ``producer`` cycles through, sizes in turn."""
    if min(sizes) < _TAG.size:
        raise ValueError(f"messages must be at least {_TAG.size} bytes to carry their tag")
    count = _variant_count(sizes)
    out = []
    for k in range(count):
        size = sizes[k % len(sizes)]
        out.append(_TAG.pack(producer, k) + os.urandom(size - _TAG.size))
    return tuple(out)


@lru_cache(maxsize=64)
def make_numbered(sizes: tuple[int, ...], producer: int, count: int) -> tuple[bytes, ...]:
    """Producer ``producer``'s ``count`` messages, message ``n`` tagged (producer, n).

    The bodies are those of :func:`make_variants`; only the tag differs, so it
    carries the full sequence number instead of the variant number.
    """
    variants = make_variants(sizes, producer)
    return tuple(
        _TAG.pack(producer, n) + variants[n % len(variants)][_TAG.size :] for n in range(count)
    )
