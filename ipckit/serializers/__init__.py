"""Serializers turn objects into message payloads and back.

Choose one per channel with ``serializer=``: a name (``"msgpack"``, the default;
``"pickle"``; ``"json"``; ``"raw"``) or any object with ``dumps``/``loads``.
"""

from __future__ import annotations

from collections.abc import Callable

from ipckit.errors import ConfigurationError
from ipckit.serializers._base import (
    CUSTOM_ID,
    JSON_ID,
    MSGPACK_ID,
    PICKLE_ID,
    RAW_ID,
    Serializer,
    serializer_id_of,
)
from ipckit.serializers._msgpack import MsgpackSerializer
from ipckit.serializers._simple import JsonSerializer, PickleSerializer, RawSerializer

__all__ = [
    "CUSTOM_ID",
    "JSON_ID",
    "MSGPACK_ID",
    "PICKLE_ID",
    "RAW_ID",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "RawSerializer",
    "Serializer",
    "resolve_serializer",
    "serializer_id_of",
    "serializer_name",
]

_BY_NAME: dict[str, Callable[[], Serializer]] = {
    "msgpack": MsgpackSerializer,
    "pickle": PickleSerializer,
    "json": JsonSerializer,
    "raw": RawSerializer,
}
_NAMES_BY_ID = {RAW_ID: "raw", MSGPACK_ID: "msgpack", PICKLE_ID: "pickle", JSON_ID: "json"}
_SHARED: dict[str, Serializer] = {}


def resolve_serializer(spec: str | Serializer | None) -> Serializer:
    """Return the serializer named by ``spec`` (a name or an object), default msgpack."""
    if spec is None:
        spec = "msgpack"
    if isinstance(spec, str):
        found = _SHARED.get(spec)
        if found is None:
            factory = _BY_NAME.get(spec)
            if factory is None:
                raise ConfigurationError(
                    f"unknown serializer {spec!r}; choose one of {sorted(_BY_NAME)} "
                    "or pass an object with dumps() and loads()"
                )
            found = _SHARED[spec] = factory()
        return found
    if not (callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None))):
        raise ConfigurationError(
            f"serializer must be a name or have dumps() and loads(), not {type(spec).__name__}"
        )
    serializer_id_of(spec)
    return spec


def serializer_name(ident: int) -> str:
    """A readable name for a wire serializer id (for error messages)."""
    return _NAMES_BY_ID.get(ident, f"user serializer #{ident}")
