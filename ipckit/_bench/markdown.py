"""The results as Markdown tables (``--markdown FILE``), rendered from the JSON report.

Rendering from the JSON document (:func:`ipckit._bench.jsonreport.to_json`) means a
live run and a saved ``--json`` file give the same tables. The tables go between
two marker comments, so a page of prose such as ``docs/benchmarks.md`` keeps its
text and only its generated part is replaced; a new file gets just the block.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from ipckit._bench.contender import Unit
from ipckit._bench.report import COLUMNS, describe_unit, human, row_name
from ipckit._bench.workloads import AUTO

__all__ = ["BEGIN", "END", "MarkdownTargetError", "check_target", "to_markdown", "write_markdown"]

BEGIN = "<!-- ipckit bench --markdown: begin; generated, re-run the command to change it -->"
END = "<!-- ipckit bench --markdown: end -->"


class MarkdownTargetError(ValueError):
    """The ``--markdown`` file exists but has no place for the tables (no markers)."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _when(started: str) -> str:
    try:
        moment = datetime.fromisoformat(started).astimezone(UTC)
    except ValueError:
        return started
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _settings_line(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    m = doc["machine"]
    quick = " (`--quick`)" if s.get("quick") else ""
    base = s.get("baseline")
    if base == AUTO:
        against = "each table's ratios against the baseline named in its header, above 1 is better"
    else:
        against = f"ratio against `{base}`, above 1 is better" if base else "no ratios"
    impl = f" ({m['implementation']})" if m.get("implementation") else ""
    lines = [
        f"Measured by `ipckit bench`{quick} on {_when(doc['started'])}, "
        f"{doc['seconds']:.0f} s in all: "
        f"{s['rounds']} rounds x {s['duration_s']:g} s per cell, the median and the spread "
        f"(lowest-highest round), rounds interleaved; {against}.",
        f"Placement: {s['placement']['note']}; start method: {s['start_method']}.",
        f"Machine: {m['nproc']} CPUs usable, {m['cpu_model']}, {m['kernel']}, {m['python']}, "
        f"ipckit {m['ipckit']}{impl}.",
    ]
    if s.get("producers", 1) > 1:
        lines.append(f"Producers: {s['producers']} -> 1 consumer.")
    return "\n".join(lines)


def _status_note(result: dict[str, Any]) -> tuple[str, str]:
    status = result["status"]
    reason = result["reason"] or ""
    if status == "n/a" and reason.startswith("n/a: "):
        reason = reason[len("n/a: ") :]
    return status, reason


def _table_baseline(doc: dict[str, Any], workload: dict[str, Any]) -> str | None:
    """The contender a table's ratio column is against (version 1: the run's one baseline)."""
    if "baseline" in workload:
        base: str | None = workload["baseline"]
        return base
    setting: str | None = doc["settings"].get("baseline")
    return setting


def to_markdown(doc: dict[str, Any]) -> str:
    """The tables of a JSON report (one per workload) and how they were measured."""
    order = [c["name"] for c in doc["contenders"]]
    by_key = {(r["contender"], r["workload"]): r for r in doc["results"]}
    out = [_settings_line(doc)]
    any_oob = False
    any_impl = False
    for w in doc["workloads"]:
        (m1, t1), (m2, t2) = COLUMNS[w["primary_metric"]]
        base = _table_baseline(doc, w)
        ratio_title = f"vs {base}" if base else "ratio"
        out += [
            "",
            f"**{w['label']}**",
            "",
            f"| contender | {t1} | spread | {t2} | {ratio_title} | note |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for name in order:
            r = by_key.get((name, w["name"]))
            if r is None:
                continue
            impl = r.get("implementation")
            any_impl = any_impl or impl is not None
            label = _cell(row_name(name, impl))
            if r["status"] != "ok" or m1 not in r["metrics"] or m2 not in r["metrics"]:
                status, reason = _status_note(r)
                out.append(f"| {label} | {_cell(status)} | | | | {_cell(reason)} |")
                continue
            one, two = r["metrics"][m1], r["metrics"][m2]
            spread = f"{human(one['min'], m1)}-{human(one['max'], m1)}"
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            notes = []
            own = r.get("baseline", base)
            if r["ratio"] is not None and own != base:
                notes.append(f"ratio vs {own}")
            unit = r.get("unit")
            if unit is not None:
                oob = describe_unit(Unit(unit["inline_max"], unit["what"]), tuple(w["sizes"]))
                if oob is not None:
                    any_oob = True
                    notes.append(oob)
            out.append(
                f"| {label} | {human(one['median'], m1)} | {spread} | {human(two['median'], m2)} "
                f"| {ratio} | {_cell('; '.join(notes))} |"
            )
    footer = []
    if any_impl:
        footer.append(
            "(native) and (pure) say which code an ipckit row's handles ran: the C core or the "
            "pure-Python reference (`ipckit._accel.native` when each end opened)."
        )
    if any_oob:
        footer.append(
            "Out of band: a message over the transport's native unit travels through a one-off "
            "shared-memory block, and only a small reference goes through the unit."
        )
    if any(w["kind"] == "pingpong" for w in doc["workloads"]):
        footer.append(
            "Ping-pong figures are round trips (send, echo back, receive) in microseconds."
        )
    if footer:
        out += ["", " ".join(footer)]
    return "\n".join(out)


def check_target(path: str) -> None:
    """Fail before measuring if ``path`` exists but has no markers to put the tables between."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        text = f.read()
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        raise MarkdownTargetError(
            f"--markdown {path}: the file exists and has no generated block; add the two lines "
            f"{BEGIN!r} and {END!r} where the tables go, or give a new file"
        )


def write_markdown(path: str, block: str) -> None:
    """Put ``block`` between the markers of ``path``, or write a new file holding only it."""
    check_target(path)
    fenced = f"{BEGIN}\n\n{block}\n\n{END}"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        head = text[: text.find(BEGIN)]
        tail = text[text.find(END) + len(END) :]
        text = head + fenced + tail
    else:
        text = fenced + "\n"
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
