"""The serializer protocol and the ids that name serializers on the wire."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from typing_extensions import Buffer

__all__ = [
    "CUSTOM_ID",
    "JSON_ID",
    "MSGPACK_ID",
    "PICKLE_ID",
    "RAW_ID",
    "USER_ID_RANGE",
    "Serializer",
    "serializer_id_of",
]

#: Serializer ids carried in every frame header (see docs/protocol.md).
RAW_ID = 0
MSGPACK_ID = 1
PICKLE_ID = 2
JSON_ID = 3
#: Ids a user serializer may claim through an ``id`` attribute.
USER_ID_RANGE = range(64, 255)
#: The id of a user serializer that does not claim one.
CUSTOM_ID = 255
_BUILTIN_IDS = frozenset({RAW_ID, MSGPACK_ID, PICKLE_ID, JSON_ID})


@runtime_checkable
class Serializer(Protocol):
    """Anything with ``dumps`` and ``loads`` can encode messages.

    ``dumps(obj)`` returns a bytes-like object; ``loads(buffer)`` receives a
    bytes-like object (often a ``memoryview``) that is only valid during the
    call unless the serializer copies it. A serializer may carry an integer
    ``id`` in ``range(64, 255)`` so that receivers can tell it apart from other
    user serializers; without one it travels as id 255.
    """

    def dumps(self, obj: Any, /) -> Buffer:
        """Encode ``obj`` to bytes."""
        ...

    def loads(self, data: Buffer, /) -> Any:
        """Decode one message."""
        ...


def serializer_id_of(serializer: Serializer) -> int:
    """The wire id of ``serializer``: its ``id`` attribute, or 255."""
    ident = getattr(serializer, "id", CUSTOM_ID)
    if ident in _BUILTIN_IDS and type(serializer).__module__.startswith("ipckit.serializers."):
        return int(ident)
    if ident == CUSTOM_ID:
        return CUSTOM_ID
    if not isinstance(ident, int) or ident not in USER_ID_RANGE:
        from ipckit.errors import ConfigurationError

        raise ConfigurationError(
            f"serializer id {ident!r} is reserved or invalid; user serializers may use "
            f"an int in range({USER_ID_RANGE.start}, {USER_ID_RANGE.stop}) or no id at all"
        )
    return ident
