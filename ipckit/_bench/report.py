"""The human-readable table: one block per workload, one row per contender.

Each figure is the median of the rounds, followed by the spread (min-max over the
rounds) and a ratio against the row's baseline (each workload's own unless
``--baseline`` names one; a batch row may have another, said next to its ratio).
The ratio is oriented so that above 1 is always better than the baseline: rate /
baseline rate for throughput, baseline latency / latency for ping-pong. An ipckit
row says whether its handles ran the C core or the pure-Python code: "ipckit-shm
(native)". Plain ASCII, so it pastes anywhere.
"""

from __future__ import annotations

from ipckit._bench.contender import Unit
from ipckit._bench.results import OK, BenchResult, CellResult, out_of_band
from ipckit._bench.workloads import AUTO, PINGPONG, Workload, baseline_of

__all__ = [
    "COLUMNS",
    "OOB_LEGEND",
    "cell_line",
    "describe_unit",
    "baseline_cell",
    "format_table",
    "human",
    "row_name",
    "ratio",
    "unit_note",
]

#: (metric, column title) of the two figure columns, by the workload's primary metric.
COLUMNS = {
    "msgs_per_s": (("msgs_per_s", "msgs/s"), ("mb_per_s", "MB/s")),
    "gb_per_s": (("gb_per_s", "GB/s"), ("msgs_per_s", "msgs/s")),
    "p50_us": (("p50_us", "p50 us"), ("p99_us", "p99 us")),
}


def human(value: float, metric: str) -> str:
    """A figure in a few significant digits, with k/M suffixes for message rates."""
    if metric == "msgs_per_s":
        if value >= 1e6:
            return f"{value / 1e6:.2f}M"
        if value >= 1e4:
            return f"{value / 1e3:.0f}k"
        if value >= 1e3:
            return f"{value / 1e3:.1f}k"
        return f"{value:.1f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(cell: CellResult, base: CellResult | None, workload: Workload) -> float | None:
    """The cell against the baseline (above 1 is better), or None if either has no figure."""
    if base is None:
        return None
    mine = cell.summary(workload.primary)
    theirs = base.summary(workload.primary)
    if mine is None or theirs is None or mine.median <= 0 or theirs.median <= 0:
        return None
    if workload.higher_is_better:
        return mine.median / theirs.median
    return theirs.median / mine.median


def baseline_cell(result: BenchResult, cell: CellResult) -> CellResult | None:
    """The cell ``cell`` is compared with, if that contender ran this workload."""
    if cell.baseline is None:
        return None
    return result.cells.get((cell.baseline, cell.workload))


def row_name(name: str, implementation: str | None) -> str:
    """A row's label: the contender, and for ipckit rows the code path that ran."""
    return name if implementation is None else f"{name} ({implementation})"


def describe_unit(unit: Unit | None, sizes: tuple[int, ...]) -> str | None:
    """Say that messages of these sizes are over the transport's native unit, or ``None``."""
    over = out_of_band(unit, sizes)
    if unit is None or over in (None, "none"):
        return None
    which = "every message is" if over == "all" else "some messages are"
    return f"{which} out of band (over the {unit.inline_max} payload bytes {unit.what} carries)"


def unit_note(cell: CellResult, workload: Workload) -> str | None:
    """Why a row may fall off a cliff: its messages are over the transport's native unit.

    ``None`` when every message fits in one unit, or the transport has none.
    """
    return describe_unit(cell.unit, workload.sizes)


#: Printed once under the table when any row has a :func:`unit_note`.
OOB_LEGEND = (
    "* out of band: a message over the transport's native unit travels through a one-off "
    "shared-memory block (docs/backends.md)"
)


def _status_text(cell: CellResult) -> str:
    reason = cell.reason or ""
    if cell.status in ("skipped",):
        return f"skipped ({reason})" if reason else "skipped"
    if cell.status == "n/a":
        return reason if reason.startswith("n/a") else f"n/a: {reason}"
    return f"{cell.status}: {reason}"


