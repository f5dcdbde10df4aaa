"""The libraries users would otherwise pick: multiprocessing, faster-fifo, pyzmq.

Each is used the way its documentation suggests for bytes: ``multiprocessing.Queue``
and faster-fifo pickle what they carry (a bytes object pickles cheaply),
``multiprocessing.Pipe`` uses ``send_bytes``/``recv_bytes``, pyzmq sends frames
over ``ipc://`` in a private temporary directory. faster-fifo appears twice:
plain ``put``/``get``, and ``put_many``/``get_many`` with batches of 64, which is
how it is meant to be used for small messages. For the ``small-dict`` workload
each carries the dict the way its documentation shows for objects: ``put``/``get``,
``Connection.send``/``recv`` and pyzmq's ``send_pyobj``/``recv_pyobj``, all pickle.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Sequence
from typing import Any

from typing_extensions import Buffer

from ipckit._bench.contender import (
    CONSUMER,
    PRODUCER,
    Contender,
    Endpoint,
    Link,
    LinkSpec,
    Role,
    TempDir,
)

__all__ = ["BATCH", "PEER_CONTENDERS"]

#: Messages per send_many/put_many call in the batch variants.
BATCH = 64
#: Largest message a batch variant is measured with: batching is about per-message cost.
BATCH_MAX_SIZE = 64 * 1024
#: A blocking call in a child never waits longer than this; the parent's timeout comes first.
_BLOCK = 3600.0
_FORK = multiprocessing.get_context("fork")
#: Bytes a queue may hold in flight (mp.Queue maxsize, zmq high-water marks).
_IN_FLIGHT = 64 * 1024 * 1024


def _importable(module: str, extra: str = "bench") -> str | None:
    try:
        importlib.import_module(module)
    except ImportError:
        return f"not installed (pip install '.[{extra}]' in a clone of ipckit)"
    return None


def _batch_supports(spec: LinkSpec) -> str | None:
    if spec.duplex:
        return "n/a: batching does not apply to ping-pong"
    if spec.max_size > BATCH_MAX_SIZE:
        return "n/a: batching is for small messages"
    return None


# -- multiprocessing.Queue ------------------------------------------------------------


class _QueueEndpoint(Endpoint):
    def __init__(self, out: Any, inbound: Any) -> None:
        self._out = out
        self._in = inbound

    def send(self, data: bytes) -> None:
        self._out.put(data)

    def recv(self) -> Buffer:
        data: bytes = self._in.get()
        return data

    def send_obj(self, obj: Any) -> None:
        self._out.put(obj)

    def recv_obj(self) -> Any:
        return self._in.get()

    def flush(self) -> None:
        # put() only hands the object to a feeder thread; it is in the pipe once that
        # thread is done, and close() + join_thread() is the only way to wait for it.
        if self._out is not None:
            self._out.close()
            self._out.join_thread()

    def close(self) -> None:
        self.flush()  # before this process exits; a second call does nothing


class _MPQueueLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        # Bounded, like every other contender: unbounded, the producer would queue
        # references far faster than the feeder thread can pickle and write them.
        maxsize = max(4, min(10_000, _IN_FLIGHT // max(spec.max_size, 1)))
        self._fwd: Any = _FORK.Queue(maxsize)
        self._back: Any = _FORK.Queue(maxsize) if spec.duplex else None

    def endpoint(self, role: Role, index: int) -> Endpoint:
        if role == PRODUCER:
            return _QueueEndpoint(self._fwd, self._back)
        return _QueueEndpoint(self._back, self._fwd)

    def cleanup(self) -> None:
        for q in (self._fwd, self._back):
            if q is not None:
                q.close()
                q.cancel_join_thread()


# -- multiprocessing.Pipe -------------------------------------------------------------


class _ConnEndpoint(Endpoint):
    def __init__(self, out: Any, inbound: Any) -> None:
        self._out = out
        self._in = inbound

    def send(self, data: bytes) -> None:
        self._out.send_bytes(data)

    def recv(self) -> Buffer:
        data: bytes = self._in.recv_bytes()
        return data

    def send_obj(self, obj: Any) -> None:
        self._out.send(obj)

    def recv_obj(self) -> Any:
        return self._in.recv()


class _MPPipeLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        # duplex=False is an os.pipe; duplex=True a socketpair, as multiprocessing chooses.
        self._a, self._b = _FORK.Pipe(duplex=spec.duplex)

    def endpoint(self, role: Role, index: int) -> Endpoint:
        if role == PRODUCER:
            return _ConnEndpoint(self._b, self._b)
        return _ConnEndpoint(self._a, self._a)

    def cleanup(self) -> None:
        self._a.close()
        self._b.close()


# -- faster-fifo ----------------------------------------------------------------------


class _FFEndpoint(Endpoint):
    def __init__(self, out: Any, inbound: Any, batch: int) -> None:
        self._out = out
        self._in = inbound
        self.batch = batch

    def send(self, data: bytes) -> None:
        self._out.put(data, timeout=_BLOCK)

    def recv(self) -> Buffer:
        data: bytes = self._in.get(timeout=_BLOCK)
        return data

    def send_many(self, items: Sequence[bytes]) -> None:
        self._out.put_many(items, timeout=_BLOCK)

    def recv_many(self) -> Sequence[Buffer]:
        got: list[bytes] = self._in.get_many(timeout=_BLOCK, max_messages_to_get=self.batch)
        return got

    def send_obj(self, obj: Any) -> None:
        self._out.put(obj, timeout=_BLOCK)

    def recv_obj(self) -> Any:
        return self._in.get(timeout=_BLOCK)

    def send_obj_many(self, items: Sequence[Any]) -> None:
        self._out.put_many(items, timeout=_BLOCK)

    def recv_obj_many(self) -> Sequence[Any]:
        got: list[Any] = self._in.get_many(timeout=_BLOCK, max_messages_to_get=self.batch)
        return got


class _FFLink(Link):
    def __init__(self, spec: LinkSpec, batch: int) -> None:
        import faster_fifo

        # The buffer must hold a pickled message; a few of them keeps the producer busy.
        size = max(1_000_000, 4 * (spec.max_size + 64) * (batch if batch > 1 else 1))
        self._batch = batch
        self._fwd: Any = faster_fifo.Queue(max_size_bytes=size)
        self._back: Any = faster_fifo.Queue(max_size_bytes=size) if spec.duplex else None

    def endpoint(self, role: Role, index: int) -> Endpoint:
        if role == PRODUCER:
            return _FFEndpoint(self._fwd, self._back, self._batch)
        return _FFEndpoint(self._back, self._fwd, self._batch)

    def cleanup(self) -> None:
        for q in (self._fwd, self._back):
            if q is not None:
                q.close()


# -- pyzmq ----------------------------------------------------------------------------


class _ZmqEndpoint(Endpoint):
    def __init__(self, ctx: Any, out: Any, inbound: Any, zero_copy: bool) -> None:
        self._ctx = ctx
        self._out = out
        self._in = inbound
        self._zero_copy = zero_copy

    def send(self, data: bytes) -> None:
        # pyzmq's advice: copy small frames, hand big ones over without copying.
        self._out.send(data, copy=not self._zero_copy)

    def recv(self) -> Buffer:
        data: bytes = self._in.recv()
        return data

    def send_obj(self, obj: Any) -> None:
        self._out.send_pyobj(obj)

    def recv_obj(self) -> Any:
        return self._in.recv_pyobj()

    def close(self) -> None:
        for sock in (self._out, self._in):
            if sock is not None:
                sock.close(linger=5000)
        self._ctx.term()


class _ZmqLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        self._dir = TempDir()
        self._fwd = f"ipc://{self._dir.join('fwd')}"
        self._back = f"ipc://{self._dir.join('back')}" if spec.duplex else None
        # Bound the memory held in flight: the default high-water mark is 1000 messages.
        self._hwm = max(2, min(1000, _IN_FLIGHT // max(spec.max_size, 1)))
        self._zero_copy = spec.max_size >= 64 * 1024

    def endpoint(self, role: Role, index: int) -> Endpoint:
        import zmq

        ctx = zmq.Context()

        def sock(kind: int, addr: str | None, bind: bool) -> Any:
            if addr is None:
                return None
            s = ctx.socket(kind)
            s.setsockopt(zmq.SNDHWM, self._hwm)
            s.setsockopt(zmq.RCVHWM, self._hwm)
            if bind:
                s.bind(addr)
            else:
                s.connect(addr)
            return s

        if role == CONSUMER:
            inbound = sock(zmq.PULL, self._fwd, True)
            out = sock(zmq.PUSH, self._back, False)
        else:
            out = sock(zmq.PUSH, self._fwd, False)
            inbound = sock(zmq.PULL, self._back, True)
        return _ZmqEndpoint(ctx, out, inbound, self._zero_copy)

    def cleanup(self) -> None:
        self._dir.remove()


PEER_CONTENDERS: Sequence[Contender] = (
    Contender(
        "mp-queue",
        "multiprocessing.Queue put/get (pickles; feeder thread; bounded to 64 MiB or 10k items)",
        "peer",
        _MPQueueLink,
        many_producers=True,
        many_consumers=True,
        objects=True,
    ),
    Contender(
        "mp-pipe",
        "multiprocessing.Pipe send_bytes/recv_bytes (send/recv for objects)",
        "peer",
        _MPPipeLink,
        objects=True,
    ),
    Contender(
        "faster-fifo",
        "faster_fifo.Queue put/get, one message per call (pickles)",
        "peer",
        lambda spec: _FFLink(spec, 1),
        probe=lambda: _importable("faster_fifo"),
        many_producers=True,
        many_consumers=True,
        objects=True,
    ),
    Contender(
        "faster-fifo-batch",
        f"faster_fifo.Queue put_many/get_many, batches of {BATCH} (pickles)",
        "peer",
        lambda spec: _FFLink(spec, BATCH),
        probe=lambda: _importable("faster_fifo"),
        supports=_batch_supports,
        many_producers=True,
        many_consumers=True,
        objects=True,
        batch=BATCH,
    ),
    Contender(
        "zmq",
        "pyzmq PUSH/PULL over ipc:// (copy below 64 KiB, zero-copy above; send_pyobj for objects)",
        "peer",
        _ZmqLink,
        probe=lambda: _importable("zmq"),
        many_producers=True,
        objects=True,
    ),
)
