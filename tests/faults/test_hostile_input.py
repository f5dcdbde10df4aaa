"""Hostile input: malformed msgpack, forged numpy layouts, pickles, and garbage handshakes.

A peer that sends bytes no ipckit would write must get a clear error at the receiver,
quickly, with the channel usable afterwards; a pickle on a msgpack channel must never
run; a handshake fed garbage must fail with an ipckit error, never hang or crash.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ipckit
from ipckit._deadline import Deadline
from ipckit._transport import OutFrame
from ipckit.backends._handshake import client_handshake, server_handshake
from ipckit.serializers import MSGPACK_ID, PICKLE_ID, MsgpackSerializer
from tests.conformance.test_contract import FACTORIES
from tests.fuzzing import counted

_MSGPACK = MsgpackSerializer()
BACKENDS = ["pipe", "shm", "shm-pure", "unix", "mq", "fifo"]
#: A decode that takes longer than this is a failure: the worst case here is far below it.
QUICK = 1.0

MALFORMED = {
    "deep nesting": b"\x91" * 200_000 + b"\xc0",
    "huge str length": b"\xdb\xff\xff\xff\xff" + b"x" * 10,
    "huge array length": b"\xdd\xff\xff\xff\xff\xc0",
    "huge map length": b"\xdf\xff\xff\xff\xff\xc0\xc0",
    "huge bin length": b"\xc6\xff\xff\xff\xf0abc",
    "invalid utf-8": b"\xa4\xff\xfe\xfd\xfc",
    "unknown extension": b"\xd4\x05\x00",
    "ext 8 bytes of type 9": b"\xd7\x09" + bytes(8),
    "truncated": msgpack.packb({"a": [1, 2, 3]})[:-2],
    "reserved byte": b"\xc1",
    "array layout, truncated": b"\xc1\x00",
    "array layout, huge count": b"\xc1" + struct.pack("<3xII", 0xFFFFFFFF, 4) + bytes(16),
    "array layout, bad dtype": b"\xc1\x00\x00\x00"
    + struct.pack("<II", 1, 9)
    + struct.pack("<Q", 8)
    + msgpack.packb(msgpack.ExtType(1, msgpack.packb(["no-such-dtype", [1], 0])))
    + bytes(64),
}


def _raw(ch: ipckit.Channel, serializer_id: int, payload: bytes) -> None:
    """Send bytes as a frame of ``serializer_id``: what a hostile or broken peer can do."""
    ch._transport.send_frames(  # type: ignore[attr-defined]
        [OutFrame(serializer_id, 0, payload, len(payload))], Deadline(10)
    )


def _pair(backend: str) -> tuple[ipckit.Channel, ipckit.Channel]:
    extra = {"max_message_size": 8 << 20}
    return FACTORIES[backend](extra, extra)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_msgpack_is_a_quick_clear_error(backend: str, case: str) -> None:
    a, b = _pair(backend)
    try:
        _raw(a, MSGPACK_ID, MALFORMED[case])
        a.send({"after": case})
        started = time.monotonic()
        with pytest.raises(ipckit.SerializationError) as info:
            b.recv(timeout=10)
        assert time.monotonic() - started < QUICK
        assert info.value.payload == MALFORMED[case]  # the bytes, for the user to inspect
        assert b.recv(timeout=10) == {"after": case}  # the channel goes on
    finally:
        b.close()
        a.close()
        a.unlink()


class _Canary:
    """Unpickling this calls os.mkdir on the canary path: proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pickle_on_a_msgpack_channel_never_runs(backend: str, tmp_path: Path) -> None:
    import pickle

    canary = str(tmp_path / "pickle-ran")
    a, b = _pair(backend)
    try:
        _raw(a, PICKLE_ID, pickle.dumps(_Canary(canary)))
        with pytest.raises(ipckit.SerializationError, match="refused a pickle"):
            b.recv(timeout=10)
        _raw(a, MSGPACK_ID, pickle.dumps(_Canary(canary)))  # mislabelled: msgpack reads it
        with pytest.raises(ipckit.SerializationError):
            b.recv(timeout=10)
        assert not os.path.exists(canary)
        a.send("after")
        assert b.recv(timeout=10) == "after"
    finally:
        b.close()
        a.close()
        a.unlink()


