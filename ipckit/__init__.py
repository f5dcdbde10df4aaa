"""ipckit: one Channel API for moving data between processes on one host.

Pick a transport by URL (``shm://``, ``mq://``, ``fifo://``, ``unix://``,
``tcp://``) or make a pipe pair with :func:`pipe`; the code that sends and
receives is the same whichever carries the bytes.
"""

from ipckit import _accel
from ipckit._inventory import ChannelInfo, cleanup_stale, list_channels
from ipckit._transport import Capabilities
from ipckit.channel import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Channel,
    ChannelStats,
    Listener,
    MessageView,
    connect,
    listen,
    open,  # noqa: A004 - the library's entry point, used as ipckit.open()
    pipe,
)
from ipckit.errors import (
    AuthenticationError,
    ChannelClosed,
    ChannelExists,
    ChannelNotFound,
    ConfigurationError,
    ConnectionRefused,
    Empty,
    Full,
    HandleClosed,
    IPCError,
    MessageTooLarge,
    PermissionDenied,
    ProtocolError,
    QueueLimitError,
    SerializationError,
    Timeout,
    TransportError,
)
from ipckit.serializers import Serializer

__version__ = "0.1.0"

#: True when ipckit's compiled C core runs the hot paths of ``shm://`` and of
#: :class:`Channel`; False when the pure-Python code does (the C core was not built,
#: or ``IPCKIT_PURE=1`` was set when ipckit was imported). Both behave the same;
#: the C core is faster. ``ipckit --version`` says which, and why.
native: bool = _accel.native

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "AuthenticationError",
    "Capabilities",
    "Channel",
    "ChannelClosed",
    "ChannelExists",
    "ChannelInfo",
    "ChannelNotFound",
    "ChannelStats",
    "ConfigurationError",
    "ConnectionRefused",
    "Empty",
    "Full",
    "HandleClosed",
    "IPCError",
    "Listener",
    "MessageTooLarge",
    "MessageView",
    "PermissionDenied",
    "ProtocolError",
    "QueueLimitError",
    "SerializationError",
    "Serializer",
    "Timeout",
    "TransportError",
    "__version__",
    "cleanup_stale",
    "connect",
    "list_channels",
    "listen",
    "native",
    "open",
    "pipe",
]
