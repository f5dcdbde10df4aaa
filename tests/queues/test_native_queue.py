"""The C core's queue paths (ipckit._core.Queue) beside the pure ones, on fifo:// and mq://.

Both share one handle's state, so any mix of their calls keeps order and loses
nothing: batched units split across both, out-of-band messages (always the
pure path) between plain ones, a foreign unit the reference must judge after
plain ones, the end of the stream, and a native end facing a pure one in
another process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ipckit
from ipckit import _accel
from ipckit._framing import FLAG_EOS, encode_frame, encode_header
from ipckit.testing import unique_name

BOUND = 30


def _url(kind: str) -> str:
    name = unique_name("nq")
    return f"mq://{name}" if kind == "mq" else f"fifo:///tmp/{name}"


@pytest.fixture(params=["mq", "fifo"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    u = _url(request.param)
    yield u
    _remove(u)


def _remove(url: str) -> None:
    try:
        with ipckit.open(url) as ch:
            ch.unlink()
    except ipckit.ChannelNotFound:
        pass


def _pair(url: str) -> tuple[ipckit.Channel, ipckit.Channel]:
    a = ipckit.open(url, create=True)
    return a, ipckit.open(url)


def test_every_mix_of_calls_keeps_order(url: str, pure: bool) -> None:
    a, b = _pair(url)
    try:
        assert (a._core is None) == pure
        # Small messages take the fast path; 9000 bytes go out of band (pure path);
        # send_many packs several into one unit.
        sent = [bytes([i % 251]) * (9000 if i % 7 == 3 else 1 + i % 60) for i in range(300)]
        raw = [msgpack.packb(m) if i % 5 < 2 else m for i, m in enumerate(sent)]
        got = 0
        i = 0
        while i < len(sent):
            if i % 5 == 0:
                a.send_many(sent[i : i + 2], timeout=BOUND)  # i (and i+1) as objects
                step = 2
            elif i % 5 == 1:
                a.send(sent[i], timeout=BOUND)
                step = 1
            else:
                a.send_bytes(sent[i], timeout=BOUND)
                step = 1
            i += step
            # Receive as we go: the queue holds few units.
            while got < i:
                kind = got % 4
                if kind == 0:
                    with b.recv_view(timeout=BOUND) as view:  # always the pure path
                        assert bytes(view.data) == raw[got]
                    got += 1
                elif kind == 1 and got % 5 < 2:
                    batch = b.recv_many(3, timeout=BOUND)
                    assert batch == sent[got : got + len(batch)]
                    got += len(batch)
                elif got % 5 < 2:
                    assert b.recv(timeout=BOUND) == sent[got]
                    got += 1
                else:
                    assert b.recv_bytes(timeout=BOUND) == raw[got]
                    got += 1
        assert not b.poll(0)
        assert b.stats().messages_received == len(sent)
        assert a.stats().messages_sent == len(sent)
    finally:
        a.close()
        b.close()


def test_a_foreign_unit_is_judged_after_the_plain_ones(url: str, pure: bool) -> None:
    a, b = _pair(url)
    try:
        a.send_many([1, 2, 3], timeout=BOUND)
        a._transport._try_write(b"not an ipckit frame at all")  # as a foreign program would
        a.send(4, timeout=BOUND)
        assert b.recv_many(10, timeout=BOUND) == [1, 2, 3]
        with pytest.raises(ipckit.ProtocolError):
            b.recv(timeout=BOUND)
        assert b.recv(timeout=BOUND) == 4  # a queue goes on: the next unit is whole
    finally:
        a.close()
        b.close()


def test_the_rest_of_a_unit_waits_and_goes_back_at_close(url: str, pure: bool) -> None:
    a, b = _pair(url)
    try:
        # One unit; the put-back writes a unit per frame, so keep within mq's depth.
        a.send_many(list(range(12)), timeout=BOUND)
        assert b.recv(timeout=BOUND) == 0
        assert b.recv_many(5, timeout=BOUND) == [1, 2, 3, 4, 5]
        b.close()  # 6..11 were taken from the kernel with the unit: they go back
        c = ipckit.open(url)
        try:
            got: list[Any] = []
            while len(got) < 6:
                got.extend(c.recv_many(20, timeout=BOUND))
            assert got == list(range(6, 12))
        finally:
            c.close()
    finally:
        a.close()
        b.close()


def test_shutdown_ends_the_stream_on_both_paths(url: str, pure: bool) -> None:
    a, b = _pair(url)
    try:
        a.send_many(["x", "y"], timeout=BOUND)
        a.shutdown()
        assert b.recv_many(10, timeout=BOUND) == ["x", "y"]
        with pytest.raises(ipckit.ChannelClosed):
            b.recv(timeout=BOUND)
        with pytest.raises(ipckit.ChannelClosed):
            a.send("z", timeout=BOUND)
    finally:
        a.close()
        b.close()


def _echo(url: str, pure: bool, reply: str) -> None:
    _accel.set_pure(pure)
    with ipckit.open(url) as inbox, ipckit.open(reply) as outbox:
        assert (inbox._core is None) == pure
        while True:
            batch = inbox.recv_many(50, timeout=BOUND)
            outbox.send_many([m for m in batch if m is not None], timeout=BOUND)
            if batch[-1] is None:
                return


@pytest.mark.skipif(not _accel.built(), reason="the C core is not built")
@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("child_pure", [True, False], ids=["pure-child", "native-child"])
@pytest.mark.parametrize("kind", ["mq", "fifo"])
def test_a_native_end_and_a_pure_end_in_two_processes(
    kind: str, method: str, child_pure: bool
) -> None:
    was = _accel.core is None
    _accel.set_pure(not child_pure)
    up, down = _url(kind), _url(kind)
    try:
        with ipckit.open(up, create=True) as out, ipckit.open(down, create=True) as back:
            child = multiprocessing.get_context(method).Process(
                target=_echo, args=(up, child_pure, down)
            )
            child.start()
            try:
                msgs: list[Any] = [{"i": i, "b": bytes(i % 200)} for i in range(1500)]
                got: list[Any] = []
                for i in range(0, len(msgs), 5):
                    out.send_many(msgs[i : i + 5], timeout=BOUND)
                    while len(got) < i + 5:
                        got.extend(back.recv_many(100, timeout=BOUND))
                out.send(None, timeout=BOUND)
                assert got == msgs
            finally:
                child.join(BOUND)
                if child.is_alive():
                    child.kill()
                    child.join()
            assert child.exitcode == 0
            out.unlink()
            back.unlink()
    finally:
        _accel.set_pure(was)
        for u in (up, down):
            _remove(u)


_frame = st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(
    lambda t: encode_frame(t[0], 0, t[1])
)
_odd = st.one_of(
    st.binary(min_size=1, max_size=30),  # garbage
    st.just(encode_header(0, FLAG_EOS, 0)),
    st.builds(lambda n: encode_header(1, 0, n), st.integers(41, 1 << 40)),  # longer than the unit
    st.builds(lambda p: encode_frame(1, 0, p)[:-1], st.binary(min_size=1, max_size=20)),
)
_unit = st.lists(st.one_of(_frame, _frame, _frame, _odd), min_size=1, max_size=5).map(b"".join)


def _outcomes(url: str, pure: bool, units: list[bytes]) -> list[Any]:
    """What a receiver on the ``pure`` (or native) path makes of each raw unit."""
    was = _accel.core is None
    _accel.set_pure(pure)
    try:
        a, b = _pair(url)
    finally:
        _accel.set_pure(was)
    out: list[Any] = []
    try:
        for unit in units:
            assert a._transport._try_write(unit)
            a.send_bytes(b"sentinel", timeout=BOUND)
            while True:
                try:
                    got = b.recv_many(3, timeout=5)
                except (ipckit.ProtocolError, ipckit.SerializationError) as exc:
                    out.append(type(exc).__name__)
                    continue
                except (ipckit.ChannelClosed, ipckit.Empty) as exc:
                    out.append(type(exc).__name__)
                    return out  # an end-of-stream frame ends the channel for good
                out.extend(got)
                if got[-1] == b"sentinel":
                    break
    finally:
        a.close()
        b.close()
        a.unlink()
    return out


@pytest.mark.skipif(not _accel.built(), reason="the C core is not built")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["mq", "fifo"]), st.lists(_unit, min_size=1, max_size=4))
def test_native_and_pure_receivers_judge_every_unit_alike(kind: str, units: list[bytes]) -> None:
    url = _url(kind)
    try:
        assert _outcomes(url, False, units) == _outcomes(url, True, units)
    finally:
        _remove(url)
