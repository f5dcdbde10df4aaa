"""The harness's correctness check: a broken contender is reported, never measured."""

from __future__ import annotations

import pytest

from ipckit._bench.placement import plan
from ipckit._bench.raw import RAW_CONTENDERS
from ipckit._bench.results import ERROR, FAIL, OK, TIMEOUT
from ipckit._bench.runner import run_round
from ipckit._bench.workloads import PINGPONG, THROUGHPUT, Workload
from tests.bench.broken import RAW_PIPE, broken, failing_setup

SMALL = Workload("t-64B", "tiny throughput", THROUGHPUT, (64,), 50)
MIXED = Workload("t-mixed", "tiny mixed sizes", THROUGHPUT, (64, 5000, 70000), 20)
PING = Workload("p-64B", "tiny ping-pong", PINGPONG, (64,), 20)


def _round(contender, workload=SMALL, timeout=20.0, producers=1):
    return run_round(
        contender,
        workload,
        placement=plan("none"),
        duration=0.01,
        timeout=timeout,
        producers=producers,
    )


@pytest.mark.parametrize("workload", [SMALL, MIXED, PING], ids=lambda w: w.name)
def test_a_sound_contender_passes_and_is_measured(workload):
    result = _round(RAW_PIPE, workload)
    assert result.status == OK, result.reason
    assert result.metrics
    assert all(v > 0 for v in result.metrics.values())


@pytest.mark.parametrize("mode", ["flip", "drop", "duplicate", "truncate"])
@pytest.mark.parametrize("workload", [SMALL, MIXED], ids=lambda w: w.name)
def test_corrupted_or_lost_data_is_fail_without_a_number(mode, workload):
    result = _round(broken(mode), workload)
    assert result.status == FAIL, result
    assert result.metrics == {}
    assert "message #" in (result.reason or "") or "sent" in (result.reason or "")


@pytest.mark.parametrize("mode", ["flip", "truncate"])
def test_ping_pong_checks_the_echo(mode):
    result = _round(broken(mode), PING)
    assert result.status == FAIL, result
    assert result.metrics == {}


def test_a_crashing_producer_is_error_with_its_reason():
    result = _round(broken("crash"))
    assert result.status == ERROR
    assert "deliberate crash" in (result.reason or "")


def test_a_dying_producer_is_error():
    result = _round(broken("die"))
    assert result.status == ERROR
    assert "producer" in (result.reason or "")


def test_a_hanging_producer_is_killed_and_reported():
    result = _round(broken("hang"), timeout=1.5)
    assert result.status == TIMEOUT
    assert "producer" in (result.reason or "")


def test_a_failing_setup_is_error():
    result = _round(failing_setup())
    assert result.status == ERROR
    assert "no such thing" in (result.reason or "")


@pytest.mark.parametrize(("mode", "status"), [("none", OK), ("flip", FAIL), ("drop", FAIL)])
def test_the_batch_path_checks_every_message(mode, status):
    result = _round(broken(mode, batch=8))
    assert result.status == status, result


@pytest.mark.parametrize(("mode", "status"), [("none", OK), ("flip", FAIL), ("duplicate", FAIL)])
def test_many_producers_are_followed_one_by_one(mode, status):
    # 64-byte writes to one pipe are atomic, so two producers interleave whole messages.
    result = _round(broken(mode), producers=2)
    assert result.status == status, result
    if status == FAIL:
        assert "from producer" in (result.reason or "")


def test_many_producers_on_a_real_queue():
    raw_mq = next(c for c in RAW_CONTENDERS if c.name == "raw-mq")
    result = _round(raw_mq, producers=3)
    assert result.status == OK, result.reason