def _valid_messages() -> st.SearchStrategy[bytes]:
    """Encodings of plain values, and of values holding numpy arrays (the array layout)."""
    ints = st.integers(-(2**63), 2**64 - 1)
    leaves = st.none() | st.booleans() | ints | st.floats() | st.text() | st.binary()
    values = st.recursive(
        leaves, lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids), max_leaves=20
    )
    arrays = hnp.arrays(
        hnp.scalar_dtypes() | hnp.byte_string_dtypes() | hnp.unicode_string_dtypes(),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
    )
    with_arrays = st.lists(arrays | leaves, min_size=1, max_size=3) | arrays
    return values.map(msgpack.packb) | with_arrays.map(lambda v: bytes(_MSGPACK.dumps(v)))


@st.composite
def _hostile(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid message with bytes flipped, cut or appended."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(_valid_messages()))
    for _ in range(draw(st.integers(1, 4))):
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8))


_byte_bounds: Any = getattr(getattr(np.lib, "array_utils", None), "byte_bounds", None) or getattr(
    np, "byte_bounds", None
)


def _arrays_in(value: Any) -> list[Any]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays_in(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays_in(v)]
    return []


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_hostile(), st.booleans())
@counted("msgpack with numpy")
def test_fuzzed_payloads_decode_or_raise_serialization_error(payload: bytes, owned: bool) -> None:
    """Arrays that decode lie inside the payload; everything else is a SerializationError.

    From a bytearray arrays are views of it; from bytes (read-only) they are copies.
    """
    data: bytes | bytearray = bytearray(payload) if owned else payload
    started = time.monotonic()
    try:
        value = _MSGPACK.loads(data)
    except ipckit.SerializationError:
        return
    finally:
        assert time.monotonic() - started < QUICK
    start = np.frombuffer(data, dtype=np.uint8).__array_interface__["data"][0] if data else 0
    for arr in _arrays_in(value):
        assert arr.nbytes <= len(payload), (arr.shape, arr.dtype, len(payload))
        if owned and arr.nbytes and arr.base is not None:  # a view: inside the payload
            low, high = _byte_bounds(arr)
            assert start <= low and high <= start + len(payload), (low, high, start)


@pytest.mark.parametrize("backend", ["pipe", "shm", "shm-pure"])
def test_fuzzed_msgpack_never_breaks_the_channel(backend: str) -> None:
    a, b = _pair(backend)
    try:

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(_hostile())
        @counted("msgpack through a channel")
        def one(payload: bytes) -> None:
            _raw(a, MSGPACK_ID, payload)
            a.send("mark")
            started = time.monotonic()
            try:
                b.recv(timeout=10)  # a value (the bytes were valid) or a clear error
            except ipckit.SerializationError:
                pass
            assert time.monotonic() - started < QUICK
            got = b.recv(timeout=10)
            while got != "mark":  # bytes that decoded as a value came first
                got = b.recv(timeout=10)

        one()
    finally:
        b.close()
        a.close()
        a.unlink()


_HANDSHAKE_ERRORS = (
    ipckit.AuthenticationError,
    ipckit.ProtocolError,
    ipckit.Timeout,
    ipckit.ChannelClosed,
)


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("key", [None, b"k" * 32], ids=["no-key", "key"])
def test_a_garbage_handshake_fails_cleanly(side: str, key: bytes | None) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=120) | st.binary(max_size=80).map(lambda b: b"IKSH\x01" + b))
    @counted("handshake")
    def one(garbage: bytes) -> None:
        mine, theirs = socket.socketpair()
        with mine, theirs:
            theirs.sendall(garbage)
            theirs.shutdown(socket.SHUT_WR)  # then silence: the handshake must not wait on
            started = time.monotonic()
            try:
                if side == "server":
                    server_handshake(mine, key, Deadline(2))
                else:
                    client_handshake(mine, key, Deadline(2), "unix://fuzz")
            except _HANDSHAKE_ERRORS:
                pass
            assert time.monotonic() - started < QUICK

    one()
