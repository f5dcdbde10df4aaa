"""Every ipckit transport as a contender, found at run time.

Backends land one by one; a scheme whose backend module is missing (a
``ConfigurationError`` from :func:`ipckit.backends.load_backend`, or an import
error) is listed as skipped, so the bench picks each new backend up the day it
exists. Byte messages go through ``send_bytes``/``recv_bytes`` (serializer
bypassed): those workloads measure transports, not msgpack. The ``small-dict``
workload goes through ``send``/``recv`` with the default serializer, msgpack.

Native or pure: each end records ``ipckit._accel.native`` when it opens its
handles, and the report shows it on the row. The ``-pure`` contenders call
``ipckit._accel.set_pure(True)`` in every process before it opens a handle, so
one run shows both paths side by side; where the C core is not built, both rows
run pure and say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from typing_extensions import Buffer

import ipckit
from ipckit._bench.contender import (
    CONSUMER,
    PRODUCER,
    Contender,
    Endpoint,
    Link,
    LinkSpec,
    Role,
    TempDir,
    Unit,
)
from ipckit._bench.peers import BATCH, _batch_supports
from ipckit._framing import HEADER_SIZE
from ipckit.backends import load_backend
from ipckit.errors import ConfigurationError
from ipckit.testing import unique_name

__all__ = ["IPCKIT_CONTENDERS", "current_implementation", "pure_path", "spin_value"]

#: How long a child waits for a peer to connect or a channel to appear.
_CONNECT_TIMEOUT = 30.0


def _accel() -> Any:
    """``ipckit._accel``, or None in an ipckit that predates it (and has no C core)."""
    try:
        from ipckit import _accel
    except ImportError:
        return None
    return _accel


def current_implementation() -> str:
    """``native`` if handles opened now in this process use the C core, else ``pure``."""
    accel = _accel()
    return "native" if accel is not None and accel.native else "pure"


@contextlib.contextmanager
def pure_path(pure: bool) -> Iterator[None]:
    """Open handles inside on the pure path if ``pure``; this process's setting comes back after."""
    accel = _accel()
    if not pure or accel is None:
        yield
        return
    was_pure = accel.core is None
    accel.set_pure(True)
    try:
        yield
    finally:
        accel.set_pure(was_pure)


class ChannelEndpoint(Endpoint):
    """An :class:`ipckit.Channel` per direction (the same one twice when it is duplex)."""

    def __init__(
        self,
        out: ipckit.Channel | None,
        inbound: ipckit.Channel | None,
        batch: int = 1,
        implementation: str | None = None,
        aio: bool = False,
    ):
        self._out = out
        self._in = inbound
        self.batch = batch
        #: Run the round's loop in asyncio through ipckit.aio (the -aio rows).
        self.aio = aio
        self.implementation = implementation or current_implementation()

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        assert self._out is not None
        self._out.send_bytes(data)

    def recv(self) -> Buffer:
        """Receive raw bytes."""
        assert self._in is not None
        return self._in.recv_bytes()

    def send_many(self, items: Sequence[bytes]) -> None:
        """One ``send_many`` call (the channel uses the raw serializer)."""
        assert self._out is not None
        self._out.send_many(items)

    def recv_many(self) -> Sequence[Buffer]:
        """One ``recv_many`` call of up to ``batch`` messages."""
        assert self._in is not None
        got: list[Buffer] = self._in.recv_many(max_items=self.batch)
        return got

    def send_obj(self, obj: Any) -> None:
        """``send``: the channel's serializer (msgpack) encodes it."""
        assert self._out is not None
        self._out.send(obj)

    def recv_obj(self) -> Any:
        """``recv``: decoded by the channel's serializer."""
        assert self._in is not None
        return self._in.recv()

    def send_obj_many(self, items: Sequence[Any]) -> None:
        """One ``send_many`` call of objects."""
        assert self._out is not None
        self._out.send_many(items)

    def recv_obj_many(self) -> Sequence[Any]:
        """One ``recv_many`` call of up to ``batch`` objects."""
        assert self._in is not None
        got: list[Any] = self._in.recv_many(max_items=self.batch)
        return got

    def close(self) -> None:
        """Close both handles."""
        for ch in (self._out, self._in):
            if ch is not None:
                ch.close()


def _probe_scheme(scheme: str) -> str | None:
    try:
        load_backend(scheme)
    except ConfigurationError as exc:
        if "not available" in str(exc):
            return "not available"
        return f"not available ({exc})"
    except ImportError as exc:
        return f"not available (import error: {exc})"
    return None


# -- pipe ---------------------------------------------------------------------------


def _probe_pipe() -> str | None:
    # pipe has no URL scheme to look up: make a pair to see that it works.
    try:
        pair = ipckit.pipe()
    except ImportError as exc:
        return f"not available (import error: {exc})"
    for ch in pair:
        ch.close()
    return None


