# Types of the C core (csrc/); see those files and ipckit/_accel.py.
from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import Buffer

from ipckit._deadline import Deadline
from ipckit._framing import Frame

class _Endpoint:
    """The Channel paths every native transport shares (csrc/endpoint.c)."""

    def send_bytes(self, data: Buffer, deadline: Deadline | None = None, /) -> bool: ...
    def send(self, obj: Any, deadline: Deadline | None = None, /) -> Buffer | bool: ...
    def recv_frame(self, deadline: Deadline | None = None, /) -> Frame | None: ...
    def send_many(
        self, objs: list[Any] | tuple[Any, ...], /
    ) -> tuple[int, list[Buffer]] | None: ...
    def recv_many(
        self, max_items: int, deadline: Deadline | None = None, /
    ) -> list[Any] | tuple[list[Any], list[Frame]] | None: ...
    def bind(
        self,
        send_mutex: object,
        recv_mutex: object,
        dumps: Callable[[Any], Buffer],
        loads: Callable[[Buffer], Any],
        serializer_id: int,
        max_message_size: int,
        fast_pack: Callable[[Any], bytes] | None = None,
        unpacker_factory: Callable[[], Any] | None = None,
        /,
    ) -> None: ...
    def counters(self) -> tuple[int, int, int, int]: ...

class Ring(_Endpoint):
    saw_oob: bool
    def __init__(
        self,
        segment: Buffer,
        capacity: int,
        segment_max: int,
        accept_max: int,
        send_sem: str,
        recv_sem: str,
        items_sem: str,
        space_sem: str,
        pid: int,
        send_token: int,
        recv_token: int,
    ) -> None: ...
    def try_send(self, frames: Sequence[tuple[int, int, Buffer, int]], /) -> int: ...
    def try_recv(self, max_items: int, /) -> list[Frame] | None: ...
    def rebind(self, pid: int, /) -> None: ...
    def set_waits(self, flag: bool, /) -> None: ...
    def set_bells(self, data_fd: int, room_fd: int, /) -> None: ...
    def stop(self) -> None: ...
    def release(self) -> None: ...

class Decoder:
    """ipckit._framing.FrameDecoder in C (csrc/stream.c)."""

    _max: int
    pending: bool
    def __init__(self, max_message_size: int) -> None: ...
    def buffer(self) -> memoryview: ...
    def commit(self, count: int, /) -> None: ...
    def commit_from(self, counts: list[int], /) -> None: ...
    def feed(self, data: Buffer, /) -> None: ...
    def next_frame(self) -> Frame | None: ...

class Stream(_Endpoint):
    """The never-waiting paths of one StreamTransport (csrc/stream.c)."""

    def __init__(
        self, transport: object, decoder: Decoder, whole_writes: int, socket: bool
    ) -> None: ...
    def stop(self) -> None: ...

class Queue(_Endpoint):
    """The never-waiting paths of one QueueTransport (csrc/queue.c)."""

    def __init__(
        self,
        transport: object,
        unit: int,
        max_message_size: int,
        shut_byte: int,
        mq: bool,
        priority: int,
    ) -> None: ...
    def stop(self) -> None: ...

def write_one(
    segment: Buffer, head: int, tail: int, capacity: int, ser: int, flags: int, payload: Buffer, /
) -> int: ...
def read_record(
    segment: Buffer, head: int, tail: int, capacity: int, max_message_size: int, /
) -> tuple[int, int, int, int, int] | int: ...
def decode_header(
    data: Buffer, offset: int, max_message_size: int, /
) -> tuple[int, int, int] | int: ...
def encode_header(serializer_id: int, flags: int, length: int, /) -> bytes: ...
def set_frame_type(frame: type[Frame], /) -> None: ...
