"""The shared-memory ring as a pure core: random sizes, wrap points and interleavings.

A model (a deque of payloads) runs beside a ring in a plain bytearray; every
operation must agree with it, and the ring's invariants must hold after each.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipckit._framing import FLAG_OOB, HEADER_SIZE
from ipckit.backends import _ring as ring
from ipckit.errors import ProtocolError
from tests.fuzzing import counted

CAPACITIES = st.sampled_from([ring.MIN_CAPACITY, 4096 + 16, 8192, 12_288])

# An operation: ("w", [sizes]) writes a batch, ("r", n) reads up to n records.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.lists(st.integers(0, 2100), min_size=1, max_size=6)),
        st.tuples(st.just("r"), st.integers(1, 8)),
    ),
    min_size=1,
    max_size=60,
)


def _payload(serial: int, size: int) -> bytes:
    return bytes((serial + i) & 0xFF for i in range(size))


def _check_invariants(head: int, tail: int, capacity: int) -> None:
    assert 0 <= tail - head <= capacity
    assert head % ring.ALIGN == 0 and tail % ring.ALIGN == 0


@settings(max_examples=300, deadline=None)
@given(capacity=CAPACITIES, start=st.integers(0, 400), ops=OPS)
def test_ring_agrees_with_a_queue(capacity: int, start: int, ops: list[tuple[str, object]]) -> None:
    buf = memoryview(bytearray(ring.DATA_OFFSET + capacity))
    # Start anywhere: the counters only grow, so wrap points fall everywhere.
    head = tail = start * ring.ALIGN
    model: deque[bytes] = deque()
    serial = 0
    limit = ring.inline_limit(capacity)
    for op, arg in ops:
        if op == "w":
            assert isinstance(arg, list)
            sizes = [min(n, limit) for n in arg]
            payloads = [_payload(serial + i, n) for i, n in enumerate(sizes)]
            count, new_tail, nbytes = ring.write_records(
                buf, head, tail, capacity, ((7, 0, p, len(p)) for p in payloads)
            )
            # All or a prefix, in order; a prefix stops only where the next did not fit.
            assert nbytes == sum(sizes[:count])
            if count < len(payloads):
                assert ring.reserve(head, new_tail, capacity, sizes[count]) is None
            model.extend(payloads[:count])
            serial += len(payloads)
            tail = new_tail
        else:
            assert isinstance(arg, int)
            frames, new_head, nbytes, saw, too_large = ring.read_records(
                buf, head, tail, capacity, 1 << 20, 1 << 20, arg
            )
            assert too_large == -1 and saw == 0
            expected = [model.popleft() for _ in range(min(arg, len(model)))]
            assert [f.payload for f in frames] == expected
            assert all(f.serializer_id == 7 for f in frames)
            assert nbytes == sum(len(p) for p in expected)
            head = new_head
            if not model:
                assert head == tail, "an empty queue has nothing left but pads"
        _check_invariants(head, tail, capacity)


@settings(max_examples=200, deadline=None)
@given(
    capacity=CAPACITIES,
    head_slot=st.integers(0, 2000),
    used=st.integers(0, 12_288),
    length=st.integers(0, 6000),
)
def test_reserve_never_overfills_or_wraps_a_record(
    capacity: int, head_slot: int, used: int, length: int
) -> None:
    head = head_slot * ring.ALIGN
    tail = head + min(used // ring.ALIGN * ring.ALIGN, capacity)
    place = ring.reserve(head, tail, capacity, length)
    record = ring.record_size(length)
    if place is None:
        room = capacity - tail % capacity
        pad = 0 if record <= room else room
        assert tail + pad + record - head > capacity
        return
    pad, start = place
    assert start == tail + pad
    assert start + record - head <= capacity
    assert start % capacity + record <= capacity, "a record never wraps"
    assert pad == 0 or start % capacity == 0, "a pad always ends at the ring's end"


def test_a_record_of_half_the_ring_always_fits_once_drained() -> None:
    for capacity in (ring.MIN_CAPACITY, 8192, 1 << 20):
        limit = ring.inline_limit(capacity)
        for tail in range(0, 2 * capacity, ring.ALIGN * 7):
            assert ring.reserve(tail, tail, capacity, limit) is not None


def test_a_reader_over_its_own_limit_takes_the_record_alone() -> None:
    capacity = 8192
    buf = memoryview(bytearray(ring.DATA_OFFSET + capacity))
    records = [(1, 0, b"a" * 10, 10), (1, 0, b"b" * 500, 500), (1, 0, b"c", 1)]
    _, tail, _ = ring.write_records(buf, 0, 0, capacity, records)
    limits = (1 << 20, 100, 10)  # the channel's, this reader's, the batch
    frames, head, _, _, too_large = ring.read_records(buf, 0, tail, capacity, *limits)
    assert [f.payload for f in frames] == [b"a" * 10] and too_large == -1
    frames, head, _, _, too_large = ring.read_records(buf, head, tail, capacity, *limits)
    assert frames == [] and too_large == 500
    frames, head, _, _, too_large = ring.read_records(buf, head, tail, capacity, *limits)
    assert [f.payload for f in frames] == [b"c"] and head == tail


def test_out_of_band_references_pass_any_reader_limit() -> None:
    capacity = 8192
    buf = memoryview(bytearray(ring.DATA_OFFSET + capacity))
    ref = b"r" * 200  # a reference, not the payload: its block is checked on resolve
    _, tail, _ = ring.write_records(buf, 0, 0, capacity, [(1, FLAG_OOB, ref, len(ref))])
    frames, head, _, saw, too_large = ring.read_records(buf, 0, tail, capacity, 1 << 20, 10, 1)
    assert frames[0].payload == ref and saw & FLAG_OOB and too_large == -1 and head == tail


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(min_size=HEADER_SIZE, max_size=256), at=st.integers(0, 100))
@counted("shm record parser")
def test_garbage_in_the_ring_is_only_ever_a_protocol_error(garbage: bytes, at: int) -> None:
    capacity = 4096
    buf = memoryview(bytearray(ring.DATA_OFFSET + capacity))
    head = at * ring.ALIGN
    pos = ring.DATA_OFFSET + head % capacity
    chunk = garbage[: capacity - head % capacity]
    buf[pos : pos + len(chunk)] = chunk
    tail = head + ring.align(len(chunk))
    try:
        frames, new_head, *_ = ring.read_records(buf, head, tail, capacity, 1 << 20, 1 << 20, 4)
    except ProtocolError:
        return
    assert head <= new_head <= tail
    for f in frames:
        assert len(f.payload) <= tail - head


@pytest.mark.parametrize("bad", [(16, 0), (0, 4096 + 16), (8, 24)])
def test_corrupt_indices_are_refused(bad: tuple[int, int]) -> None:
    buf = memoryview(bytearray(ring.DATA_OFFSET + 4096))
    head, tail = bad
    with pytest.raises(ProtocolError):
        ring.read_records(buf, head, tail, 4096, 100, 100, 1)
