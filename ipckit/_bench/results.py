"""What a bench run produced: one result per round, per cell, and for the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ipckit._bench.contender import Unit
from ipckit._bench.stats import Summary, summarize

__all__ = [
    "ERROR",
    "FAIL",
    "NA",
    "OK",
    "SKIPPED",
    "TIMEOUT",
    "BenchResult",
    "out_of_band",
    "CellResult",
    "RoundResult",
]

OK = "ok"
#: The correctness check failed: the contender lost, duplicated, reordered or corrupted data.
FAIL = "FAIL"
#: A child raised or died.
ERROR = "ERROR"
#: A child did not finish in time and was killed.
TIMEOUT = "TIMEOUT"
#: The contender cannot run here (not installed, backend not available).
SKIPPED = "skipped"
#: The workload does not apply to the contender (too large, batching for ping-pong).
NA = "n/a"


@dataclass(frozen=True)
class RoundResult:
    """One round of one cell: a status, the measured figures when ok, and why not otherwise."""

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    seconds: float = 0.0
    #: The link's native unit, when it has one (named queues).
    unit: Unit | None = None
    #: ``native``/``pure`` (``mixed`` if the ends differed): the ipckit code path, else None.
    implementation: str | None = None


@dataclass
class CellResult:
    """One contender on one workload, over every round run."""

    contender: str
    workload: str
    status: str = OK
    reason: str | None = None
    rounds: list[RoundResult] = field(default_factory=list)
    unit: Unit | None = None
    #: The contender this cell's ratio is against (None: no ratio).
    baseline: str | None = None
    #: ``native`` or ``pure`` for an ipckit row (``mixed`` if rounds or ends differed).
    implementation: str | None = None

    @property
    def finished(self) -> bool:
        """True once the cell needs no more rounds (failed, skipped or not applicable)."""
        return self.status != OK

    def add(self, result: RoundResult) -> None:
        """Record a round; a failed round decides the cell (a broken contender gets no number)."""
        self.rounds.append(result)
        if result.unit is not None:
            self.unit = result.unit
        if result.implementation is not None:
            if self.implementation is None:
                self.implementation = result.implementation
            elif self.implementation != result.implementation:
                self.implementation = "mixed"
        if result.status != OK and self.status == OK:
            self.status = result.status
            self.reason = result.reason

    def summary(self, metric: str) -> Summary | None:
        """Median and spread of ``metric`` over the rounds, or ``None`` if not ok."""
        if self.status != OK:
            return None
        values = [r.metrics[metric] for r in self.rounds if metric in r.metrics]
        return summarize(values) if values else None


def out_of_band(unit: Unit | None, sizes: tuple[int, ...]) -> str | None:
    """``"all"``, ``"some"`` or ``"none"`` of the messages (of these sizes) over ``unit``.

    ``None`` when there is no unit (byte streams, contenders that do not say).
    """
    if unit is None:
        return None
    over = sum(1 for size in sizes if size > unit.inline_max)
    return "none" if over == 0 else "all" if over == len(sizes) else "some"


@dataclass
class BenchResult:
    """The whole run: settings, machine, contenders, workloads and every cell."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    contenders: list[dict[str, Any]]
    workloads: list[dict[str, Any]]
    cells: dict[tuple[str, str], CellResult]
    started: str
    seconds: float = 0.0

    def cell(self, contender: str, workload: str) -> CellResult:
        """The cell for a contender and a workload."""
        return self.cells[(contender, workload)]
