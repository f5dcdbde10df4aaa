"""Pair factories for the message-passing backends: fifo, mq, unix, unix-abstract, tcp."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipckit
from ipckit import Channel
from ipckit.backends.mq import max_queue_depth
from ipckit.testing import PairFactory, unique_name

_DIR = tempfile.gettempdir()


def _queue_pair(make_url: Callable[[], str], create: Mapping[str, Any]) -> PairFactory:
    def factory(
        a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
    ) -> tuple[Channel, Channel]:
        url = make_url()
        left = ipckit.open(url, create=True, **{**create, **dict(a or {})})
        try:
            right = ipckit.open(url, **dict(b or {}))
        except BaseException:
            left.close()
            left.unlink()
            raise
        return left, right

    return factory


def _fifo_url() -> str:
    return "fifo://" + os.path.join(_DIR, unique_name("fifo"))


def _mq_url() -> str:
    return "mq://" + unique_name("mq")


_MQ_DEPTH = min(256, max_queue_depth())
# 1 KiB units keep two 256-deep queues under the default RLIMIT_MSGQUEUE (800 KiB);
# anything bigger travels out of band, which the checks then exercise too.
_MQ_CREATE = {"max_messages": _MQ_DEPTH, "message_size": "1KiB"}


def _mq_pair(
    a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
) -> tuple[Channel, Channel]:
    return _queue_pair(_mq_url, _MQ_CREATE)(a, b)


def _stream_pair(make_url: Callable[[], str], common: Mapping[str, Any]) -> PairFactory:
    """Listen, connect and accept; ``a`` is the connecting end, ``b`` the accepted one."""

    def factory(
        a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
    ) -> tuple[Channel, Channel]:
        with ipckit.listen(make_url(), **{**common, **dict(b or {})}) as listener:
            accepted: list[Channel] = []
            errors: list[BaseException] = []

            def serve() -> None:
                try:
                    accepted.append(listener.accept(timeout=30))
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            try:
                left = ipckit.connect(listener.url, timeout=30, **{**common, **dict(a or {})})
            finally:
                thread.join(30)
            if errors or not accepted:
                left.close()
                raise errors[0] if errors else AssertionError("accept did not finish")
            return left, accepted[0]

    return factory


def _unix_url() -> str:
    return "unix://" + os.path.join(_DIR, unique_name("sock"))


def _abstract_url() -> str:
    return "unix://@" + unique_name("abs")


FACTORIES: dict[str, PairFactory] = {
    "fifo": _queue_pair(_fifo_url, {}),
    "mq": _mq_pair,
    "unix": _stream_pair(_unix_url, {}),
    "unix-abstract": _stream_pair(_abstract_url, {}),
    "tcp": _stream_pair(lambda: "tcp://127.0.0.1:0", {"authkey": b"conformance-key"}),
}
