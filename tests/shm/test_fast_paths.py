"""The C core's fast paths give the same results and errors as the pure path.

Each case runs on both paths (the C core when it is built) over one shm:// queue,
with the inputs that make a fast call step aside: oversized and unencodable
batches, a ring that fills part-way, foreign serializers, out-of-band messages.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import ipckit
from ipckit import Full, MessageTooLarge, SerializationError, _accel
from ipckit.backends.shm import remove
from ipckit.testing import unique_name

PATHS = ["pure", "native"] if _accel.built() else ["pure"]


@pytest.fixture(params=PATHS)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[ipckit.Channel, ipckit.Channel]]:
    before = _accel.core is None
    _accel.set_pure(request.param == "pure")
    name = unique_name("fast")
    try:
        a = ipckit.open(f"shm://{name}", create=True, capacity="8KiB", max_message_size=100_000)
        b = ipckit.open(f"shm://{name}", max_message_size=100_000)
    finally:
        _accel.set_pure(before)
    assert (a._transport.native_core is not None) == (request.param == "native")  # type: ignore[attr-defined]
    yield a, b
    a.close()
    b.close()
    remove(name)


def test_a_batch_with_one_oversized_message_sends_nothing(
    pair: tuple[ipckit.Channel, ipckit.Channel],
) -> None:
    a, b = pair
    with pytest.raises(MessageTooLarge):
        a.send_many([b"ok", b"x" * 100_001])
    with pytest.raises(SerializationError):
        a.send_many([1, {2, 3}])
    assert not b.poll(0)
    assert a.stats().messages_sent == 0


def test_a_batch_that_fills_the_ring_reports_how_many_went(
    pair: tuple[ipckit.Channel, ipckit.Channel],
) -> None:
    a, b = pair
    batch = [bytes([i]) * 1000 for i in range(20)]  # about 2.5 rings' worth
    with pytest.raises(Full) as caught:
        a.send_many(batch, timeout=0.2)
    sent = caught.value.sent
    assert 0 < sent < 20
    got: list[bytes] = []
    while b.poll(0):
        got += b.recv_many(100, timeout=1)
    assert got == batch[:sent], "exactly the reported prefix arrived, whole and in order"
    assert a.stats().messages_sent == sent
    assert b.stats().messages_received == sent


def test_mixed_serializers_and_big_messages_in_one_receive(
    pair: tuple[ipckit.Channel, ipckit.Channel],
) -> None:
    a, b = pair
    url = a.url
    with ipckit.open(url, serializer="json") as j, ipckit.open(url, serializer="pickle") as p:
        a.send({"m": 1})
        a.send_bytes(b"raw")
        j.send([1, 2])
        a.send(b"big" * 2000)  # over half the ring: out of band
        p.send({1, 2})
        assert b.recv_many(2, timeout=1) == [{"m": 1}, b"raw"]
        with pytest.raises(SerializationError) as caught:
            b.recv_many(10, timeout=1)
        assert caught.value.payload == b"[1,2]", "the foreign message is in the exception"
        assert b.recv(timeout=1) == b"big" * 2000
        with pytest.raises(SerializationError, match="pickle"):
            b.recv(timeout=1)
        a.send_many(list(range(10)))
        assert b.recv_many(4, timeout=1) == [0, 1, 2, 3]
        assert [b.recv(timeout=1) for _ in range(6)] == list(range(4, 10))
        assert not b.poll(0)
        # A bad message in the middle of a batch: the ones before come now, it raises
        # next, and the ones after it are not lost.
        a.send(1)
        j.send("j")
        a.send_many([2, 3])
        assert b.recv_many(10, timeout=1) == [1]
        with pytest.raises(SerializationError):
            b.recv_many(10, timeout=1)
        assert b.recv_many(10, timeout=1) == [2, 3]
        assert b.stats().messages_received == 19


def test_generators_and_tuples_are_sent_as_lists(
    pair: tuple[ipckit.Channel, ipckit.Channel],
) -> None:
    a, b = pair
    a.send_many(x for x in range(3))
    a.send((1, (2, 3)))
    assert b.recv_many(10, timeout=1) == [0, 1, 2, [1, [2, 3]]]
    a.send_many(())
    assert not b.poll(0)
