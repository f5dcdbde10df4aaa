"""Tiny real runs of ``ipckit bench``: table, JSON against its schema, plot, broken rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ipckit._bench import command
from ipckit._bench.jsonreport import check, load_schema
from ipckit.cli import build_parser, main
from tests.bench.broken import RAW_PIPE, broken, unavailable

TINY = ["--rounds", "2", "--duration", "0.01", "--no-progress", "--placement", "none"]


def _validate(doc):
    assert check(doc) == []
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(doc, load_schema())


def test_quick_like_run_prints_the_table_and_valid_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", *TINY, "--only", "raw-pipe,thru-64B,pingpong-64B", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "placement: none" in text
    assert "start method: fork" in text
    assert "throughput, 64-byte messages" in text
    assert "raw-pipe" in text and "1.00x" in text
    doc = json.loads(out.read_text())
    _validate(doc)
    assert doc["settings"]["placement"]["mode"] == "none"
    [cell] = [c for c in doc["results"] if c["workload"] == "thru-64B"]
    assert cell["status"] == "ok"
    assert cell["metrics"]["msgs_per_s"]["n"] == 2
    assert cell["ratio"] == pytest.approx(1.0)


def test_broken_and_missing_contenders_show_in_the_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = build_parser().parse_args(
        ["bench", *TINY, "--only", "thru-64B", "--json", str(out), "--placement", "cross"]
    )
    status = command.run(args, contenders=[RAW_PIPE, broken("flip"), unavailable()])
    assert status == 1  # a failed check is not a clean run
    text = capsys.readouterr().out
    assert "broken-flip" in text and "FAIL: message #5" in text
    assert "not-here" in text and "skipped (not installed)" in text
    doc = json.loads(out.read_text())
    _validate(doc)
    by_name = {c["contender"]: c for c in doc["results"]}
    assert by_name["broken-flip"]["status"] == "FAIL"
    assert by_name["broken-flip"]["metrics"] == {}
    assert by_name["broken-flip"]["ratio"] is None
    assert len(by_name["broken-flip"]["rounds"]) == 1  # no more rounds once it failed
    assert by_name["not-here"]["status"] == "skipped"


def test_baseline_is_added_when_filtered_out(capsys):
    args = build_parser().parse_args(["bench", *TINY, "--only", "broken-drop,thru-64B"])
    command.run(args, contenders=[RAW_PIPE, broken("drop")])
    text = capsys.readouterr().out
    assert "raw-pipe" in text and "FAIL" in text


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    argv = [
        "bench",
        *TINY,
        "--rounds",
        "1",
        "--only",
        "raw-pipe,thru-64B,pingpong-64B",
        "--plot",
        str(png),
    ]
    # In a child: matplotlib keeps its font files open for the life of the process.
    proc = subprocess.run(
        [sys.executable, "-m", "ipckit", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_schema_checker_rejects_bad_documents():
    assert check({"format": "nope"})  # missing keys and a wrong constant
    doc = {
        "format": "ipckit-bench",
        "version": 1,
        "started": "x",
        "seconds": -1,
        "settings": {},
        "machine": {},
        "contenders": [],
        "workloads": [],
        "results": [{}],
    }
    problems = check(doc)
    assert any("minimum" in p for p in problems)
    assert any("results[0]" in p for p in problems)


def test_ipckit_named_backends_run_and_leave_nothing_behind(capsys):
    # Whatever backends exist: each is measured or listed as skipped; the leak
    # fixture then checks that no segment, queue or descriptor was left behind.
    argv = ["bench", *TINY, "--rounds", "1", "--only", "ipckit-*,thru-64B,pingpong-64B"]
    status = main(argv)
    text = capsys.readouterr().out
    assert status == 0, text
    for name in ("ipckit-pipe", "ipckit-shm", "ipckit-mq", "ipckit-fifo", "ipckit-unix"):
        assert name in text


def test_the_new_workloads_in_a_real_run_give_valid_json_and_tables(tmp_path):
    js = tmp_path / "run.json"
    md = tmp_path / "run.md"
    argv = ["--rounds", "1", "--duration", "0.01", "--no-progress", "--placement", "none"]
    argv += ["--only", "ipckit-shm,ipckit-shm-pure,ipckit-shm-batch", "--only", "small-dict"]
    argv += ["--only", "many-10x1,bw-16MiB", "--json", str(js), "--markdown", str(md)]
    # In a child: faster-fifo's queue keeps a shared-memory arena open in the process.
    proc = subprocess.run(
        [sys.executable, "-m", "ipckit", "bench", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(js.read_text())
    _validate(doc)
    assert doc["version"] == 2 and doc["settings"]["baseline"] == "auto"
    # The baselines were added to the run: mp-queue, raw-memcpy, faster-fifo(-batch).
    ran = [c["name"] for c in doc["contenders"]]
    assert {"mp-queue", "raw-memcpy", "faster-fifo", "faster-fifo-batch"} <= set(ran)
    work = {w["name"]: w for w in doc["workloads"]}
    assert work["small-dict"]["payload"] == "dict" and work["small-dict"]["baseline"] == "mp-queue"
    assert (work["many-10x1"]["producers"], work["many-10x1"]["consumers"]) == (10, 1)
    assert work["many-10x1"]["batch_baseline"] == "faster-fifo-batch"
    assert work["bw-16MiB"]["baseline"] == "raw-memcpy"
    cells = {(r["contender"], r["workload"]): r for r in doc["results"]}
    # Peers not installed (CI installs only the test extra) are skipped, never failed.
    assert all(r["status"] in ("ok", "n/a", "skipped") for r in cells.values()), cells
    native = doc["machine"]["implementation"].startswith("native")
    for wl in ("small-dict", "many-10x1"):
        assert cells[("ipckit-shm", wl)]["implementation"] == ("native" if native else "pure")
        assert cells[("ipckit-shm-pure", wl)]["implementation"] == "pure"
        # A ratio exists exactly when the table's baseline ran (faster-fifo is an extra).
        baseline = cells.get((work[wl]["baseline"], wl), {}).get("status")
        if baseline == "ok":
            assert cells[("ipckit-shm", wl)]["ratio"] > 0
        else:
            assert cells[("ipckit-shm", wl)]["ratio"] is None
        assert cells[("mp-queue", wl)]["implementation"] is None
    assert cells[("ipckit-shm-batch", "many-10x1")]["baseline"] == "faster-fifo-batch"
    assert cells[("ipckit-shm", "bw-16MiB")]["baseline"] == "raw-memcpy"
    assert cells[("raw-memcpy", "bw-16MiB")]["ratio"] == pytest.approx(1.0)
    assert ("mp-pipe", "many-10x1") not in cells  # not part of that comparison
    text = md.read_text()
    assert (
        "| vs mp-queue |" in text and "| vs faster-fifo |" in text and "| vs raw-memcpy |" in text
    )
    assert "| ipckit-shm-pure (pure) |" in text
    if cells.get(("faster-fifo-batch", "many-10x1"), {}).get("status") == "ok":
        assert "ratio vs faster-fifo-batch" in text
