# Types of the C core (csrc/core.c); see that file and ipckit/_accel.py.
from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import Buffer

from ipckit._framing import Frame

class Ring:
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
    def send_bytes(self, data: Buffer, /) -> bool: ...
    def send(self, obj: Any, /) -> Buffer | bool: ...
    def recv_frame(self) -> Frame | None: ...
    def bind(
        self,
        send_mutex: object,
        recv_mutex: object,
        dumps: Callable[[Any], Buffer],
        serializer_id: int,
        max_message_size: int,
        /,
    ) -> None: ...
    def rebind(self, pid: int, /) -> None: ...
    def stop(self) -> None: ...
    def release(self) -> None: ...
    def counters(self) -> tuple[int, int, int, int]: ...

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
