"""Run a program as a reader would, bounded: the one runner of the example and snippet tests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest


def run_bounded(args: list[str], cwd: Path, timeout: float, what: str) -> tuple[int, str, str]:
    """Run ``args`` in its own session; return ``(pid, stdout, stderr)`` or fail on a timeout.

    On a timeout the whole session (the program and anything it started) is killed.
    """
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{what} did not finish in {timeout} s\n{out}\n{err}")
    if proc.returncode != 0:
        pytest.fail(f"{what} exited {proc.returncode}\n{out}\n{err}")
    return proc.pid, out, err