class _PipeLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        # The parent opens both ends and the children inherit them: they ran as the parent opened.
        self._implementation = current_implementation()
        self._fwd = ipckit.pipe(duplex=False)  # (receive end, send end)
        self._back = ipckit.pipe(duplex=False) if spec.duplex else None

    def endpoint(self, role: Role, index: int) -> Endpoint:
        f_in, f_out = self._fwd
        b_in, b_out = self._back if self._back is not None else (None, None)
        if role == PRODUCER:
            return ChannelEndpoint(f_out, b_in, implementation=self._implementation)
        return ChannelEndpoint(b_out, f_in, implementation=self._implementation)

    def cleanup(self) -> None:
        for pair in (self._fwd, self._back):
            for ch in pair or ():
                ch.close()


# -- named queues: shm, mq, fifo -----------------------------------------------------


class _NamedLink(Link):
    """Channels the parent creates (and keeps open until cleanup); children attach by URL."""

    def __init__(
        self,
        spec: LinkSpec,
        scheme: str,
        options: Mapping[str, Any],
        *,
        batch: int = 1,
        pure: bool = False,
        aio: bool = False,
    ) -> None:
        self._dir = TempDir() if scheme == "fifo" else None
        self._aio = aio
        self._scheme = scheme
        self._options = dict(options)
        # Batches of bytes skip the serializer; batches of objects are what msgpack is for.
        self._options["serializer"] = "raw" if batch > 1 and not spec.objects else "msgpack"
        self._batch = batch
        self._pure = pure
        self._created: list[ipckit.Channel] = []
        try:
            with pure_path(pure):
                for _ in range(2 if spec.duplex else 1):
                    name = unique_name("bench")
                    address = self._dir.join(name) if self._dir is not None else name
                    url = f"{scheme}://{address}"
                    self._created.append(ipckit.open(url, create=True, **self._options))
        except BaseException:
            self.cleanup()
            raise

    def endpoint(self, role: Role, index: int) -> Endpoint:
        urls = [ch.url for ch in self._created]
        specs = load_backend(self._scheme).options
        # Attachers get the creator's ring size and mode: passing them is an error.
        attach = {
            k: v for k, v in self._options.items() if not (k in specs and specs[k].creator_only)
        }
        if self._pure:
            # In the child, for good: every handle this process opens runs the pure code.
            accel = _accel()
            if accel is not None:
                accel.set_pure(True)
        chans = [ipckit.open(url, **attach) for url in urls]
        fwd = chans[0]
        back = chans[1] if len(chans) > 1 else None
        if role == PRODUCER:
            return ChannelEndpoint(fwd, back, self._batch, aio=self._aio)
        return ChannelEndpoint(back, fwd, self._batch, aio=self._aio)

    def unit(self) -> Unit | None:
        """What one native unit of this queue carries, read from the channel the parent made."""
        ch = self._created[0]
        extra = ch.stats().extra
        if self._scheme == "shm":
            inline = int(extra["max_inline_message"])
            ring = ch.stats().capacity
            where = f"the {_size(ring)} ring" if ring else "the ring"
            return Unit(inline, f"one record of {where} (half of it)")
        size = extra.get("message_size") or ch.capabilities.native_message_size
        if size is None:
            return None
        what = "FIFO packet" if self._scheme == "fifo" else "queue message"
        return Unit(int(size) - HEADER_SIZE, f"one {size}-byte {what}")

    def cleanup(self) -> None:
        for ch in self._created:
            for step in (ch.unlink, ch.close):
                try:
                    step()
                except Exception:  # noqa: S110, BLE001 - remove as much as we can
                    pass
        self._created = []
        if self._dir is not None:
            self._dir.remove()


