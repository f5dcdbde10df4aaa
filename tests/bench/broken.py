"""Deliberately broken contenders: the bench must never show a number for them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import Buffer

from ipckit._bench.contender import CONSUMER, PRODUCER, Contender, Endpoint, Link, LinkSpec, Role
from ipckit._bench.peers import PEER_CONTENDERS
from ipckit._bench.raw import RAW_CONTENDERS

RAW_PIPE = RAW_CONTENDERS[0]
assert RAW_PIPE.name == "raw-pipe"
RAW_MQ = next(c for c in RAW_CONTENDERS if c.name == "raw-mq")
MP_PIPE = next(c for c in PEER_CONTENDERS if c.name == "mp-pipe")

#: The producer (or, for the ``consumer-`` modes, the consumer) misbehaves on this message.
AT = 5


def _spoil(item: Any, how: str) -> Any:
    """``item`` with one byte flipped or cut off; for a dict, its body changed or gone."""
    if isinstance(item, dict):
        if how == "flip":
            return {**item, "body": {**item["body"], "score": 0.5}}
        return {k: v for k, v in item.items() if k != "body"}
    if how == "flip":
        bad = bytearray(item)
        bad[len(bad) // 2] ^= 0x01
        return bytes(bad)
    return item[:-1]


class _BadEndpoint(Endpoint):
    def __init__(self, inner: Endpoint, mode: str, batch: int) -> None:
        self._inner = inner
        self._mode = mode
        self._n = 0  # messages sent, and (separately: ping-pong does both) received
        self._got = 0
        self._held: Any = None
        self.batch = batch
        self.implementation = inner.implementation

    def _deliver(self, item: Any, send: Callable[[Any], None]) -> None:
        n = self._n
        self._n += 1
        if n == AT:
            if self._mode in ("flip", "truncate"):
                item = _spoil(item, self._mode)
            elif self._mode == "drop":
                return
            elif self._mode == "duplicate":
                send(item)
            elif self._mode == "swap":  # reorder: this one goes out after the next
                self._held = item
                return
            elif self._mode == "crash":
                raise RuntimeError("deliberate crash")
            elif self._mode == "die":
                os._exit(3)
            elif self._mode == "hang":
                time.sleep(3600)
        send(item)
        if self._held is not None:
            held, self._held = self._held, None
            send(held)

    def _taken(self) -> None:
        n = self._got
        self._got += 1
        if n == AT:
            if self._mode == "consumer-die":
                os._exit(3)
            elif self._mode == "consumer-hang":
                time.sleep(3600)

    def send(self, data: bytes) -> None:
        self._deliver(data, self._inner.send)

    def recv(self) -> Buffer:
        self._taken()
        return self._inner.recv()

    def send_many(self, items: Sequence[bytes]) -> None:
        for item in items:
            self.send(item)

    def recv_many(self) -> Sequence[Buffer]:
        return [self.recv()]

    def send_obj(self, obj: Any) -> None:
        self._deliver(obj, self._inner.send_obj)

    def recv_obj(self) -> Any:
        self._taken()
        return self._inner.recv_obj()

    def send_obj_many(self, items: Sequence[Any]) -> None:
        for item in items:
            self.send_obj(item)

    def recv_obj_many(self) -> Sequence[Any]:
        return [self.recv_obj()]

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:
        self._inner.close()


class _BadLink(Link):
    def __init__(self, spec: LinkSpec, inner: Contender, mode: str, batch: int) -> None:
        self._inner = inner.make_link(spec)
        self._mode = mode
        self._batch = batch
        self._producers = spec.producers

    def endpoint(self, role: Role, index: int) -> Endpoint:
        ep = self._inner.endpoint(role, index)
        on_consumer = self._mode.startswith("consumer-")
        # Producers misbehave (the closer, index == producers, never does); consumers are
        # sound unless the mode says otherwise. With batch > 1 they go through recv_many.
        if role == PRODUCER and not on_consumer and index < self._producers:
            return _BadEndpoint(ep, self._mode, self._batch)
        if role == CONSUMER and on_consumer:
            return _BadEndpoint(ep, self._mode, self._batch)
        return _BadEndpoint(ep, "none", self._batch)

    def cleanup(self) -> None:
        self._inner.cleanup()


def broken(mode: str, batch: int = 1, inner: Contender = RAW_PIPE) -> Contender:
    """``inner`` (a raw pipe by default) whose producer does ``mode`` to message #AT.

    ``"none"``: nothing; ``consumer-die``/``consumer-hang``: the consumer does it.
    """
    return Contender(
        f"broken-{mode}",
        f"{inner.name} that does '{mode}' to message #{AT}",
        "test",
        lambda spec: _BadLink(spec, inner, mode, batch),
        many_producers=True,
        many_consumers=inner.many_consumers,
        objects=inner.objects,
    )


def failing_setup() -> Contender:
    def make(spec: LinkSpec) -> Link:
        raise OSError("no such thing")

    return Contender("broken-setup", "setup always fails", "test", make)


def unavailable() -> Contender:
    return Contender(
        "not-here", "never available", "test", RAW_PIPE.make_link, probe=lambda: "not installed"
    )
