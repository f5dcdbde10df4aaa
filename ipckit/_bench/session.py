"""A whole bench run: probe the contenders, then run rounds interleaved across them.

Round ``r`` runs every cell once before round ``r + 1`` starts, and the order of
the contenders rotates from one round to the next, so a slow minute on a shared
machine (other work, a noisy neighbour, thermal limits) spreads over everyone
instead of landing on one contender. Each cell reports the median of its rounds.

A workload that names its contenders (the many-producer ones) gets cells for
those only; every other pair gets a cell, "n/a" where the contender cannot carry
that workload (one producer only, bytes only, ...).
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
from ipckit._bench.workloads import AUTO, Workload, baseline_of

__all__ = ["AUTO", "CellFn", "ProgressFn", "Settings", "baseline_of", "run_bench"]

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
    #: ``auto``: each workload's own; a contender's name: that one everywhere; None: no ratios.
    baseline: str | None = AUTO
    quick: bool = False
    producers: int = 1


def _not_applicable(contender: Contender, workload: Workload, producers: int) -> str | None:
    """Why ``contender`` does not run ``workload``, or None."""
    spec = link_spec(workload, producers)
    na = contender.supports(spec)
    if na is not None:
        return na
    if spec.producers > 1 and not contender.many_producers:
        return "n/a: one producer only"
    if spec.consumers > 1 and not contender.many_consumers:
        return "n/a: one consumer only"
    if spec.objects and not contender.objects:
        return "n/a: carries bytes, not Python objects"
    if spec.objects and spec.producers > 1:
        return "n/a: dicts go from one producer to one consumer"
    return None


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
            if w.contenders is not None and c.name not in w.contenders:
                continue
            cell = CellResult(c.name, w.name, baseline=baseline_of(settings.baseline, w, c.batch))
            if status is not None:
                cell.status, cell.reason = status, reason
            else:
                na = _not_applicable(c, w, settings.producers)
                if na is not None:
                    cell.status, cell.reason = NA, na
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
                found = cells.get((c.name, w.name))
                if found is None or found.finished:
                    continue
                cell = found
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
                "payload": w.payload,
                "producers": w.producer_count(settings.producers),
                "consumers": w.consumers,
                "messages": w.messages,
                "baseline": baseline_of(settings.baseline, w),
                "batch_baseline": baseline_of(settings.baseline, w, batch=2),
            }
            for w in workloads
        ],
        cells=cells,
        started=started,
        seconds=time.monotonic() - t0,
    )
