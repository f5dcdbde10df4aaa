"""Where the producer and the consumer run: on two CPUs, on one, or wherever the kernel likes.

On a VM a wake-up that crosses CPUs can cost tens of microseconds, so the placement
moves latency figures a lot; the report always says which one was used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["PLACEMENTS", "Placement", "pin", "plan"]

PLACEMENTS = ("cross", "same", "none")


@dataclass(frozen=True)
class Placement:
    """The CPU for each role (``None``: not pinned), and a sentence saying so."""

    mode: str
    producer_cpu: int | None
    consumer_cpu: int | None
    note: str

    def cpu_for(self, role: str, index: int = 0) -> int | None:
        """The CPU a process of ``role`` is pinned to."""
        return self.producer_cpu if role == "producer" else self.consumer_cpu


def _allowed() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def plan(mode: str) -> Placement:
    """Choose CPUs for ``mode`` (``cross``, ``same`` or ``none``) from those allowed here."""
    if mode not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, not {mode!r}")
    cpus = _allowed()
    if mode == "none" or not cpus:
        why = "" if mode == "none" else " (CPU affinity not supported here)"
        return Placement("none", None, None, f"none: not pinned, the kernel places both{why}")
    if mode == "cross" and len(cpus) >= 2:
        a, b = cpus[0], cpus[1]
        return Placement("cross", a, b, f"cross: producer on CPU {a}, consumer on CPU {b}")
    a = cpus[0]
    if mode == "cross":
        return Placement("same", a, a, f"same: only CPU {a} is allowed, so both run on it")
    return Placement("same", a, a, f"same: producer and consumer both on CPU {a}")


def pin(cpu: int | None) -> None:
    """Pin the calling process to ``cpu`` (no-op for ``None``)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