def _size(n: int) -> str:
    """Bytes as the docs write them: 1 MiB, 64 MiB, 4 KiB, 512 B."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def spin_value() -> Any:
    """A value turning spinning on for ``shm://``, chosen from the option's declared kind.

    Returns ``None`` when the shm backend has no ``spin`` option.
    """
    spec = load_backend("shm").options.get("spin")
    if spec is None:
        return None
    return {"bool": True, "int": 1000, "float": 50e-6, "str": "50us"}.get(spec.kind, True)


def _probe_spin() -> str | None:
    reason = _probe_scheme("shm")
    if reason is not None:
        return reason
    value = spin_value()
    if value is None:
        return "not available (shm:// has no spin option)"
    try:
        ch = ipckit.open(f"shm://{unique_name('bench')}", create=True, spin=value)
    except ConfigurationError as exc:
        return f"not available (spin={value!r} rejected: {exc})"
    try:
        ch.unlink()
    finally:
        ch.close()
    return None


# -- sockets: unix, tcp ----------------------------------------------------------------


class _SocketLink(Link):
    def __init__(self, spec: LinkSpec, scheme: str, aio: bool = False) -> None:
        self._aio = aio
        self._dir = TempDir() if scheme == "unix" else None
        url = f"unix://{self._dir.join('s.sock')}" if self._dir is not None else "tcp://127.0.0.1:0"
        try:
            self._listener = ipckit.listen(url)
        except BaseException:
            self.cleanup()
            raise

    def endpoint(self, role: Role, index: int) -> Endpoint:
        if role == CONSUMER:
            ch = self._listener.accept(timeout=_CONNECT_TIMEOUT)
        else:
            ch = ipckit.connect(self._listener.url, timeout=_CONNECT_TIMEOUT)
        return ChannelEndpoint(ch, ch, aio=self._aio)

    def cleanup(self) -> None:
        listener = getattr(self, "_listener", None)
        if listener is not None:
            listener.close()
        if self._dir is not None:
            self._dir.remove()


def _named(
    scheme: str,
    options: Mapping[str, Any] | None = None,
    batch: int = 1,
    pure: bool = False,
    aio: bool = False,
) -> Any:
    def make(spec: LinkSpec) -> Link:
        opts = dict(options or {})
        if scheme == "shm" and opts.get("spin") == "auto":
            opts["spin"] = spin_value()
        if scheme == "shm" and "capacity" not in opts:
            # Sized as a user sending such messages would size it: the largest message
            # stays in the ring (at most half of it) instead of going out of band.
            opts["capacity"] = max(1 << 20, 4 * spec.max_size)
        return _NamedLink(spec, scheme, opts, batch=batch, pure=pure, aio=aio)

    return make


def _socket(scheme: str, aio: bool = False) -> Callable[[LinkSpec], Link]:
    return lambda spec: _SocketLink(spec, scheme, aio)


def _aio_supports(spec: LinkSpec) -> str | None:
    """The -aio rows run the one-to-one byte rounds (see ipckit._bench.aio_child)."""
    if spec.objects or spec.producers != 1 or spec.consumers != 1:
        return "one producer and one consumer of bytes only"
    return None


IPCKIT_CONTENDERS: Sequence[Contender] = (
    Contender(
        "ipckit-pipe",
        "ipckit.pipe() send_bytes/recv_bytes",
        "ipckit",
        _PipeLink,
        probe=_probe_pipe,
        objects=True,
    ),
    Contender(
        "ipckit-shm",
        "ipckit.open('shm://...') send_bytes/recv_bytes",
        "ipckit",
        _named("shm"),
        probe=lambda: _probe_scheme("shm"),
        many_producers=True,
        many_consumers=True,
        objects=True,
    ),
    Contender(
        "ipckit-shm-pure",
        "ipckit-shm with every process on the pure-Python path (ipckit._accel.set_pure)",
        "ipckit",
        _named("shm", pure=True),
        probe=lambda: _probe_scheme("shm"),
        many_producers=True,
        many_consumers=True,
        objects=True,
    ),
    Contender(
        "ipckit-shm-batch",
        f"ipckit shm:// send_many/recv_many, batches of {BATCH} (raw serializer)",
        "ipckit",
        _named("shm", batch=BATCH),
        probe=lambda: _probe_scheme("shm"),
        supports=_batch_supports,
        many_producers=True,
        many_consumers=True,
        objects=True,
        batch=BATCH,
    ),
    Contender(
        "ipckit-shm-batch-pure",
        "ipckit-shm-batch with every process on the pure-Python path",
        "ipckit",
        _named("shm", batch=BATCH, pure=True),
        probe=lambda: _probe_scheme("shm"),
        supports=_batch_supports,
        many_producers=True,
        many_consumers=True,
        objects=True,
        batch=BATCH,
    ),
    Contender(
        "ipckit-shm-spin",
        "ipckit shm:// with spin= on (busy-wait 50 us before sleeping)",
        "ipckit",
        _named("shm", {"spin": "auto"}),
        probe=_probe_spin,
        many_producers=True,
        many_consumers=True,
        objects=True,
    ),
    Contender(
        "ipckit-shm-aio",
        "ipckit.aio shm:// awaited send_bytes/recv_bytes in an asyncio loop",
        "ipckit",
        _named("shm", aio=True),
        probe=lambda: _probe_scheme("shm"),
        supports=_aio_supports,
    ),
    Contender(
        "ipckit-mq",
        "ipckit.open('mq://...') send_bytes/recv_bytes",
        "ipckit",
        _named("mq"),
        probe=lambda: _probe_scheme("mq"),
        many_producers=True,
        many_consumers=True,
        objects=True,
    ),
    Contender(
        "ipckit-fifo",
        "ipckit.open('fifo://...') send_bytes/recv_bytes",
        "ipckit",
        _named("fifo"),
        probe=lambda: _probe_scheme("fifo"),
        many_producers=True,
        many_consumers=True,
        objects=True,
    ),
    Contender(
        "ipckit-unix",
        "ipckit.listen/connect('unix://...') send_bytes/recv_bytes",
        "ipckit",
        _socket("unix"),
        probe=lambda: _probe_scheme("unix"),
        objects=True,
    ),
    Contender(
        "ipckit-unix-aio",
        "ipckit.aio unix:// awaited send_bytes/recv_bytes in an asyncio loop",
        "ipckit",
        _socket("unix", aio=True),
        probe=lambda: _probe_scheme("unix"),
        supports=_aio_supports,
    ),
    Contender(
        "ipckit-tcp",
        "ipckit.listen/connect('tcp://127.0.0.1:0') send_bytes/recv_bytes",
        "ipckit",
        _socket("tcp"),
        probe=lambda: _probe_scheme("tcp"),
        objects=True,
    ),
)
