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
