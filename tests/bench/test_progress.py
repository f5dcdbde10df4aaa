"""Progress: a live bar on a terminal, one plain line per finished cell anywhere else."""

from __future__ import annotations

import io
import re
import subprocess
import sys

from ipckit._bench import command
from ipckit._bench.progress import Progress
from ipckit.cli import build_parser
from tests.bench.broken import RAW_PIPE, broken


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_live_bar_and_no_lines():
    tty = _Tty()
    bar = Progress(tty)
    bar(1, 4, "thru-64B raw-pipe")
    bar.cell_done(1, 2, "raw-pipe thru-64B: 1.00M msgs/s")
    assert "[######" in tty.getvalue() and "1/4" in tty.getvalue()
    assert "\n" not in tty.getvalue()  # redrawn in place, never scrolled
    bar.close()
    off = _Tty()
    Progress(off, enabled=False)(1, 4, "x")
    assert off.getvalue() == ""


def test_off_a_terminal_a_start_line_a_line_per_cell_and_a_heartbeat():
    log = io.StringIO()
    bar = Progress(log, heartbeat=0.0)
    bar(0, 4, "round 1/2 thru-64B raw-pipe")
    bar(1, 4, "round 1/2 thru-64B ipckit-pipe")
    bar.cell_done(1, 2, "raw-pipe thru-64B: 1.00M msgs/s")
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0] == "ipckit bench: 4 rounds to run; one line per finished cell"
    assert lines[1].startswith("ipckit bench: 1/4 rounds, ")
    assert lines[1].endswith("next: round 1/2 thru-64B ipckit-pipe")
    assert re.fullmatch(
        r"ipckit bench: \[1/2 cells, \d+ s\] raw-pipe thru-64B: 1.00M msgs/s", lines[2]
    )
    assert "\r" not in log.getvalue()
    quiet = io.StringIO()
    off = Progress(quiet, enabled=False)
    off(0, 4, "x")
    off.cell_done(1, 2, "y")
    assert quiet.getvalue() == ""


def test_the_heartbeat_is_rate_limited():
    log = io.StringIO()
    bar = Progress(log, heartbeat=3600.0)
    for done in range(50):
        bar(done, 50, "next")
    assert len(log.getvalue().splitlines()) == 1  # only the start line


def test_the_cli_prints_one_line_per_finished_cell_when_stderr_is_a_pipe():
    argv = [
        "bench",
        "--rounds",
        "2",
        "--duration",
        "0.01",
        "--placement",
        "none",
        "--only",
        "raw-pipe,ipckit-pipe,thru-64B,pingpong-64B",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "ipckit", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "ipckit bench: 8 rounds to run; one line per finished cell"
    cells = [ln for ln in lines if "cells, " in ln]
    assert len(cells) == 4, proc.stderr
    seen = set()
    for i, line in enumerate(cells, 1):
        m = re.fullmatch(rf"ipckit bench: \[{i}/4 cells, \d+ s\] (\S+) (\S+): (.*)", line)
        assert m, line
        seen.add((m[1], m[2]))
        assert re.search(r"msgs/s|p50 us", m[3]), line
    assert seen == {
        (c, w) for c in ("raw-pipe", "ipckit-pipe") for w in ("thru-64B", "pingpong-64B")
    }
    assert "\r" not in proc.stderr
    assert "throughput, 64-byte messages" in proc.stdout  # the table still goes to stdout


def test_a_failed_cell_gets_its_line_as_soon_as_it_fails(capsys):
    argv = ["--rounds", "3", "--duration", "0.01", "--placement", "none", "--only", "thru-64B"]
    args = build_parser().parse_args(["bench", *argv])
    assert command.run(args, contenders=[RAW_PIPE, broken("flip")]) == 1
    lines = capsys.readouterr().err.splitlines()  # captured: not a terminal
    cells = [ln for ln in lines if "cells, " in ln]
    assert len(cells) == 2
    assert "[1/2 cells" in cells[0] and "broken-flip thru-64B: FAIL: message #5" in cells[0]
    assert "[2/2 cells" in cells[1] and "raw-pipe thru-64B:" in cells[1]
