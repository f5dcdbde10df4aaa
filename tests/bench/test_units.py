"""The small pure pieces: statistics, number formatting, payloads, placement."""

from __future__ import annotations

import pytest

from ipckit._bench.placement import plan
from ipckit._bench.report import human
from ipckit._bench.stats import percentile, summarize
from ipckit._bench.workloads import END, WORKLOADS, make_variants


def test_percentile_and_summary():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2], 50) == 1.5
    assert percentile([7], 99) == 7
    s = summarize([5, 1, 3])
    assert (s.median, s.min, s.max, s.n) == (3, 1, 5, 3)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_human_numbers():
    assert human(1_234_567, "msgs_per_s") == "1.23M"
    assert human(45_600, "msgs_per_s") == "46k"
    assert human(2.345, "gb_per_s") == "2.35"
    assert human(123.4, "p50_us") == "123"


def test_variants_are_distinct_tagged_and_never_the_end_marker():
    for w in WORKLOADS[:2]:
        v = make_variants(w.sizes, 0)
        assert len(v) >= 64 and len(v) & (len(v) - 1) == 0
        assert len(set(v)) == len(v)
        assert END not in v
        assert all(len(x) == w.max_size for x in v)
    assert make_variants((64,), 0)[0] != make_variants((64,), 1)[0]


def test_placement_modes():
    assert plan("none").producer_cpu is None
    same = plan("same")
    assert same.producer_cpu == same.consumer_cpu
    cross = plan("cross")
    assert cross.mode in ("cross", "same")
    assert cross.note
    with pytest.raises(ValueError):
        plan("diagonal")


def test_the_setup_alarm_keeps_an_outer_timer():
    import signal

    from ipckit._bench.runner import _alarm

    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        with _alarm(5, "x"):
            pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining <= 30
        with pytest.raises(TimeoutError, match="x took longer"), _alarm(0.01, "x"):
            signal.pause()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not fired
