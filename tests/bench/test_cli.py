"""``ipckit bench`` arguments: filters, baseline, outputs, placement, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ipckit._bench.command import UsageError, select
from ipckit.cli import build_parser, main

CONTENDERS = ["raw-pipe", "raw-unix", "ipckit-shm", "ipckit-shm-batch", "zmq"]
WORKLOADS = ["thru-64B", "thru-4KiB", "pingpong-64B"]


def _bench_args(*argv: str):
    return build_parser().parse_args(["bench", *argv])


def test_defaults():
    args = _bench_args()
    assert args.command == "bench"
    assert args.baseline == "auto"
    assert args.placement == "cross"
    assert args.only == [] and args.skip == []
    assert args.json is None and args.plot is None
    assert not args.quick and not args.no_progress


def test_every_option_parses():
    args = _bench_args(
        "--quick",
        "--rounds",
        "7",
        "--duration",
        "0.2",
        "--timeout",
        "9",
        "--placement",
        "same",
        "--only",
        "raw-*",
        "--only",
        "thru-64B",
        "--skip",
        "raw-unix",
        "--baseline",
        "raw-unix",
        "--json",
        "out.json",
        "--plot",
        "out.png",
        "--no-progress",
    )
    assert (args.rounds, args.duration, args.timeout) == (7, 0.2, 9.0)
    assert args.placement == "same"
    assert args.only == ["raw-*", "thru-64B"]
    assert args.skip == ["raw-unix"]
    assert args.baseline == "raw-unix"
    assert (args.json, args.plot) == ("out.json", "out.png")


@pytest.mark.parametrize(
    "argv",
    [
        ["--placement", "diagonal"],
        ["--rounds", "0"],
        ["--rounds", "many"],
        ["--duration", "-1"],
        ["--duration", "nan"],
        ["--timeout", "0"],
        ["--bogus"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert "usage: ipckit" in err
    assert "error:" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--only", "no-such-thing"], "matches no contender or workload"),
        (["--skip", "nope*"], "matches no contender or workload"),
        (["--baseline", "nope"], "is not a contender"),
        (["--baseline", "raw-unix", "--skip", "raw-unix"], "also in --skip"),
        (["--json", "/no/such/dir/out.json"], "directory does not exist"),
        (["--skip", "thru-*,bw-*,pingpong-*,small-*,many-*"], "no workload"),
    ],
)
def test_bad_combinations_exit_2_before_measuring(argv, needle, capsys):
    assert main(["bench", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "ipckit bench: error:" in err


def test_missing_command_and_help(capsys):
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--baseline" in out and "--placement" in out


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    assert main(["bench", "--no-progress", "--plot", "x.png"]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err


def test_select_only_and_skip_by_name_and_pattern():
    assert select(CONTENDERS, WORKLOADS, ["raw-pipe"], []) == (["raw-pipe"], WORKLOADS)
    assert select(CONTENDERS, WORKLOADS, ["ipckit-*,thru-64B"], []) == (
        ["ipckit-shm", "ipckit-shm-batch"],
        ["thru-64B"],
    )
    assert select(CONTENDERS, WORKLOADS, [], ["zmq", "pingpong-*"]) == (
        ["raw-pipe", "raw-unix", "ipckit-shm", "ipckit-shm-batch"],
        ["thru-64B", "thru-4KiB"],
    )
    assert select(CONTENDERS, WORKLOADS, ["raw-*"], ["raw-unix"])[0] == ["raw-pipe"]


def test_select_errors():
    with pytest.raises(UsageError, match="matches no contender"):
        select(CONTENDERS, WORKLOADS, ["nothing"], [])
    with pytest.raises(UsageError, match="no contender"):
        select(CONTENDERS, WORKLOADS, ["raw-pipe"], ["raw-pipe"])


def test_list_shows_every_contender_and_workload(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in [
        "raw-pipe",
        "raw-unix",
        "raw-mq",
        "mp-queue",
        "mp-pipe",
        "faster-fifo",
        "zmq",
        "ipckit-pipe",
        "ipckit-shm",
        "ipckit-tcp",
        "thru-64B",
        "pingpong-64B",
    ]:
        assert name in out


def test_python_dash_m_ipckit_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "ipckit", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: ipckit bench" in proc.stdout
