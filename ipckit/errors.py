"""The ipckit exception hierarchy.

Every error ipckit raises derives from :class:`IPCError` and, where Python has a
built-in exception for the same condition, from that built-in too, so code written
for ``queue``, ``multiprocessing`` or plain files keeps catching what it knows.

Local misuse (a closed handle, a bad option) and trouble caused by a peer (a
corrupt frame, a dead process) are different classes on purpose.
"""

from __future__ import annotations

import queue

__all__ = [
    "AuthenticationError",
    "ChannelClosed",
    "ChannelExists",
    "ChannelNotFound",
    "ConfigurationError",
    "ConnectionRefused",
    "Empty",
    "Full",
    "HandleClosed",
    "IPCError",
    "MessageTooLarge",
    "PermissionDenied",
    "ProtocolError",
    "QueueLimitError",
    "SerializationError",
    "Timeout",
    "TransportError",
]


class IPCError(Exception):
    """Root of every exception raised by ipckit."""


class ChannelClosed(IPCError, EOFError):
    """The peer is gone or the stream has ended (after :meth:`Channel.shutdown`).

    Receivers get this only after every message that was already committed has
    been delivered.
    """


class HandleClosed(ChannelClosed):
    """This handle was closed with :meth:`Channel.close`; open a new one to go on.

    A subclass of :class:`ChannelClosed` so that loops ending on ``ChannelClosed``
    also end on a local close.
    """


class Timeout(IPCError, TimeoutError):
    """A blocking call ran out of time."""


class Empty(Timeout, queue.Empty):
    """A receive timed out (or ``timeout=0`` found nothing ready)."""


class Full(Timeout, queue.Full):
    """A send timed out because the channel stayed full.

    ``sent`` tells how many messages of a :meth:`Channel.send_many` batch were
    delivered before time ran out (always 0 for :meth:`Channel.send`).
    """

    def __init__(self, message: str, *, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class MessageTooLarge(IPCError, ValueError):
    """A message is larger than the channel's ``max_message_size``.

    Raised before any byte is written, so the channel stays usable. Raised by
    :meth:`Channel.recv_bytes_into` when a message does not fit the buffer:
    ``needed`` is its size and ``payload`` the message itself (it was consumed).
    """

    def __init__(
        self, message: str, *, needed: int | None = None, payload: bytes | None = None
    ) -> None:
        super().__init__(message)
        self.needed = needed
        self.payload = payload


class SerializationError(IPCError, ValueError):
    """An object could not be encoded, or a payload could not be decoded.

    On receive, ``payload`` holds the raw bytes of the message that failed to
    decode, so nothing is lost; ``serializer_id`` is the serializer the sender
    used.
    """

    def __init__(
        self,
        message: str,
        *,
        payload: bytes | None = None,
        serializer_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.payload = payload
        self.serializer_id = serializer_id


class ProtocolError(IPCError):
    """A peer sent a malformed or corrupt frame, or shared state is corrupt."""


class AuthenticationError(IPCError):
    """The peer failed the authentication handshake (wrong or missing key)."""


class ConfigurationError(IPCError, ValueError):
    """A URL, option or argument is invalid; the message lists the valid ones."""


class ChannelExists(IPCError, FileExistsError):
    """``create=True`` named an object that already exists."""


class ChannelNotFound(IPCError, FileNotFoundError):
    """Attaching named an object that does not exist."""


class TransportError(IPCError, OSError):
    """An operating-system call failed in a way no more specific error covers."""


class ConnectionRefused(TransportError, ConnectionRefusedError):
    """Nothing listens at the address ``connect()`` was given; start the server first."""


class PermissionDenied(IPCError, PermissionError):
    """The operating system refused access to a named object (its owner or mode)."""


class QueueLimitError(ConfigurationError):
    """Creating an ``mq://`` queue broke a kernel limit; the message names it and how to fix it."""
