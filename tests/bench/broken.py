"""Deliberately broken contenders: the bench must never show a number for them."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from typing_extensions import Buffer

from ipckit._bench.contender import PRODUCER, Contender, Endpoint, Link, LinkSpec, Role
from ipckit._bench.raw import RAW_CONTENDERS

RAW_PIPE = RAW_CONTENDERS[0]
assert RAW_PIPE.name == "raw-pipe"

#: The producer misbehaves on this message (counting from 0).
AT = 5


class _BadEndpoint(Endpoint):
    def __init__(self, inner: Endpoint, mode: str, batch: int) -> None:
        self._inner = inner
        self._mode = mode
        self._n = 0
        self.batch = batch

    def send(self, data: bytes) -> None:
        n = self._n
        self._n += 1
        if n == AT:
            if self._mode == "flip":
                bad = bytearray(data)
                bad[len(bad) // 2] ^= 0x01
                data = bytes(bad)
            elif self._mode == "drop":
                return
            elif self._mode == "duplicate":
                self._inner.send(data)
            elif self._mode == "truncate":
                data = data[:-1]
            elif self._mode == "crash":
                raise RuntimeError("deliberate crash")
            elif self._mode == "die":
                os._exit(3)
            elif self._mode == "hang":
                time.sleep(3600)
        self._inner.send(data)

    def recv(self) -> Buffer:
        return self._inner.recv()

    def send_many(self, items: Sequence[bytes]) -> None:
        for item in items:
            self.send(item)

    def recv_many(self) -> Sequence[Buffer]:
        return [self._inner.recv()]

    def close(self) -> None:
        self._inner.close()


class _BadLink(Link):
    def __init__(self, spec: LinkSpec, mode: str, batch: int) -> None:
        self._inner = RAW_PIPE.make_link(spec)
        self._mode = mode
        self._batch = batch

    def endpoint(self, role: Role, index: int) -> Endpoint:
        ep = self._inner.endpoint(role, index)
        if role == PRODUCER:
            return _BadEndpoint(ep, self._mode, self._batch)
        # The consumer is sound; with batch > 1 it goes through recv_many.
        return _BadEndpoint(ep, "none", self._batch)

    def cleanup(self) -> None:
        self._inner.cleanup()


def broken(mode: str, batch: int = 1) -> Contender:
    """A raw pipe whose producer does ``mode`` to message #AT (``"none"``: nothing)."""
    return Contender(
        f"broken-{mode}",
        f"raw pipe that does '{mode}' to message #{AT}",
        "test",
        lambda spec: _BadLink(spec, mode, batch),
        many_producers=True,
    )


def failing_setup() -> Contender:
    def make(spec: LinkSpec) -> Link:
        raise OSError("no such thing")

    return Contender("broken-setup", "setup always fails", "test", make)


def unavailable() -> Contender:
    return Contender(
        "not-here", "never available", "test", RAW_PIPE.make_link, probe=lambda: "not installed"
    )
