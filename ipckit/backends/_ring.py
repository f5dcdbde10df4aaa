"""Layout and arithmetic of the shared-memory ring, as pure code over a buffer.

Segment layout (all integers little-endian; each group on its own cache line so
producers and consumers do not fight over one line)::

    0    meta      magic "IPCKSHM1", version, ready, capacity, max_message_size,
                   flags (bit 0: shut down), creator pid
    64   consumer  head, messages out, bytes out, receive waiters, dirty, recoveries,
                   time blocked, receive-lock owner pid and generation
    128  producer  tail, messages in, bytes in, send waiters, dirty, recoveries,
                   time blocked, high-water mark, send-lock owner pid and generation
    256  ring      ``capacity`` bytes of records

Invariants:
- ``head`` and ``tail`` are byte counters that only grow; a record starts at
  ``pos % capacity``. ``0 <= tail - head <= capacity``, both multiples of 16.
- A record is a standard 16-byte frame header plus payload, padded to 16 bytes,
  and never wraps: when it does not fit before the end of the ring a pad record
  (magic ``PD``) fills the rest and the record starts at offset 0.
- ``tail`` moves only after a record's bytes are in place (reserve, copy,
  commit), so a reader never sees a torn record, and a writer that dies mid-copy
  leaves nothing visible. ``head`` moves only after the payload is copied out.
- Every field read from shared memory is checked before use: a corrupt header
  or record raises ProtocolError, never loops or reads out of bounds.
"""

from __future__ import annotations

import struct
from typing import Final

from ipckit._framing import HEADER_SIZE, decode_header
from ipckit.errors import ProtocolError

__all__ = [
    "ALIGN",
    "BLOCKED_RECV",
    "BLOCKED_SEND",
    "BYTES_IN",
    "BYTES_OUT",
    "DATA_OFFSET",
    "DIRTY_RECV",
    "DIRTY_SEND",
    "FLAGS",
    "HEAD",
    "HIGH_WATER",
    "MAGIC",
    "META",
    "MSGS_IN",
    "MSGS_OUT",
    "PAD_MAGIC",
    "READY",
    "RECOVERIES_RECV",
    "RECOVERIES_SEND",
    "RECV_GEN",
    "RECV_OWNER",
    "RECV_WAITERS",
    "SEND_GEN",
    "SEND_OWNER",
    "SEND_WAITERS",
    "SHUT_FLAG",
    "TAIL",
    "VERSION",
    "align",
    "check_meta",
    "inline_limit",
    "pack_pad",
    "read_record",
]

MAGIC: Final = b"IPCKSHM1"
VERSION: Final = 1
META = struct.Struct("<8sIIQQII")  # magic, version, ready, capacity, max_message, flags, pid
READY: Final = 12
FLAGS: Final = 32
SHUT_FLAG: Final = 1

HEAD: Final = 64
MSGS_OUT: Final = 72
BYTES_OUT: Final = 80
RECV_WAITERS: Final = 88
DIRTY_RECV: Final = 92
RECOVERIES_RECV: Final = 96
BLOCKED_RECV: Final = 104
RECV_OWNER: Final = 112
RECV_GEN: Final = 116

TAIL: Final = 128
MSGS_IN: Final = 136
BYTES_IN: Final = 144
SEND_WAITERS: Final = 152
DIRTY_SEND: Final = 156
RECOVERIES_SEND: Final = 160
BLOCKED_SEND: Final = 168
HIGH_WATER: Final = 176
SEND_OWNER: Final = 184
SEND_GEN: Final = 188

DATA_OFFSET: Final = 256
ALIGN: Final = 16
PAD_MAGIC: Final = b"PD"
_PAD = struct.Struct("<2s6xQ")
_PAD_0, _PAD_1 = PAD_MAGIC


def align(n: int) -> int:
    """Round ``n`` up to the record alignment."""
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def inline_limit(capacity: int) -> int:
    """Largest payload carried inside the ring; bigger ones go out of band.

    A record of at most half the ring always fits once the ring drains, even
    after a pad record, so a sender can never wait for space that cannot exist.
    """
    return capacity // 2 - HEADER_SIZE


def pack_pad(buf: memoryview, offset: int, length: int) -> None:
    """Write a pad record of ``length`` bytes at ``offset``."""
    _PAD.pack_into(buf, offset, PAD_MAGIC, length)


def check_meta(buf: memoryview, size: int) -> tuple[int, int, int]:
    """Validate the meta line; return ``(ready, capacity, max_message_size)``."""
    magic, version, ready, capacity, max_message, _flags, _pid = META.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ProtocolError(
            f"not an ipckit shared-memory channel (magic {magic!r}); the name belongs to "
            "something else"
        )
    if version != VERSION:
        raise ProtocolError(f"shared-memory layout version {version}, this ipckit reads {VERSION}")
    if ready and (capacity % ALIGN or capacity < 64 or DATA_OFFSET + capacity > size):
        raise ProtocolError(
            f"corrupt channel header: capacity {capacity} for a {size}-byte segment"
        )
    return ready, capacity, max_message


def read_record(
    buf: memoryview, head: int, tail: int, capacity: int, max_message_size: int
) -> tuple[int, int, int, int, int]:
    """Decode the record at ``head``: ``(serializer_id, flags, start, length, next_head)``.

    ``start`` is the payload's offset in ``buf``. A pad record returns length -1
    and the head just past it.
    """
    if tail - head > capacity or head > tail or head % ALIGN or tail % ALIGN:
        raise ProtocolError(
            f"corrupt channel indices (head={head}, tail={tail}, capacity={capacity})"
        )
    pos = head % capacity
    room = capacity - pos
    at = DATA_OFFSET + pos
    if buf[at] == _PAD_0 and buf[at + 1] == _PAD_1:
        (_magic, length) = _PAD.unpack_from(buf, at)
        if length != room or head + room > tail:
            raise ProtocolError(f"corrupt pad record at {head} (length {length}, room {room})")
        return 0, 0, 0, -1, head + room
    ser, flags, length = decode_header(buf, at, max_message_size)
    record = align(HEADER_SIZE + length)
    if record > room or head + record > tail:
        raise ProtocolError(
            f"corrupt record at {head}: {length} bytes do not fit in the committed data"
        )
    return ser, flags, at + HEADER_SIZE, length, head + record
