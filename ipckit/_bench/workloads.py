"""The workloads and the payloads they send.

Every message is one of a small set of *variants*: random bytes, each starting with
an 8-byte tag (producer number, variant number). Message ``i`` of a producer is
variant ``i mod V``, so the consumer knows exactly which bytes must arrive next and
compares every message in full. A flipped byte, a truncated, dropped, duplicated,
reordered or interleaved message all show as a mismatch; the counts are compared
at the end too. The variants are made once in the parent and reach the children
through ``fork``, so building messages costs the producer nothing.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

__all__ = [
    "END",
    "THROUGHPUT",
    "PINGPONG",
    "WORKLOADS",
    "Workload",
    "make_variants",
]

Kind = Literal["throughput", "pingpong"]
THROUGHPUT: Final = "throughput"
PINGPONG: Final = "pingpong"

#: Sent by a producer after its last message; never equal to a variant (wrong tag).
END = b"\xff\xff\xff\xffipckit-bench-end"

_TAG = struct.Struct("<II")
#: Keep the variants of one workload within this many bytes (they live in every process).
_VARIANT_BUDGET = 64 * 1024 * 1024


@dataclass(frozen=True)
class Workload:
    """One column group of the table: what is sent, how much, and what is reported.

    ``sizes`` are the message sizes, cycled through (one size for the standard
    workloads). A round lasts ``--duration`` seconds but never sends fewer than
    ``min_messages`` messages per producer.
    """

    name: str
    label: str
    kind: Kind
    sizes: tuple[int, ...]
    min_messages: int

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


WORKLOADS: tuple[Workload, ...] = (
    Workload("thru-64B", "throughput, 64-byte messages", THROUGHPUT, (64,), 1000),
    Workload("thru-4KiB", "throughput, 4 KiB messages", THROUGHPUT, (4096,), 200),
    Workload("bw-1MiB", "bandwidth, 1 MiB payloads", THROUGHPUT, (1024 * 1024,), 8),
    Workload("bw-16MiB", "bandwidth, 16 MiB payloads", THROUGHPUT, (16 * 1024 * 1024,), 3),
    Workload("pingpong-64B", "ping-pong round trip, 64-byte messages", PINGPONG, (64,), 50),
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
