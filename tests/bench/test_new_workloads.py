"""The dict, many-producer and memcpy workloads check what they measure; native and pure rows."""

from __future__ import annotations

import dataclasses

import pytest

from ipckit._bench import many
from ipckit._bench.ipckit_contenders import IPCKIT_CONTENDERS, current_implementation
from ipckit._bench.memcpy import MEMCPY, _CopyEndpoint, _CopyLink
from ipckit._bench.peers import PEER_CONTENDERS
from ipckit._bench.placement import plan
from ipckit._bench.results import ERROR, FAIL, NA, OK, TIMEOUT
from ipckit._bench.runner import _implementation, run_round
from ipckit._bench.session import Settings, run_bench
from ipckit._bench.workloads import (
    DICT,
    DICT_SIZE,
    END,
    THROUGHPUT,
    WORKLOADS,
    Workload,
    make_dicts,
    make_numbered,
)
from tests.bench.broken import AT, MP_PIPE, RAW_MQ, RAW_PIPE, broken

IPCKIT = {c.name: c for c in IPCKIT_CONTENDERS}
PEERS = {c.name: c for c in PEER_CONTENDERS}

DICTS = Workload("t-dict", "tiny dicts", THROUGHPUT, (DICT_SIZE,), 60, payload=DICT)


def _many(producers: int, consumers: int, messages: int = 40) -> Workload:
    return Workload(
        f"t-{producers}x{consumers}",
        "tiny many",
        THROUGHPUT,
        (64,),
        messages,
        producers=producers,
        consumers=consumers,
        messages=messages,
    )


def _round(contender, workload, timeout=20.0):
    return run_round(contender, workload, placement=plan("none"), duration=0.01, timeout=timeout)


# -- small dicts -------------------------------------------------------------------------


def test_the_dicts_carry_producer_seq_and_the_same_body():
    dicts = make_dicts(3)
    assert len(dicts) & (len(dicts) - 1) == 0
    assert [d["seq"] for d in dicts] == list(range(len(dicts)))
    assert {d["producer"] for d in dicts} == {3}
    assert all(d["body"] == dicts[0]["body"] for d in dicts)
    small_dict = next(w for w in WORKLOADS if w.name == "small-dict")
    assert small_dict.payload == DICT and small_dict.baseline == "mp-queue"


@pytest.mark.parametrize(
    "contender",
    [MP_PIPE, PEERS["mp-queue"], IPCKIT["ipckit-shm"], IPCKIT["ipckit-shm-batch"]],
    ids=lambda c: c.name,
)
def test_dicts_pass_and_are_measured(contender):
    result = _round(contender, DICTS)
    assert result.status == OK, result.reason
    assert result.metrics["msgs_per_s"] > 0
    assert result.metrics["mb_per_s"] > 0


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        ("drop", f"message #{AT}: got (producer, seq) (0, {AT + 1}), expected (0, {AT})"),
        ("duplicate", f"message #{AT + 1}: got (producer, seq) (0, {AT}), expected (0, {AT + 1})"),
        ("swap", f"message #{AT}: got (producer, seq) (0, {AT + 1}), expected (0, {AT})"),
        ("flip", f"message #{AT}: the dict differs from the one sent (corrupted body)"),
        ("truncate", f"message #{AT}: the dict differs from the one sent"),
    ],
)
def test_a_lost_duplicated_reordered_or_changed_dict_is_fail(mode, needle):
    result = _round(broken(mode, inner=MP_PIPE), DICTS)
    assert result.status == FAIL, result
    assert result.metrics == {}
    assert needle in (result.reason or "")


def test_the_batch_path_checks_every_dict():
    assert _round(broken("none", batch=8, inner=MP_PIPE), DICTS).status == OK
    result = _round(broken("drop", batch=8, inner=MP_PIPE), DICTS)
    assert result.status == FAIL
    assert "expected (0, 5)" in (result.reason or "")


def test_bytes_only_contenders_are_not_applicable_to_dicts():
    settings = Settings(rounds=1, duration=0.01, placement="none", baseline="auto")
    result = run_bench([RAW_PIPE, MP_PIPE], [DICTS], settings)
    cell = result.cell("raw-pipe", "t-dict")
    assert cell.status == NA
    assert cell.reason == "n/a: carries bytes, not Python objects"
    assert result.cell("mp-pipe", "t-dict").status == OK