def cell_line(cell: CellResult, workload: Workload) -> str:
    """One cell's result on one line, for progress logs: its figures, or why it has none."""
    head = f"{cell.contender} {workload.name}:"
    if cell.status != OK:
        return f"{head} {_status_text(cell)}"
    (m1, t1), (m2, t2) = COLUMNS[workload.primary]
    one = cell.summary(m1)
    two = cell.summary(m2)
    if one is None or two is None:
        return f"{head} no figures"
    oob = ", out of band" if unit_note(cell, workload) is not None else ""
    return (
        f"{head} {human(one.median, m1)} {t1} ({human(one.min, m1)}-{human(one.max, m1)}), "
        f"{human(two.median, m2)} {t2}{oob}"
    )


def format_table(result: BenchResult, workloads: list[Workload], width: int = 100) -> str:
    """The whole report: a header saying how it was measured, then a block per workload."""
    s = result.settings
    m = result.machine
    setting = s.get("baseline")
    against = "each table's baseline" if setting == AUTO else setting or "(none)"
    names = [c["name"] for c in result.contenders]
    impl = f" ({m['implementation']})" if m.get("implementation") else ""
    lines = [
        f"ipckit bench: {s['rounds']} rounds x {s['duration_s']:g} s per cell, "
        f"median (min-max), rounds interleaved; ratio vs {against}, >1 = better",
        f"placement: {s['placement']['note']}; start method: {s['start_method']}",
        f"machine: {m['nproc']} CPUs usable, {m['cpu_model']}, {m['kernel']}, {m['python']}, "
        f"ipckit {m['ipckit']}{impl}",
    ]
    if s.get("producers", 1) > 1:
        lines.append(f"producers: {s['producers']} -> 1 consumer")
    labels = {key: row_name(key[0], cell.implementation) for key, cell in result.cells.items()}
    name_w = max([len(n) for n in labels.values()] + [9])
    for w in workloads:
        (m1, t1), (m2, t2) = COLUMNS[w.primary]
        base_name = baseline_of(setting, w)
        ratio_w = max(12, len(base_name or "") + 4)
        lines += ["", w.label]
        header = (
            f"  {'contender':<{name_w}}  {t1:>9}  {'spread':>17}  {t2:>9}  "
            f"{'vs ' + (base_name or '-'):>{ratio_w}}"
        )
        lines.append(header)
        notes: list[str] = []
        for name in names:
            cell = result.cells.get((name, w.name))
            if cell is None:
                continue
            label = labels[(name, w.name)]
            if cell.status != OK:
                text = _status_text(cell)
                avail = width - name_w - 4
                if len(text) > avail > 10:
                    text = text[: avail - 3] + "..."
                lines.append(f"  {label:<{name_w}}  {text}")
                continue
            one = cell.summary(m1)
            two = cell.summary(m2)
            if one is None or two is None:
                continue
            spread = f"{human(one.min, m1)}-{human(one.max, m1)}"
            r = ratio(cell, baseline_cell(result, cell), w)
            r_text = "-" if r is None else f"{r:.2f}x"
            other = (
                f"  (vs {cell.baseline})" if cell.baseline != base_name and r is not None else ""
            )
            note = unit_note(cell, w)
            if note is not None:
                notes.append(f"  * {name}: {note}")
            lines.append(
                f"  {label:<{name_w}}  {human(one.median, m1):>9}  {spread:>17}  "
                f"{human(two.median, m2):>9}  {r_text:>{ratio_w}}"
                + other
                + ("  *" if note is not None else "")
            )
        lines += notes
    if any(line.startswith("  * ") for line in lines):
        lines += ["", OOB_LEGEND]
    if any(w.kind == PINGPONG for w in workloads):
        lines += [
            "",
            "ping-pong figures are round trips (send, echo back, receive) in microseconds.",
        ]
    lines.append(f"total {result.seconds:.0f} s")
    return "\n".join(lines)
