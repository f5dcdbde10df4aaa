"""The raw, pickle and JSON serializers."""

from __future__ import annotations

import json
import pickle
from typing import Any, ClassVar

from typing_extensions import Buffer

from ipckit.errors import SerializationError
from ipckit.serializers._base import JSON_ID, PICKLE_ID, RAW_ID

__all__ = ["JsonSerializer", "PickleSerializer", "RawSerializer"]


class RawSerializer:
    """Bytes in, bytes out: the serializer used by ``send_bytes``/``recv_bytes``."""

    id: ClassVar[int] = RAW_ID
    name: ClassVar[str] = "raw"

    def dumps(self, obj: Any, /) -> Buffer:
        """Return ``obj`` unchanged if it is bytes-like, else raise."""
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return obj
        try:
            return memoryview(obj)
        except TypeError:
            raise SerializationError(
                f"the raw serializer sends bytes-like objects only, not {type(obj).__name__}; "
                "encode it first or use serializer='msgpack' or 'pickle'"
            ) from None

    def loads(self, data: Buffer, /) -> bytes:
        """Return the payload as ``bytes``."""
        return bytes(data)


class PickleSerializer:
    """Pickle protocol 5. Only for peers you trust: unpickling runs code."""

    id: ClassVar[int] = PICKLE_ID
    name: ClassVar[str] = "pickle"

    def __init__(self, protocol: int = 5) -> None:
        self.protocol = protocol

    def dumps(self, obj: Any, /) -> Buffer:
        """Pickle ``obj``."""
        try:
            return pickle.dumps(obj, protocol=self.protocol)
        except Exception as exc:
            raise SerializationError(f"pickle cannot encode {type(obj).__name__}: {exc}") from exc

    def loads(self, data: Buffer, /) -> Any:
        """Unpickle one message."""
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError(f"pickle could not decode the message: {exc}") from exc


class JsonSerializer:
    """UTF-8 JSON: portable and readable, slower than msgpack, no bytes."""

    id: ClassVar[int] = JSON_ID
    name: ClassVar[str] = "json"

    def dumps(self, obj: Any, /) -> Buffer:
        """Encode ``obj`` as compact UTF-8 JSON."""
        try:
            return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"json cannot encode {type(obj).__name__}: {exc}; "
                "use serializer='msgpack' (bytes, numpy) or 'pickle' (any Python object)"
            ) from exc

    def loads(self, data: Buffer, /) -> Any:
        """Decode one JSON document."""
        try:
            return json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerializationError(f"json could not decode the message: {exc}") from exc
