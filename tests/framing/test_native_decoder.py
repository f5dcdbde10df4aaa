"""The C decoder (ipckit._core.Decoder) against the reference FrameDecoder, operation by operation.

The same random sequence of operations -- feed, a readinto-style fill of
buffer() with a commit, commit_from with several counts, next_frame -- runs on
both; every result, every ``pending`` and every error message must be the same.
The byte streams mix good frames (small and past the 64 KiB direct-read
threshold), flipped bytes and plain garbage.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipckit import ProtocolError, _accel
from ipckit._framing import FLAG_EOS, FLAG_OOB, FrameDecoder, encode_frame, encode_header
from tests.fuzzing import counted

pytestmark = pytest.mark.skipif(not _accel.built(), reason="the C core is not built")

MAX = 1 << 20

_big = st.tuples(st.integers(65536, 70000), st.binary(min_size=1, max_size=4)).map(
    lambda t: (t[1] * (t[0] // len(t[1]) + 1))[: t[0]]
)
_frame = st.tuples(
    st.integers(0, 255), st.sampled_from([0, 0, FLAG_OOB]), st.one_of(st.binary(max_size=200), _big)
).map(lambda t: encode_frame(*t))
_eos = st.just(encode_header(0, FLAG_EOS, 0))
_bad = st.one_of(st.binary(min_size=1, max_size=40), st.just(encode_header(1, 0, 1 << 40)))


@st.composite
def _stream(draw: st.DrawFn) -> bytes:
    """Good frames; sometimes one bad piece among them, sometimes one flipped byte."""
    pieces = draw(st.lists(st.one_of(*[_frame] * 6, _eos), max_size=10))
    if draw(st.integers(0, 2)) == 0:
        pieces.insert(draw(st.integers(0, len(pieces))), draw(_bad))
    data = bytearray(b"".join(pieces))
    if data and draw(st.integers(0, 3)) == 0:
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["feed", "fill", "fill_many", "next", "next", "next"]),
        st.one_of(st.integers(1, 64), st.integers(1, 90_000)),
    ),
    min_size=4,
    max_size=60,
)


def _apply(decoder: Any, data: memoryview, ops: list[tuple[str, int]]) -> list[Any]:
    """Run ``ops`` on ``decoder``; the log of what each returned or raised."""
    log: list[Any] = []
    for op, n in ops:
        try:
            if op == "next":
                frame = decoder.next_frame()
                log.append(
                    None
                    if frame is None
                    else (
                        frame.serializer_id,
                        frame.flags,
                        type(frame.payload),
                        bytes(frame.payload),
                    )
                )
            elif op == "feed":
                piece, data = data[:n], data[n:]
                decoder.feed(piece)
            else:
                with decoder.buffer() as target:
                    take = min(target.nbytes, n, data.nbytes)
                    target[:take] = data[:take]
                data = data[take:]
                if op == "fill":
                    decoder.commit(take)
                else:
                    half = take // 2
                    counts = [half, take - half]
                    decoder.commit_from(counts)
                    log.append(counts)
        except ProtocolError as exc:
            log.append(("ProtocolError", str(exc)))
            break
        log.append(decoder.pending)
    return log


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream(), _ops)
@counted("frame decoder")
def test_native_decoder_does_what_the_reference_does(
    stream: bytes, ops: list[tuple[str, int]]
) -> None:
    from ipckit import _core

    ops = [*ops, *[("fill", 1 << 20), ("next", 1), ("next", 1), ("next", 1)] * 4]
    assert _apply(_core.Decoder(MAX), memoryview(stream), ops) == _apply(
        FrameDecoder(MAX), memoryview(stream), ops
    )


def test_commit_beyond_the_buffer_is_refused() -> None:
    # The reference would decode garbage past the buffer; C must never read past it.
    from ipckit import _core

    decoder = _core.Decoder(MAX)
    room = decoder.buffer().nbytes
    with pytest.raises(ValueError, match="commit"):
        decoder.commit(room + 1)
    with pytest.raises(ValueError, match="commit"):
        decoder.commit(-1)
    assert not decoder.pending


@pytest.mark.parametrize("native", [False, True])
def test_buffer_grows_only_when_no_view_is_kept(native: bool) -> None:
    from ipckit import _core

    decoder: Any = _core.Decoder(MAX) if native else FrameDecoder(MAX)
    frame = encode_frame(1, 0, bytes(1000))
    view = decoder.buffer()
    room = view.nbytes
    data = (frame * (room // len(frame) + 1))[:room]  # whole frames, then part of one
    view[:] = data
    decoder.commit(room)
    with pytest.raises(BufferError):
        decoder.buffer()  # full and nothing decoded: it must grow, but a view is out
    view.release()
    more = decoder.buffer()
    tail = frame[room % len(frame) :]
    more[: len(tail)] = tail
    more.release()
    decoder.commit(len(tail))
    count = 0
    while decoder.next_frame() is not None:
        count += 1
    assert count == room // len(frame) + 1
    assert not decoder.pending
