"""Named kill points on every backend, with the survivors' recovery time.

CI runs 3 trials per point; ``--run-slow`` runs 50 and, with ``IPCKIT_FIGURES=FILE``,
appends each point's recovery p50 and p99 to FILE (docs/reliability.md shows them).
``shm://``'s own points (both locks, mid-copy, reserved but not committed, after
taking, asleep) run the same way through tests/shm/_workers.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.faults._killpoints import QUEUE_POINTS, trial
from tests.shm import _workers
from tests.shm.test_shm import _trial as shm_trial

CASES = [
    *[("shm", p) for p in _workers.KILL_POINTS],
    *[(b, p) for b in ("mq", "fifo") for p in QUEUE_POINTS],
    *[(b, "mid_frame") for b in ("pipe", "unix", "tcp")],
    *[(b, "mid_handshake") for b in ("unix", "tcp")],
]


def _run(backend: str, point: str, trials: int, tmp_path: Path) -> list[float]:
    times = []
    for i in range(trials):
        if backend == "shm":
            from ipckit.testing import unique_name

            times.append(shm_trial(f"shm://{unique_name('kp')}", point))
        else:
            sub = tmp_path / str(i)
            sub.mkdir()
            times.append(trial(backend, point, sub))
    return sorted(times)


@pytest.mark.parametrize(("backend", "point"), CASES)
def test_survivors_go_on(backend: str, point: str, tmp_path: Path) -> None:
    assert max(_run(backend, point, 3, tmp_path)) < 10


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "point"), CASES)
def test_survivors_go_on_50_trials(backend: str, point: str, tmp_path: Path) -> None:
    times = _run(backend, point, 50, tmp_path)
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99) - 1]
    out = os.environ.get("IPCKIT_FIGURES")
    if out:
        with open(out, "a") as f:
            row = {
                "kind": "killpoint",
                "backend": backend,
                "point": point,
                "trials": len(times),
                "survived": len(times),
                "p50_ms": round(p50 * 1e3, 2),
                "p99_ms": round(p99 * 1e3, 2),
            }
            f.write(json.dumps(row) + "\n")
    assert p99 < 10