# -- many producers, many consumers ----------------------------------------------------


def test_numbered_messages_carry_their_full_sequence_number():
    msgs = make_numbered((64,), 2, 600)
    assert len(msgs) == 600 and len(set(msgs)) == 600
    assert all(len(m) == 64 for m in msgs)
    assert msgs[300][:8] == (2).to_bytes(4, "little") + (300).to_bytes(4, "little")


@pytest.mark.parametrize(("producers", "consumers"), [(3, 1), (3, 3)])
def test_many_producers_and_consumers_pass_on_a_real_queue(producers, consumers):
    result = _round(RAW_MQ, _many(producers, consumers))
    assert result.status == OK, result.reason
    assert result.metrics["messages"] == producers * 40


@pytest.mark.parametrize("consumers", [1, 2])
@pytest.mark.parametrize("mode", ["drop", "duplicate", "flip", "truncate"])
def test_many_a_lost_duplicated_or_changed_message_is_fail(mode, consumers):
    result = _round(broken(mode, inner=RAW_MQ), _many(3, consumers))
    assert result.status == FAIL, result
    assert result.metrics == {}
    assert "from producer" in (result.reason or "")


def test_many_one_consumer_sees_a_reordering():
    result = _round(broken("swap", inner=RAW_MQ), _many(3, 1))
    assert result.status == FAIL
    assert f"got message {AT + 1}, expected {AT}" in (result.reason or "")


def test_many_a_loss_split_over_consumers_is_found_by_the_marks():
    # Marks as two consumers would report them: producer 0's message 7 taken by nobody.
    count = 10
    first = bytes(1 if n % 2 == 0 else 0 for n in range(count))
    second = bytes(1 if n % 2 == 1 and n != 7 else 0 for n in range(count))
    producers = [{"sent": count, "bytes": 64 * count, "t0": 0}]
    consumers = [
        {"failure": None, "received": 5, "bytes": 320, "t_end": 10, "marks": [first]},
        {"failure": None, "received": 4, "bytes": 256, "t_end": 20, "marks": [second]},
    ]
    why, metrics = many.verify_numbered(producers, consumers, count)
    assert why == "from producer 0: message 7 lost (over all consumers)"
    assert metrics == {}
    twice = bytes(1 if n % 2 == 1 or n == 4 else 0 for n in range(count))
    consumers[1] = {**consumers[1], "received": 6, "bytes": 384, "marks": [twice]}
    why, _ = many.verify_numbered(producers, consumers, count)
    assert why == "from producer 0: message 4 received 2 times (over all consumers)"
    consumers[1] = {
        **consumers[1],
        "received": 5,
        "bytes": 320,
        "marks": [bytes(a ^ 1 for a in first)],
    }
    why, metrics = many.verify_numbered(producers, consumers, count)
    assert why is None and metrics["messages"] == count


def test_many_batch_consumers_that_swallow_several_end_markers_all_stop():
    # The contender claims one message per call but receives up to 64: the first consumer
    # may take every end marker there is, and the parent must send more for the others.
    shm_batch = IPCKIT["ipckit-shm-batch"]
    greedy = dataclasses.replace(shm_batch, name="greedy", batch=1)
    result = _round(greedy, _many(3, 3))
    assert result.status == OK, result.reason
    assert _round(shm_batch, _many(3, 3)).status == OK


@pytest.mark.parametrize(
    ("mode", "status", "who"),
    [
        ("die", ERROR, "producer"),
        ("crash", ERROR, "deliberate crash"),
        ("consumer-die", ERROR, "consumer"),
        ("consumer-hang", TIMEOUT, "in time; killed"),  # the producers block behind it
        ("hang", TIMEOUT, "producer"),
    ],
)
def test_many_a_dead_or_stuck_child_ends_the_round_in_time(mode, status, who):
    result = _round(broken(mode, inner=RAW_MQ), _many(3, 2, messages=200), timeout=1.5)
    assert result.status == status, result
    assert who in (result.reason or "")
    assert result.seconds < 15


