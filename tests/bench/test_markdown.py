"""``--markdown``: the results as Markdown tables, out-of-band notes, and the docs' block."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ipckit._bench.jsonreport import check
from ipckit._bench.markdown import BEGIN, END, to_markdown, write_markdown
from ipckit.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--rounds", "1", "--duration", "0.01", "--no-progress", "--placement", "none"]


def _summary(median: float) -> dict[str, float | int]:
    return {"median": median, "min": median * 0.9, "max": median * 1.1, "q1": median,
            "q3": median, "n": 3}  # fmt: skip


def _doc() -> dict:
    """A small report in the --json format: an ok row, an out-of-band row, an n/a and a FAIL."""
    contenders = ["raw-pipe", "ipckit-fifo", "raw-mq", "broken"]
    thru = {"msgs_per_s": _summary(400e3), "mb_per_s": _summary(1600), "gb_per_s": _summary(1.6),
            "messages": _summary(2e4)}  # fmt: skip
    slow = {k: _summary(v["median"] / 16) for k, v in thru.items()}
    fifo_unit = {"inline_max": 4080, "what": "one 4096-byte FIFO packet",
                 "out_of_band": "all"}  # fmt: skip

    def row(name, status="ok", reason=None, *, ratio=None, metrics=None, unit=None):
        return {"contender": name, "workload": "thru-4KiB", "status": status, "reason": reason,
                "ratio": ratio, "metrics": metrics or {}, "unit": unit, "rounds": []}  # fmt: skip

    doc = {
        "format": "ipckit-bench",
        "version": 1,
        "started": "2026-11-24T03:00:05+00:00",
        "seconds": 31.4,
        "settings": {"rounds": 3, "duration_s": 0.05, "timeout_s": 30.0, "quick": True,
                     "baseline": "raw-pipe", "producers": 1, "start_method": "fork",
                     "placement": {"mode": "cross", "requested": "cross", "producer_cpu": 0,
                                   "consumer_cpu": 1,
                                   "note": "cross: producer on CPU 0, consumer on CPU 1"}},
        "machine": {"nproc": 2, "cpu_count": 2, "cpu_model": "AMD EPYC", "kernel": "Linux 6.18",
                    "python": "CPython 3.11.7", "ipckit": "0.1.0"},
        "contenders": [{"name": n, "description": n, "group": "raw", "status": "available",
                        "reason": None} for n in contenders],
        "workloads": [{"name": "thru-4KiB", "label": "throughput, 4 KiB messages",
                       "kind": "throughput", "sizes": [4096], "primary_metric": "msgs_per_s"}],
        "results": [
            row("raw-pipe", ratio=1.0, metrics=thru),
            row("ipckit-fifo", ratio=1 / 16, metrics=slow, unit=fifo_unit),
            row("raw-mq", "n/a", "n/a: message > 8192 B (fs.mqueue.msgsize_max)"),
            row("broken", "FAIL", "message #5: byte 32 | of 64 differs"),
        ],
    }  # fmt: skip
    assert check(doc) == []
    return doc


def test_the_tables_show_figures_ratios_notes_and_why_a_row_has_none():
    text = to_markdown(_doc())
    assert "Measured by `ipckit bench` (`--quick`) on 2026-11-24 03:00 UTC, 31 s in all" in text
    assert "3 rounds x 0.05 s per cell" in text and "ratio against `raw-pipe`" in text
    assert "Placement: cross: producer on CPU 0, consumer on CPU 1; start method: fork." in text
    assert "**throughput, 4 KiB messages**" in text
    assert "| contender | msgs/s | spread | MB/s | vs raw-pipe | note |" in text
    assert "| raw-pipe | 400k | 360k-440k | 1600 | 1.00x |  |" in text
    [fifo] = [ln for ln in text.splitlines() if ln.startswith("| ipckit-fifo ")]
    assert fifo.startswith("| ipckit-fifo | 25k | 22k-28k | 100 | 0.06x | ")
    assert "every message is out of band (over the 4080 payload bytes one 4096-byte FIFO" in fifo
    assert "| raw-mq | n/a | | | | message > 8192 B (fs.mqueue.msgsize_max) |" in text
    assert "| broken | FAIL | | | | message #5: byte 32 \\| of 64 differs |" in text  # escaped
    assert "Out of band: a message over the transport's native unit" in text
    for line in text.splitlines():
        if line.startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 7, line  # six columns on every row


def test_no_note_when_every_message_fits_its_unit():
    doc = _doc()
    fifo = doc["results"][1]
    fifo["unit"] = {**fifo["unit"], "inline_max": 8176, "what": "one 8192-byte queue message"}
    text = to_markdown(doc)
    assert "out of band" not in text.lower()


def _doc_v2() -> dict:
    """A version 2 report: per-table baselines, a batch baseline, native and pure rows."""
    doc = copy.deepcopy(_doc())
    doc["version"] = 2
    doc["settings"]["baseline"] = "auto"
    doc["machine"]["implementation"] = "native (C core)"
    rate = {
        k: _summary(v)
        for k, v in {
            "msgs_per_s": 200e3,
            "mb_per_s": 15.6,
            "gb_per_s": 0.0156,
            "messages": 1e4,
        }.items()
    }
    fast = {k: _summary(v["median"] * 4) for k, v in rate.items()}
    dict_w = {
        "name": "small-dict",
        "label": "small dict send/recv",
        "kind": "throughput",
        "sizes": [78],
        "primary_metric": "msgs_per_s",
        "payload": "dict",
        "producers": 1,
        "consumers": 1,
        "messages": None,
        "baseline": "mp-queue",
        "batch_baseline": "mp-queue",
    }
    many_w = {
        "name": "many-20x3",
        "label": "20 producers x 3 consumers",
        "kind": "throughput",
        "sizes": [64],
        "primary_metric": "msgs_per_s",
        "payload": "bytes",
        "producers": 20,
        "consumers": 3,
        "messages": 2500,
        "baseline": "faster-fifo",
        "batch_baseline": "faster-fifo-batch",
    }
    doc["workloads"] = [dict_w, many_w]
    names = [
        "mp-queue",
        "faster-fifo",
        "faster-fifo-batch",
        "ipckit-shm",
        "ipckit-shm-pure",
        "ipckit-shm-batch",
        "raw-pipe",
    ]
    doc["contenders"] = [
        {"name": n, "description": n, "group": "peer", "status": "available", "reason": None}
        for n in names
    ]

    def row(name, wl, base, *, ratio=None, metrics=None, impl=None, status="ok", reason=None):
        return {
            "contender": name,
            "workload": wl,
            "status": status,
            "reason": reason,
            "ratio": ratio,
            "baseline": base,
            "implementation": impl,
            "metrics": metrics or {},
            "unit": None,
            "rounds": [],
        }

    doc["results"] = [
        row("mp-queue", "small-dict", "mp-queue", ratio=1.0, metrics=rate),
        row("ipckit-shm", "small-dict", "mp-queue", ratio=4.0, metrics=fast, impl="native"),
        row("ipckit-shm-pure", "small-dict", "mp-queue", ratio=1.0, metrics=rate, impl="pure"),
        row("raw-pipe", "small-dict", "mp-queue", status="n/a",
            reason="n/a: carries bytes, not Python objects"),
        row("faster-fifo", "many-20x3", "faster-fifo", ratio=1.0, metrics=rate),
        row("faster-fifo-batch", "many-20x3", "faster-fifo-batch", ratio=1.0, metrics=fast),
        row("ipckit-shm", "many-20x3", "faster-fifo", ratio=4.0, metrics=fast, impl="native"),
        row("ipckit-shm-batch", "many-20x3", "faster-fifo-batch", ratio=1.0, metrics=fast,
            impl="mixed"),
    ]  # fmt: skip
    assert check(doc) == []
    return doc


def test_version_2_tables_have_their_own_baselines_and_say_native_or_pure():
    text = to_markdown(_doc_v2())
    assert "each table's ratios against the baseline named in its header" in text
    assert "ipckit 0.1.0 (native (C core))." in text
    assert "| contender | msgs/s | spread | MB/s | vs mp-queue | note |" in text
    assert "| contender | msgs/s | spread | MB/s | vs faster-fifo | note |" in text
    assert "| ipckit-shm (native) | 800k | 720k-880k | 62.4 | 4.00x |  |" in text
    assert "| ipckit-shm-pure (pure) | 200k | 180k-220k | 15.6 | 1.00x |  |" in text
    assert "| raw-pipe | n/a | | | | carries bytes, not Python objects |" in text
    assert (
        "| faster-fifo-batch | 800k | 720k-880k | 62.4 | 1.00x | ratio vs faster-fifo-batch |"
        in (text)
    )
    assert "| ipckit-shm-batch (mixed) | 800k |" in text
    assert "(native) and (pure) say which code an ipckit row's handles ran" in text
    # The many table lists only the rows it has: no empty row for mp-queue or raw-pipe.
    many = text[text.index("**20 producers x 3 consumers**") :]
    assert "| mp-queue |" not in many and "| raw-pipe |" not in many
    for line in text.splitlines():
        if line.startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 7, line


def test_a_version_1_report_renders_as_it_always_did():
    text = to_markdown(_doc())
    assert "(native)" not in text and "(pure)" not in text and "ratio vs" not in text
    assert "| contender | msgs/s | spread | MB/s | vs raw-pipe | note |" in text


def test_the_block_replaces_only_what_is_between_the_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nProse before.\n\n{BEGIN}\nold table\n{END}\n\nProse after.\n")
    write_markdown(str(page), "new table")
    assert page.read_text() == (
        f"# Title\n\nProse before.\n\n{BEGIN}\n\nnew table\n\n{END}\n\nProse after.\n"
    )
    write_markdown(str(page), "newer table")  # again: still one block
    assert page.read_text().count(BEGIN) == 1 and "newer table" in page.read_text()
    fresh = tmp_path / "fresh.md"
    write_markdown(str(fresh), "a table")
    assert fresh.read_text() == f"{BEGIN}\n\na table\n\n{END}\n"


def test_a_file_without_markers_is_refused_before_anything_is_measured(tmp_path, capsys):
    page = tmp_path / "notes.md"
    page.write_text("my own notes\n")
    assert main(["bench", *TINY, "--only", "raw-pipe,thru-64B", "--markdown", str(page)]) == 2
    err = capsys.readouterr().err
    assert "has no generated block" in err and BEGIN in err
    assert page.read_text() == "my own notes\n"
    assert main(["bench", "--markdown", str(tmp_path / "no" / "x.md")]) == 2
    assert "directory does not exist" in capsys.readouterr().err


def test_from_json_renders_a_saved_run_and_refuses_other_files(tmp_path, capsys):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(_doc()))
    out = tmp_path / "out.md"
    assert main(["bench", "--from-json", str(saved), "--markdown", str(out)]) == 0
    assert out.read_text() == f"{BEGIN}\n\n{to_markdown(_doc())}\n\n{END}\n"
    assert main(["bench", "--from-json", str(saved)]) == 2
    assert "give --markdown" in capsys.readouterr().err
    bad = copy.deepcopy(_doc())
    del bad["results"]
    saved.write_text(json.dumps(bad))
    assert main(["bench", "--from-json", str(saved), "--markdown", str(out)]) == 2
    assert "is not an ipckit bench --json report" in capsys.readouterr().err
    saved.write_text("{not json")
    assert main(["bench", "--from-json", str(saved), "--markdown", str(out)]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_a_real_run_marks_fifo_at_4kib_and_mq_at_1mib_as_out_of_band(tmp_path):
    out = tmp_path / "run.md"
    js = tmp_path / "run.json"
    argv = [*TINY, "--only", "raw-pipe,ipckit-fifo,ipckit-mq,ipckit-shm,ipckit-pipe"]
    argv += ["--only", "thru-64B,thru-4KiB,bw-1MiB", "--markdown", str(out), "--json", str(js)]
    proc = subprocess.run(
        [sys.executable, "-m", "ipckit", "bench", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(js.read_text())
    units = {(r["contender"], r["workload"]): r["unit"] for r in doc["results"]}
    assert units[("ipckit-fifo", "thru-4KiB")]["inline_max"] == 4080
    assert units[("ipckit-fifo", "thru-4KiB")]["out_of_band"] == "all"
    assert units[("ipckit-fifo", "thru-64B")]["out_of_band"] == "none"
    assert units[("ipckit-mq", "thru-4KiB")]["out_of_band"] == "none"
    assert units[("ipckit-mq", "bw-1MiB")]["out_of_band"] == "all"
    # shm sizes its ring for the workload, so 1 MiB stays inline; pipes have no unit.
    assert units[("ipckit-shm", "bw-1MiB")]["out_of_band"] == "none"
    assert units[("ipckit-pipe", "bw-1MiB")] is None
    notes = [ln for ln in proc.stdout.splitlines() if ln.startswith("  * ")]
    assert sorted(n.split(":")[0] for n in notes) == [
        "  * ipckit-fifo",  # thru-4KiB
        "  * ipckit-fifo",  # bw-1MiB
        "  * ipckit-mq",  # bw-1MiB
    ]
    rows = [ln for ln in out.read_text().splitlines() if "out of band (over" in ln]
    assert len(rows) == 3 and all(r.startswith(("| ipckit-fifo ", "| ipckit-mq ")) for r in rows)


def _block(text: str) -> str:
    begin, end = text.index(BEGIN), text.index(END)
    return text[begin + len(BEGIN) : end].strip("\n")


def test_the_docs_tables_are_rendered_from_the_run_committed_with_them():
    """docs/benchmarks.md's tables are exactly what --markdown makes of docs/bench-results.json.

    Regenerate both with the command docs/benchmarks.md gives; never edit the block by hand.
    """
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    doc = json.loads((ROOT / "docs" / "bench-results.json").read_text())
    assert check(doc) == []
    assert _block(page) == to_markdown(doc)
    assert "ipckit bench --quick --json docs/bench-results.json --markdown docs/benchmarks.md" in (
        page
    )


@pytest.mark.parametrize("name", ["backends.md", "index.md", "guide.md"])
def test_other_pages_quote_no_speed_table_of_their_own(name):
    text = (ROOT / "docs" / name).read_text()
    assert not re.search(r"^\|.*(msgs/s|GB/s|p50 us)", text, re.MULTILINE), (
        f"docs/{name} has its own speed table; link to benchmarks.md#results instead"
    )
