"""The serializer halves the C core calls (MsgpackSerializer.native_codec) decode as loads does.

Crafted msgpack payloads -- extension types, timestamps, non-string keys,
trailing bytes, truncations, the numpy layout's marker -- arrive as msgpack
frames on a native and a pure channel: each receive returns what ``loads``
returns, or raises the SerializationError it raises, and the channel goes on.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ipckit
from ipckit._deadline import Deadline
from ipckit._transport import OutFrame
from ipckit.serializers import MSGPACK_ID
from ipckit.serializers._msgpack import MsgpackSerializer
from ipckit.testing import unique_name

BOUND = 30
REF = MsgpackSerializer()
NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)

CRAFTED = [
    msgpack.packb({"a": 1, "b": [1, 2.5, None, True], "c": b"\0\1"}),
    msgpack.packb(msgpack.ExtType(5, b"unknown")),
    msgpack.packb([1, msgpack.ExtType(1, b"not an array")]),
    msgpack.packb(NOW, datetime=True),
    msgpack.packb({1: "int key", (1, 2): "tuple key"}),
    msgpack.packb("one") + msgpack.packb("two"),  # trailing document
    msgpack.packb("x" * 100)[:-10],  # truncated
    b"",
    b"\xc1" + bytes(30),  # the numpy layout's marker, with a broken header
    msgpack.packb("x" * 100_000),  # over the kept unpacker's size
    b"\x93\x01\x02",  # an array that never ends
    msgpack.packb({"deep": [[[[[[[[[[["x"]]]]]]]]]]]}),
]


def _pairs() -> list[Any]:
    out = [pytest.param(ipckit.pipe, id="pipe")]

    def shm() -> tuple[ipckit.Channel, ipckit.Channel]:
        url = f"shm://{unique_name('codec')}"
        a = ipckit.open(url, create=True)
        return a, ipckit.open(url)

    out.append(pytest.param(shm, id="shm"))
    return out


def _expected(payload: bytes) -> tuple[str, Any]:
    try:
        return "ok", REF.loads(payload)
    except ipckit.SerializationError as exc:
        return "error", str(exc)


def _received(get: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", get()
    except ipckit.SerializationError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("make", _pairs())
def test_crafted_payloads_decode_as_loads_decodes(
    make: Callable[[], tuple[ipckit.Channel, ipckit.Channel]], pure: bool
) -> None:
    a, b = make()
    try:
        for many in (False, True):
            for payload in CRAFTED:
                a._send((OutFrame(MSGPACK_ID, 0, payload, len(payload)),), Deadline(BOUND))
                a.send("after", timeout=BOUND)
                rest: list[Any] = []
                if many:
                    try:
                        batch = b.recv_many(10, timeout=BOUND)
                        got: tuple[str, Any] = ("ok", batch[0])
                        rest = batch[1:]
                    except ipckit.SerializationError as exc:
                        got = ("error", str(exc))
                else:
                    got = _received(lambda: b.recv(timeout=BOUND))
                assert got == _expected(payload), payload[:20]
                # Nothing lost, nothing stuck.
                assert (rest or [b.recv(timeout=BOUND)]) == ["after"]
    finally:
        a.close()
        b.close()
        a.unlink()


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(-(2**63), 2**64 - 1), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_values, min_size=1, max_size=8))
def test_values_round_trip_through_the_fast_halves(values: list[Any]) -> None:
    a, b = ipckit.pipe()
    with a, b:
        a.send_many(values, timeout=BOUND)
        got: list[Any] = []
        while len(got) < len(values):
            got.extend(b.recv_many(len(values), timeout=BOUND))
        assert got == values