def test_many_workloads_show_only_their_comparison():
    w = dataclasses.replace(_many(2, 2), contenders=("raw-mq",))
    settings = Settings(rounds=1, duration=0.01, placement="none")
    result = run_bench([RAW_PIPE, RAW_MQ, MP_PIPE], [w], settings)
    assert set(result.cells) == {("raw-mq", w.name)}
    pipe_only = run_bench([MP_PIPE], [_many(2, 2)], settings)
    assert pipe_only.cell("mp-pipe", "t-2x2").reason == "n/a: one producer only"
    mq_one = dataclasses.replace(RAW_MQ, name="mq-one-reader", many_consumers=False)
    one_reader = run_bench([mq_one], [_many(2, 2)], settings)
    assert one_reader.cell("mq-one-reader", "t-2x2").reason == "n/a: one consumer only"


def test_the_many_workloads_in_the_bench():
    names = {w.name: w for w in WORKLOADS}
    for name, (p, c) in {
        "many-10x1": (10, 1),
        "many-20x3": (20, 3),
        "many-20x20": (20, 20),
    }.items():
        w = names[name]
        assert (w.producers, w.consumers) == (p, c)
        assert w.messages is not None and w.sizes == (64,)
        assert w.baseline_for(1) == "faster-fifo"
        assert w.baseline_for(64) == "faster-fifo-batch"
        assert {"ipckit-shm", "faster-fifo", "faster-fifo-batch", "mp-queue"} <= set(
            w.contenders or ()
        )


# -- the memcpy floor ----------------------------------------------------------------------

BIG = Workload("t-1MiB", "tiny bandwidth", THROUGHPUT, (1024 * 1024,), 3, baseline="raw-memcpy")


class _BadCopy(_CopyEndpoint):
    def send(self, data: bytes) -> None:
        if data is not END:  # a copy one byte short
            self._view[: len(data) - 1] = data[:-1]
            self._last = data


def test_memcpy_is_measured_alone_and_checks_its_copy():
    result = _round(MEMCPY, BIG)
    assert result.status == OK, result.reason
    assert result.metrics["gb_per_s"] > 0.1
    bad_link = type("BadLink", (_CopyLink,), {"endpoint": lambda self, r, i: _BadCopy(self._size)})
    bad = dataclasses.replace(MEMCPY, name="bad-memcpy", make_link=bad_link)
    result = _round(bad, BIG)
    assert result.status == FAIL
    assert result.reason == "producer: the buffer does not hold the last payload copied into it"


def test_memcpy_applies_to_the_bandwidth_workloads_only():
    settings = Settings(rounds=1, duration=0.01, placement="none")
    result = run_bench([MEMCPY, IPCKIT["ipckit-shm"]], [BIG, DICTS, _many(2, 1)], settings)
    assert result.cell("raw-memcpy", "t-dict").reason == (
        "n/a: a copy floor for the bandwidth workloads"
    )
    assert result.cell("raw-memcpy", "t-2x1").status == NA
    shm = result.cell("ipckit-shm", "t-1MiB")
    assert shm.status == OK and shm.baseline == "raw-memcpy"
    assert result.cell("raw-memcpy", "t-1MiB").status == OK
    bw16 = next(w for w in WORKLOADS if w.name == "bw-16MiB")
    assert bw16.baseline == "raw-memcpy"


# -- native and pure -------------------------------------------------------------------------


def test_each_ipckit_row_says_which_code_ran():
    from ipckit import _accel

    native_before = _accel.native
    expected = "native" if native_before else "pure"
    small = WORKLOADS[0]
    assert current_implementation() == expected
    plain = _round(IPCKIT["ipckit-shm"], small)
    pure = _round(IPCKIT["ipckit-shm-pure"], small)
    batch_pure = _round(IPCKIT["ipckit-shm-batch-pure"], small)
    assert plain.status == pure.status == batch_pure.status == OK
    assert plain.implementation == expected
    assert pure.implementation == batch_pure.implementation == "pure"
    assert _accel.native == native_before  # the parent's own setting came back
    assert _round(RAW_PIPE, small).implementation is None


def test_ends_that_disagree_are_mixed():
    assert _implementation([{"implementation": "native"}, {"implementation": "native"}]) == (
        "native"
    )
    assert _implementation([{"implementation": "native"}, {"implementation": "pure"}]) == "mixed"
    assert _implementation([{"implementation": None}, {}]) is None
