"""One header validator: every pre-check accepts only what decode_header accepts.

``plain_frame`` (the queues' one-frame check) and the ring's inline record check
are pre-checks in front of :func:`ipckit._framing.decode_header`; anything they
let through must be a header decode_header accepts with the same fields, and no
backend may carry a header parser of its own. The out-of-band reference has one
parser and one resolver (:mod:`ipckit._oob`).
"""

from __future__ import annotations

import ast
import os
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipckit import MessageTooLarge, ProtocolError, _oob
from ipckit._framing import (
    FLAG_EOS,
    FLAG_OOB,
    HEADER_SIZE,
    decode_header,
    encode_header,
    plain_frame,
)
from ipckit.backends import _ring
from ipckit.testing import unique_name
from tests.fuzzing import counted

MAX = 4096
EXAMPLES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PACKAGE = pathlib.Path(_oob.__file__).parent


def _header_like() -> st.SearchStrategy[bytes]:
    """Headers that are valid, or valid but for one field, or random bytes."""
    field = st.sampled_from(["none", "magic", "version", "flags", "reserved", "length"])

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        ser = draw(st.integers(0, 255))
        flags = draw(st.sampled_from([0, 0, FLAG_OOB, FLAG_EOS, 0x04, 0x80]))
        length = draw(st.integers(0, 64))
        raw = bytearray(encode_header(ser, flags, length) + bytes(length))
        broken = draw(field)
        if broken == "magic":
            raw[draw(st.integers(0, 1))] ^= draw(st.integers(1, 255))
        elif broken == "version":
            raw[2] = draw(st.integers(0, 255))
        elif broken == "reserved":
            raw[draw(st.integers(5, 7))] = draw(st.integers(1, 255))
        elif broken == "length":
            raw[8:16] = draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little")
        cut = draw(st.integers(0, len(raw) + 8))
        return bytes(raw[:cut] + draw(st.binary(max_size=8)) if cut < len(raw) else raw)

    return st.one_of(build(), st.binary(max_size=40))


@EXAMPLES
@given(_header_like())
@counted("frame header")
def test_plain_frame_accepts_only_what_decode_header_accepts(data: bytes) -> None:
    ser = plain_frame(data, MAX)
    try:
        decoded = decode_header(data, 0, MAX)
    except ProtocolError:
        assert ser == -1, "the pre-check passed a header the validator refuses"
        return
    plain = decoded[1] == 0 and decoded[2] == len(data) - HEADER_SIZE
    assert (ser >= 0) == plain
    if plain:
        assert ser == decoded[0]


def test_plain_frame_limits() -> None:
    frame = encode_header(7, 0, 5) + b"hello"
    assert plain_frame(frame, 5) == 7
    assert plain_frame(frame, 4) == -1  # over this end's limit: the full path says so
    assert plain_frame(frame + frame, 100) == -1  # a batch of two frames
    assert plain_frame(frame[:-1], 100) == -1
    assert plain_frame(encode_header(7, FLAG_OOB, 0), 100) == -1


@EXAMPLES
@given(_header_like(), st.integers(0, 3))
@counted("shm record parser")
def test_the_ring_pre_check_agrees_with_read_record(data: bytes, slot: int) -> None:
    """A record the inline check of read_records passes is one read_record passes too."""
    capacity = 4096
    buf = memoryview(bytearray(_ring.DATA_OFFSET + capacity))
    record = data[:256]
    at = slot * 256
    buf[_ring.DATA_OFFSET + at : _ring.DATA_OFFSET + at + len(record)] = record
    head, tail = at, at + _ring.align(max(len(record), HEADER_SIZE))
    try:
        expected = _ring.read_record(buf, head, tail, capacity, MAX)
    except ProtocolError:
        expected = None
    try:
        frames, new_head, *_ = _ring.read_records(buf, head, tail, capacity, MAX, MAX, 1)
    except ProtocolError:
        assert expected is None
        return
    assert expected is not None, "read_records took a record read_record refuses"
    ser, flags, start, length, after = expected
    if length < 0:  # a pad record (random bytes spelling "PD")
        return
    assert new_head == after
    assert [(f.serializer_id, f.flags, bytes(f.payload)) for f in frames] == [
        (ser, flags, bytes(buf[start : start + length]))
    ]


def _backend_sources() -> list[pathlib.Path]:
    return sorted((PACKAGE / "backends").glob("*.py"))


def test_no_backend_parses_frame_headers_itself() -> None:
    """Header structs live in _framing: a backend imports them, never spells its own."""
    for path in _backend_sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "Struct"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                fmt = str(node.args[0].value)
                assert not fmt.startswith(("<2sBBB", "<3sB")), f"{path.name} parses frame headers"


def test_no_backend_parses_out_of_band_references_itself() -> None:
    names = {"_parse", "_map", "block_size", "map_block", "read_block"}
    for path in _backend_sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "_oob"
            ):
                assert node.attr not in names, f"{path.name} uses _oob.{node.attr}"
            if isinstance(node, ast.ImportFrom) and node.module == "ipckit._oob":
                assert not {a.name for a in node.names} & names, path.name


@pytest.fixture
def prefix() -> str:
    return f"ikshm.{unique_name('oob')}~1"


def _blocks(prefix: str) -> list[str]:
    return [n for n in os.listdir(_oob.SHM_DIR) if n.startswith(prefix)]


def test_open_block_checks_the_limit_and_removes_a_refused_block(prefix: str) -> None:
    ref = _oob.put_block(prefix, [b"a" * 100])
    with pytest.raises(MessageTooLarge, match="max_message_size=99"):
        _oob.open_block(ref, 99, "shm://x")
    assert _blocks(prefix) == []
    ref = _oob.put_block(prefix, [b"b" * 100])
    view, done = _oob.open_block(ref, 100, "shm://x")
    assert bytes(view) == b"b" * 100
    done()
    assert _blocks(prefix) == []


def test_resolve_copies_through_the_one_resolver(prefix: str) -> None:
    ref = _oob.put_block(prefix, [b"x" * 10, b"y" * 5])
    assert _oob.resolve(ref, 15, "mq://x") == b"x" * 10 + b"y" * 5
    assert _blocks(prefix) == []
    ref = _oob.put_block(prefix, [b"z" * 16])
    with pytest.raises(MessageTooLarge):
        _oob.resolve(ref, 15, "mq://x")
    assert _blocks(prefix) == []


def test_a_malformed_reference_is_a_protocol_error_whatever_size_it_claims(prefix: str) -> None:
    ref = _oob.put_block(prefix, [b"q"])
    try:
        huge = (2**63).to_bytes(8, "little") + ref[8:]
        for bad in (ref[:5], huge + b"!", huge.replace(b".oob.", b".xyz."), ref[:9] + b"/x"):
            with pytest.raises(ProtocolError):
                _oob.open_block(bad, 1 << 20, "shm://x")
    finally:
        _oob.discard_block(ref)
    assert _blocks(prefix) == []
