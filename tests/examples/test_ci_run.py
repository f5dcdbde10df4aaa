"""``.ci/run`` removes the throwaway venv it makes, and keeps one the caller names.

The real run takes minutes, so these stop it right after it made the venv: a
``python3`` first on ``PATH`` creates the directory, records where, and fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3" && echo made > "$3/marker" && echo "$3" > "$RECORD"
fi
exit 3
"""


def _run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "python3"
    fake.write_text(_FAKE_PYTHON)
    fake.chmod(0o755)
    record = tmp_path / "venv-path"
    full_env = {
        **{k: v for k, v in os.environ.items() if k != "IPCKIT_CI_VENV"},
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "RECORD": str(record),
        "TMPDIR": str(tmp_path),
        **env,
    }
    proc = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run")],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert record.exists(), f".ci/run never made its venv\n{proc.stdout}\n{proc.stderr}"
    return proc, Path(record.read_text().strip())


def test_the_throwaway_venv_is_removed_even_when_the_run_fails(tmp_path: Path) -> None:
    proc, venv = _run(tmp_path)
    assert proc.returncode == 3  # the failure is passed on, not hidden by the clean-up
    assert venv.is_relative_to(tmp_path)
    assert not venv.exists() and not venv.parent.exists(), f"{venv} was left behind"
    assert "removed on exit" in proc.stdout


def test_a_venv_named_in_ipckit_ci_venv_is_kept(tmp_path: Path) -> None:
    keep = tmp_path / "keep" / "venv"
    proc, venv = _run(tmp_path, IPCKIT_CI_VENV=str(keep))
    assert proc.returncode == 3
    assert venv == keep
    assert (keep / "marker").read_text() == "made\n"
