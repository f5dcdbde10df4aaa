"""The serializer layer on its own: what each one carries and how it fails."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipckit import ConfigurationError, SerializationError
from ipckit.serializers import (
    CUSTOM_ID,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    RawSerializer,
    resolve_serializer,
    serializer_id_of,
)
from tests.fuzzing import counted

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(msgpack_values)
def test_msgpack_round_trip(value: object) -> None:
    ser = MsgpackSerializer()
    assert ser.loads(ser.dumps(value)) == value


def test_msgpack_keeps_bytes_and_turns_tuples_into_lists() -> None:
    ser = MsgpackSerializer()
    assert ser.loads(ser.dumps({"b": b"\x00\x01", "t": (1, 2)})) == {"b": b"\x00\x01", "t": [1, 2]}


@pytest.mark.parametrize(
    ("value", "hint"),
    [(2**64, "64-bit"), (-(2**63) - 1, "64-bit"), ({1, 2}, "set"), (object(), "pickle")],
)
def test_msgpack_says_what_it_cannot_encode(value: object, hint: str) -> None:
    with pytest.raises(SerializationError, match=hint) as info:
        MsgpackSerializer().dumps(value)
    assert "pickle" in str(info.value)


def test_msgpack_refuses_unknown_extension() -> None:
    import msgpack

    data = msgpack.packb(msgpack.ExtType(42, b"zz"))
    with pytest.raises(SerializationError, match="extension type 42"):
        MsgpackSerializer().loads(data)


def test_msgpack_datetime_and_numpy_scalars() -> None:
    ser = MsgpackSerializer()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert ser.loads(ser.dumps(when)) == when
    assert ser.loads(ser.dumps([np.int64(5), np.float32(1.5)])) == [5, 1.5]


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(30.0)[::4],
        np.zeros((0,), dtype=np.complex128),
        np.array(True),
        np.arange(10, dtype=">u4"),
    ],
)
def test_msgpack_numpy_round_trip(arr: np.ndarray) -> None:  # type: ignore[type-arg]
    ser = MsgpackSerializer()
    payload = bytearray(ser.dumps({"a": arr, "b": [arr, 1]}))
    out = ser.loads(payload)
    for got in (out["a"], out["b"][0]):
        assert got.dtype == arr.dtype
        assert got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
        assert got.flags.writeable


def test_msgpack_numpy_decodes_without_copy_from_owned_buffer() -> None:
    ser = MsgpackSerializer()
    payload = bytearray(ser.dumps(np.arange(1000, dtype=np.float64)))
    got = ser.loads(payload)
    assert np.shares_memory(got, np.frombuffer(payload, dtype=np.uint8))


def test_msgpack_numpy_copies_from_read_only_buffer() -> None:
    ser = MsgpackSerializer()
    payload = bytes(ser.dumps(np.arange(10)))
    got = ser.loads(payload)
    got[0] = 99
    assert got.flags.writeable


def test_msgpack_refuses_object_arrays() -> None:
    with pytest.raises(SerializationError, match="pickle"):
        MsgpackSerializer().dumps(np.array([object()], dtype=object))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
@counted("msgpack")
def test_msgpack_garbage_only_raises_serialization_error(junk: bytes) -> None:
    try:
        MsgpackSerializer().loads(junk)
    except SerializationError:
        pass


def test_truncated_array_payload() -> None:
    ser = MsgpackSerializer()
    payload = bytes(ser.dumps(np.arange(100)))
    with pytest.raises(SerializationError):
        ser.loads(payload[:-50])


def test_raw_serializer() -> None:
    raw = RawSerializer()
    assert raw.loads(raw.dumps(bytearray(b"ab"))) == b"ab"
    with pytest.raises(SerializationError, match="bytes-like"):
        raw.dumps("text")


def test_json_serializer() -> None:
    js = JsonSerializer()
    assert js.loads(js.dumps({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}
    with pytest.raises(SerializationError, match="msgpack"):
        js.dumps(b"bytes")
    with pytest.raises(SerializationError):
        js.loads(b"{nope")


def test_pickle_serializer() -> None:
    pk = PickleSerializer()
    assert pk.loads(pk.dumps({1, 2})) == {1, 2}
    with pytest.raises(SerializationError):
        pk.dumps(lambda: None)
    with pytest.raises(SerializationError):
        pk.loads(pickle.dumps(1)[:-1])


def test_resolve_by_name_and_object() -> None:
    assert isinstance(resolve_serializer(None), MsgpackSerializer)
    assert isinstance(resolve_serializer("json"), JsonSerializer)
    with pytest.raises(ConfigurationError, match="msgpack"):
        resolve_serializer("yaml")
    with pytest.raises(ConfigurationError):
        resolve_serializer(42)  # type: ignore[arg-type]


class Upper:
    def dumps(self, obj: str) -> bytes:
        return obj.upper().encode()

    def loads(self, data: bytes) -> str:
        return bytes(data).decode()


class Tagged(Upper):
    id = 77


class Reserved(Upper):
    id = 2


def test_user_serializer_ids() -> None:
    assert serializer_id_of(Upper()) == CUSTOM_ID
    assert serializer_id_of(Tagged()) == 77
    with pytest.raises(ConfigurationError, match="range"):
        serializer_id_of(Reserved())
