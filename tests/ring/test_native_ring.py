"""The C ring (csrc/ring.c) against the pure reference (ipckit/backends/_ring.py).

Both are driven with the same random operations; the segments must hold the same
bytes after every step, and on any input, garbage included, the C record parser
must accept exactly what the reference accepts, with the same result.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipckit import _accel
from ipckit._framing import HEADER_SIZE, FrameDecoder, decode_header
from ipckit.backends import _ring as ring
from ipckit.errors import ProtocolError

if not _accel.built():
    pytest.skip("the C core is not built", allow_module_level=True)

from ipckit import _core
from tests.fuzzing import counted

CAPACITIES = st.sampled_from([4096, 4112, 8192, 12288])
# (payload length, serializer id, then how many records to consume before the next write)
OPS = st.lists(
    st.tuples(st.integers(0, 2100), st.integers(0, 255), st.integers(0, 3)),
    min_size=1,
    max_size=60,
)


def _consume(buf: bytearray, head: int, tail: int, capacity: int, n: int) -> int:
    for _ in range(n):
        while head != tail:
            *_, length, head = ring.read_record(memoryview(buf), head, tail, capacity, 1 << 30)
            if length >= 0:
                break
    return head


@settings(max_examples=300, deadline=None)
@given(capacity=CAPACITIES, ops=OPS, start=st.integers(0, 4000))
def test_native_writes_leave_identical_bytes(
    capacity: int, ops: list[tuple[int, int, int]], start: int
) -> None:
    # Start anywhere (counters only grow; a start near the end forces early wraps).
    head = tail = (start * 16) % capacity + capacity * 3
    py = bytearray(ring.DATA_OFFSET + capacity)
    c = bytearray(py)
    for i, (wanted, ser, consume) in enumerate(ops):
        length = min(wanted, ring.inline_limit(capacity))
        payload = bytes((i + k) & 0xFF for k in range(length))
        py_tail = ring.write_one(memoryview(py), head, tail, capacity, ser, 0, payload, length)
        c_tail = _core.write_one(c, head, tail, capacity, ser, 0, payload)
        assert c_tail == py_tail
        assert c == py, f"segments differ after write {i}"
        if py_tail >= 0:
            tail = py_tail
        head = _consume(py, head, tail, capacity, consume)


def _reference(buf: bytearray, head: int, tail: int, capacity: int, limit: int) -> object:
    try:
        return ring.read_record(memoryview(buf), head, tail, capacity, limit)
    except ProtocolError:
        return "error"


@settings(max_examples=1500, deadline=None)
@given(
    capacity=st.sampled_from([4096, 8192]),
    record=st.binary(min_size=16, max_size=64),
    pos=st.integers(0, 4096 // 16 - 1),
    used=st.integers(-64, 9000),
    skew=st.sampled_from([0, 0, 0, 1, 8, 15]),
    limit=st.sampled_from([0, 10, 100, 5000, 1 << 30]),
    magic=st.sampled_from([b"", b"IK\x01", b"PD", b"IK\x02"]),
)
@counted("shm record parser")
def test_native_record_parser_accepts_exactly_what_the_reference_accepts(  # noqa: PLR0917
    capacity: int, record: bytes, pos: int, used: int, skew: int, limit: int, magic: bytes
) -> None:
    buf = bytearray(ring.DATA_OFFSET + capacity)
    at = ring.DATA_OFFSET + pos * 16
    raw = (magic + record)[: len(record)]
    buf[at : at + len(raw)] = raw
    head = capacity * 5 + pos * 16 + skew
    tail = max(head + used, 0)
    want = _reference(buf, head, tail, capacity, limit)
    got = _core.read_record(buf, head, tail, capacity, limit)
    if want == "error":
        assert isinstance(got, int) and got > 0, f"C accepted what the reference refuses: {got}"
    else:
        assert got == want


@settings(max_examples=1500, deadline=None)
@given(data=st.binary(min_size=0, max_size=24), limit=st.sampled_from([0, 7, 1 << 20, 1 << 62]))
@counted("frame header")
def test_native_header_decoder_matches_the_reference(data: bytes, limit: int) -> None:
    try:
        want: object = decode_header(data, 0, limit)
    except ProtocolError:
        want = "error"
    got = _core.decode_header(data, 0, limit)
    if want == "error":
        assert isinstance(got, int) and got > 0
    else:
        assert got == want
        assert _core.encode_header(*got) == bytes(data[:HEADER_SIZE])


def test_native_header_decoder_refuses_each_defect() -> None:
    good = _core.encode_header(1, 0, 5)
    assert _core.decode_header(good, 0, 5) == (1, 0, 5)
    cases = {
        "truncated": good[:15],
        "magic": b"XK" + good[2:],
        "version": good[:2] + b"\x02" + good[3:],
        "flags": good[:4] + b"\x80" + good[5:],
        "reserved": good[:5] + b"\x00\x01\x00" + good[8:],
    }
    for what, data in cases.items():
        assert isinstance(_core.decode_header(data, 0, 5), int), what
    assert isinstance(_core.decode_header(good, 0, 4), int), "over the limit"
    assert isinstance(_core.decode_header(_core.encode_header(0, 2, 1), 0, 9), int), "EOS+payload"
    # The stream decoder still parses what the C encoder writes.
    decoder = FrameDecoder(1 << 20)
    decoder.feed(_core.encode_header(1, 0, 3) + b"abc")
    frame = decoder.next_frame()
    assert frame is not None and bytes(frame.payload) == b"abc"
