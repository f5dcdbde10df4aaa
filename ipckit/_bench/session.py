"""A whole bench run: probe the contenders, then run rounds interleaved across them.

Round ``r`` runs every cell once before round ``r + 1`` starts, and the order of
the contenders rotates from one round to the next, so a slow minute on a shared
machine (other work, a noisy neighbour, thermal limits) spreads over everyone
instead of landing on one contender. Each cell reports the median of its rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ipckit._bench.contender import Contender
from ipckit._bench.machine import machine_info
from ipckit._bench.placement import plan
from ipckit._bench.results import ERROR, NA, OK, SKIPPED, BenchResult, CellResult, RoundResult
from ipckit._bench.runner import START_METHOD, link_spec, run_round
from ipckit._bench.workloads import Workload

__all__ = ["CellFn", "ProgressFn", "Settings", "run_bench"]

#: Called before every round and once at the end: (rounds done, rounds in total, what runs next).
ProgressFn = Callable[[int, int, str], None]
#: Called when a cell has its result: (the cell, its workload, cells done, cells to run).
CellFn = Callable[[CellResult, Workload, int, int], None]


@dataclass(frozen=True)
class Settings:
    """How a run is done; echoed in the report and the JSON."""

    rounds: int = 5
    duration: float = 0.5
    timeout: float = 30.0
    placement: str = "cross"
    baseline: str | None = "raw-pipe"
    quick: bool = False
    producers: int = 1


def _probe(contender: Contender) -> tuple[str | None, str | None]:
    """(status, reason): (None, None) when it can run, else skipped or ERROR and why."""
    try:
        reason = contender.probe()
    except Exception as exc:  # noqa: BLE001 - a broken probe marks the row, not the run
        return ERROR, f"probe failed: {type(exc).__name__}: {exc}"
    return (None, None) if reason is None else (SKIPPED, reason)


def run_bench(
    contenders: Sequence[Contender],
    workloads: Sequence[Workload],
    settings: Settings,
    progress: ProgressFn | None = None,
    on_cell: CellFn | None = None,
) -> BenchResult:
    """Measure every contender on every workload and return the results (never raises for them).

    ``progress`` hears about every round, ``on_cell`` about every cell that was run, once,
    when it has its result (after its last round, or the round that failed it).
    """
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    placement = plan(settings.placement)
    cells: dict[tuple[str, str], CellResult] = {}
    info = []
    for c in contenders:
        status, reason = _probe(c)
        info.append(
            {
                "name": c.name,
                "description": c.description,
                "group": c.group,
                "status": "available" if status is None else status,
                "reason": reason,
            }
        )
        for w in workloads:
            cell = CellResult(c.name, w.name)
            if status is not None:
                cell.status, cell.reason = status, reason
            else:
                na = c.supports(link_spec(w, settings.producers))
                if na is not None:
                    cell.status, cell.reason = NA, na
                elif settings.producers > 1 and not c.many_producers:
                    cell.status, cell.reason = NA, "n/a: one producer only"
            cells[(c.name, w.name)] = cell

    cells_total = sum(1 for cell in cells.values() if not cell.finished)
    cells_done = 0
    total = settings.rounds * cells_total
    done = 0
    for r in range(settings.rounds):
        shift = r % max(1, len(contenders))
        order = [*contenders[shift:], *contenders[:shift]]
        for w in workloads:
            for c in order:
                cell = cells[(c.name, w.name)]
                if cell.finished:
                    continue
                if progress is not None:
                    progress(done, total, f"round {r + 1}/{settings.rounds} {w.name} {c.name}")
                result: RoundResult = run_round(
                    c,
                    w,
                    placement=placement,
                    duration=settings.duration,
                    timeout=settings.timeout,
                    producers=settings.producers,
                )
                cell.add(result)
                done += 1
                if result.status != OK:  # a broken cell gets no more rounds
                    total -= settings.rounds - 1 - r
                if cell.finished or r == settings.rounds - 1:
                    cells_done += 1
                    if on_cell is not None:
                        on_cell(cell, w, cells_done, cells_total)
    if progress is not None:
        progress(done, total, "done")

    return BenchResult(
        settings={
            "rounds": settings.rounds,
            "duration_s": settings.duration,
            "timeout_s": settings.timeout,
            "quick": settings.quick,
            "baseline": settings.baseline,
            "producers": settings.producers,
            "start_method": START_METHOD,
            "placement": {
                "mode": placement.mode,
                "requested": settings.placement,
                "producer_cpu": placement.producer_cpu,
                "consumer_cpu": placement.consumer_cpu,
                "note": placement.note,
            },
        },
        machine=machine_info(),
        contenders=info,
        workloads=[
            {
                "name": w.name,
                "label": w.label,
                "kind": w.kind,
                "sizes": list(w.sizes),
                "primary_metric": w.primary,
            }
            for w in workloads
        ],
        cells=cells,
        started=started,
        seconds=time.monotonic() - t0,
    )
