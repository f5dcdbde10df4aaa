"""``raw-memcpy``: what one copy of a big payload costs, the floor for the bandwidth workloads.

A transport moves a message with at least one copy (shared memory: one in, one
out, on two CPUs at once), so the bandwidth of a single ``memcpy`` of the same
buffers, measured in the same run, is the ceiling a big-payload figure is read
against. The contender runs the producer alone (``solo``): the same loop as every
other producer, whose ``send`` copies the payload into a private buffer of the
workload's size (``memoryview`` slice assignment, one ``memcpy``), its pages
touched before the clock starts. The sources are the workload's own variants, so
they are as cold in the cache as anybody's. After the round the endpoint checks
that its buffer holds the last payload it copied, so a copy that did nothing is
FAIL, not a number.
"""

from __future__ import annotations

from collections.abc import Sequence

from typing_extensions import Buffer

from ipckit._bench.contender import Contender, Endpoint, Link, LinkSpec, Role
from ipckit._bench.workloads import END

__all__ = ["MEMCPY", "MIN_SIZE"]

#: Smaller payloads measure the Python loop, not memory bandwidth.
MIN_SIZE = 1024 * 1024


class _CopyEndpoint(Endpoint):
    def __init__(self, size: int) -> None:
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._view[:] = b"\x01" * size  # touch every page now, not inside the timed loop
        self._last: bytes | None = None

    def send(self, data: bytes) -> None:
        if data is END:  # the end of the stream is nothing to copy
            return
        self._view[: len(data)] = data
        self._last = data

    def send_many(self, items: Sequence[bytes]) -> None:
        for item in items:
            self.send(item)

    def recv(self) -> Buffer:
        raise RuntimeError("raw-memcpy runs alone: nothing is received")

    def verify(self) -> str | None:
        if self._last is None:
            return "nothing was copied"
        if self._view[: len(self._last)] != self._last:
            return "the buffer does not hold the last payload copied into it"
        return None

    def close(self) -> None:
        self._view.release()


class _CopyLink(Link):
    def __init__(self, spec: LinkSpec) -> None:
        self._size = spec.max_size

    def endpoint(self, role: Role, index: int) -> Endpoint:
        return _CopyEndpoint(self._size)

    def cleanup(self) -> None:
        """Nothing to remove: the buffer lives in the child."""


def _supports(spec: LinkSpec) -> str | None:
    if spec.duplex or spec.objects or spec.max_size < MIN_SIZE:
        return "n/a: a copy floor for the bandwidth workloads"
    if spec.producers > 1 or spec.consumers > 1:
        return "n/a: one process copying"
    return None


MEMCPY = Contender(
    "raw-memcpy",
    "one memcpy of each payload into a private buffer, in one process (the bandwidth floor)",
    "raw",
    _CopyLink,
    supports=_supports,
    solo=True,
)
