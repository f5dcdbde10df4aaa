"""Kill storms on every named backend and on unix://: 4 producers, 2 consumers, SIGKILLs.

Quick storms (2 s of kills) run in every CI run; ``--run-slow`` runs 30 s ones.
With ``IPCKIT_FIGURES=FILE`` each storm appends its figures to FILE as a JSON line
(``scripts/reliability_figures.py`` turns them into docs/reliability.md's table).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.faults._storm import StormConfig, run_storm

BACKENDS = {
    "shm": {"capacity": "1MiB"},
    "mq": {},
    "fifo": {},
    "unix": {},
}


def _storm(backend: str, seconds: float, seed: int, tmp_path: Path) -> None:
    fig = run_storm(StormConfig(backend, seconds, seed, options=BACKENDS[backend]), tmp_path)
    record = {"backend": backend, "seconds": seconds, "seed": seed, **fig.as_dict()}
    out = os.environ.get("IPCKIT_FIGURES")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
    problems = {
        k: record[k]
        for k in (
            "worker_failures",
            "lost_unexplained",
            "duplicated",
            "corrupted",
            "phantoms",
            "out_of_order",
        )
        if record[k]
    }
    assert not problems, (problems, fig.examples)
    assert fig.delivered > 0 and fig.producer_kills + fig.consumer_kills > 0
    if backend != "unix":
        # A killed queue consumer loses at most the batch in its hands (recv_many(16)),
        # so "explained" losses are bounded: the judge cannot excuse a real leak.
        assert fig.lost_explained <= 16 * fig.consumer_kills, record


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_storm(backend: str, tmp_path: Path) -> None:
    """Every message delivered once and whole, or lost only with a killed consumer."""
    _storm(backend, 2.0, 1, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_storm_long(backend: str, tmp_path: Path) -> None:
    """The same, 30 s of kills."""
    _storm(backend, 30.0, 2, tmp_path)
