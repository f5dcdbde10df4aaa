"""The storm's judge, on made-up logs: each verdict it must give, and none it must not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.faults._oracle import CONSUMED, SENT, Kill, judge, read_records


def test_a_clean_run_has_nothing_to_report() -> None:
    sent = {(0, 0): [(0, 10, -1), (1, 20, -1)], (1, 0): [(0, 15, -1)]}
    consumed = [[(0, 0, 0, 1), (1, 0, 0, 1)], [(0, 0, 1, 1)]]
    fig = judge(sent, consumed, [], queue=True)
    assert (fig.sent, fig.delivered) == (3, 3)
    assert fig.lost_unexplained == fig.duplicated == fig.corrupted == fig.phantoms == 0


def test_each_fault_is_named() -> None:
    sent = {(0, 0): [(0, 10, -1), (1, 20, -1), (2, 30, -1)]}
    consumed = [[(0, 0, 1, 1), (0, 0, 0, 0), (0, 0, 1, 1), (0, 0, 9, 1)]]
    fig = judge(sent, consumed, [], queue=True)
    assert fig.duplicated == 1
    assert fig.corrupted == 1
    assert fig.out_of_order == 1  # 0 after 1 (the second 1 is a duplicate, not disorder)
    assert fig.phantoms == 1  # 9: no send of it could have started
    assert fig.lost_unexplained == 1  # 2 returned and never arrived
    assert fig.examples


def test_a_consumer_kill_explains_only_what_was_sent_before_it() -> None:
    sent = {(0, 0): [(0, 10, 1), (1, 50, 1), (2, 60, 0)]}
    kills = [Kill(consumer=True, slot=1, generation=0, dead_ns=40)]
    on_queue = judge(sent, [[]], kills, queue=True)
    assert (on_queue.lost_explained, on_queue.lost_unexplained) == (1, 2)
    on_socket = judge(sent, [[]], kills, queue=False)
    assert (on_socket.lost_explained, on_socket.lost_unexplained) == (1, 2)
    other = [Kill(consumer=True, slot=0, generation=0, dead_ns=40)]
    assert judge(sent, [[]], other, queue=False).lost_explained == 0


def test_the_message_in_flight_at_a_producer_kill_may_arrive_unconfirmed() -> None:
    sent = {(0, 0): [(0, 10, -1)]}
    fig = judge(sent, [[(0, 0, 0, 1), (0, 0, 1, 1)]], [], queue=True)
    assert (fig.unconfirmed, fig.phantoms) == (1, 0)


@given(st.binary(max_size=200))
def test_a_log_cut_by_a_kill_keeps_its_whole_records(data: bytes) -> None:
    for record in (SENT, CONSUMED):
        got = read_records(data, record)
        assert len(got) == len(data) // record.size
        assert b"".join(record.pack(*r) for r in got) == data[: len(got) * record.size]
