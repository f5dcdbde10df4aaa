"""The wire format: encode/decode round trips, byte-at-a-time and random splits, garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipckit import ProtocolError, _accel
from ipckit._framing import (
    FLAG_EOS,
    FLAG_OOB,
    HEADER_SIZE,
    MAGIC,
    VERSION,
    FrameDecoder,
    decode_header,
    encode_frame,
    encode_header,
)
from tests.fuzzing import counted

MAX = 1 << 20

# Every decoder test runs on the reference and on its C twin (when built).
_DECODERS = [pytest.param(FrameDecoder, id="pure")]
if _accel.built():
    from ipckit import _core

    _DECODERS.append(pytest.param(_core.Decoder, id="native"))


@pytest.fixture(scope="module", params=_DECODERS)
def decoder_cls(request: pytest.FixtureRequest) -> type[FrameDecoder]:
    cls: type[FrameDecoder] = request.param
    return cls


EXAMPLES = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Payloads past the decoder's 64 KiB direct-read threshold, cheap to generate.
_big_payloads = st.tuples(st.integers(65536, 70000), st.binary(min_size=1, max_size=8)).map(
    lambda t: (t[1] * (t[0] // len(t[1]) + 1))[: t[0]]
)

frames_st = st.lists(
    st.tuples(
        st.integers(0, 255),
        st.sampled_from([0, FLAG_OOB]),
        st.one_of(st.binary(max_size=300), _big_payloads),
    ),
    max_size=6,
)


def _stream(frames: list[tuple[int, int, bytes]]) -> bytes:
    return b"".join(encode_frame(s, f, p) for s, f, p in frames)


def _drain(decoder: FrameDecoder) -> list[tuple[int, int, bytes]]:
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append((frame.serializer_id, frame.flags, bytes(frame.payload)))
    return out


def test_header_layout_is_documented_one() -> None:
    header = encode_header(3, FLAG_OOB, 0x0102030405)
    assert len(header) == HEADER_SIZE == 16
    assert header[:2] == MAGIC == b"IK"
    assert header[2] == VERSION
    assert header[3] == 3
    assert header[4] == FLAG_OOB
    assert header[5:8] == b"\0\0\0"
    assert struct.unpack("<Q", header[8:])[0] == 0x0102030405


@EXAMPLES
@given(frames_st)
def test_whole_stream_round_trips(
    decoder_cls: type[FrameDecoder], frames: list[tuple[int, int, bytes]]
) -> None:
    decoder = decoder_cls(MAX)
    decoder.feed(_stream(frames))
    assert _drain(decoder) == frames
    assert not decoder.pending


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=64)), max_size=4))
def test_one_byte_at_a_time(
    decoder_cls: type[FrameDecoder], frames: list[tuple[int, bytes]]
) -> None:
    full = [(s, 0, p) for s, p in frames]
    decoder = decoder_cls(MAX)
    got = []
    for byte in _stream(full):
        decoder.feed(bytes([byte]))
        got.extend(_drain(decoder))
    assert got == full


@EXAMPLES
@given(frames_st, st.lists(st.integers(1, 80000), max_size=20))
@counted("frame decoder")
def test_random_split_points(
    decoder_cls: type[FrameDecoder], frames: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    data = _stream(frames)
    decoder = decoder_cls(MAX)
    got = []
    pos = 0
    for cut in [*cuts, len(data)]:
        decoder.feed(data[pos : pos + cut])
        pos += cut
        got.extend(_drain(decoder))
        if pos >= len(data):
            break
    decoder.feed(data[pos:])
    got.extend(_drain(decoder))
    assert got == frames


@EXAMPLES
@given(frames_st, st.integers(100, 100_000))
def test_readinto_path_matches_feed(
    decoder_cls: type[FrameDecoder], frames: list[tuple[int, int, bytes]], chunk: int
) -> None:
    data = memoryview(_stream(frames))
    decoder = decoder_cls(MAX)
    got = []
    while data.nbytes:
        with decoder.buffer() as target:
            n = min(target.nbytes, chunk, data.nbytes)
            target[:n] = data[:n]
        decoder.commit(n)
        data = data[n:]
        got.extend(_drain(decoder))
    assert got == frames


@EXAMPLES
@given(st.binary(max_size=2000))
@counted("frame decoder")
def test_garbage_only_raises_protocol_error(decoder_cls: type[FrameDecoder], junk: bytes) -> None:
    decoder = decoder_cls(4096)
    try:
        decoder.feed(junk)
        _drain(decoder)
    except ProtocolError:
        pass


@EXAMPLES
@given(frames_st, st.integers(0, 10_000), st.integers(0, 255))
@counted("frame decoder")
def test_corrupted_stream_never_escapes_protocol_error(
    decoder_cls: type[FrameDecoder], frames: list[tuple[int, int, bytes]], where: int, value: int
) -> None:
    data = bytearray(_stream(frames))
    if data:
        data[where % len(data)] = value
    decoder = decoder_cls(MAX)
    try:
        decoder.feed(bytes(data))
        _drain(decoder)
    except ProtocolError:
        pass


def test_length_checked_before_allocating(decoder_cls: type[FrameDecoder]) -> None:
    decoder = decoder_cls(1000)
    with pytest.raises(ProtocolError, match="max_message_size"):
        decoder.feed(encode_header(1, 0, 1 << 62))
        decoder.next_frame()


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"XX" + encode_header(1, 0, 0)[2:], "magic"),
        (encode_header(1, 0, 0)[:2] + b"\x09" + encode_header(1, 0, 0)[3:], "version"),
        (encode_header(1, 0x80, 0), "flags"),
        (encode_header(1, 0, 0)[:5] + b"\x01" + encode_header(1, 0, 0)[6:], "reserved"),
        (encode_header(0, FLAG_EOS, 5), "end-of-stream"),
    ],
)
def test_bad_headers(header: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_header(header, 0, MAX)


def test_truncated_header() -> None:
    with pytest.raises(ProtocolError, match="truncated"):
        decode_header(b"IK\x01", 0, MAX)
