"""``mq://NAME``: a POSIX message queue (mq_overview(7)) as a many-producer, many-consumer queue.

Each queue message is one unit: it holds one frame, or several small frames from
one ``send_many``. A frame bigger than the queue's message size goes out of band
(``ipckit._oob``) and the queue carries a small reference to it. The queue
descriptor is a file descriptor on Linux, so waits ``poll`` it (and ``fileno()``
hands it out). End of stream lives in ``/dev/shm/ikmq.NAME.ikstate`` (``_qstate``).

The kernel's limits are checked when a queue is created and reported by name:
``fs.mqueue.msg_max`` (messages per queue), ``fs.mqueue.msgsize_max`` (bytes per
message), ``fs.mqueue.queues_max`` and ``RLIMIT_MSGQUEUE`` (bytes per user).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from typing import Any

import posix_ipc
from typing_extensions import Buffer

from ipckit._deadline import Deadline
from ipckit._framing import FLAG_EOS, encode_header
from ipckit._oob import SHM_DIR
from ipckit._oserror import os_error_to_ipc
from ipckit._transport import Capabilities, ListenerTransport, Transport, TransportStats
from ipckit._url import Endpoint, OptionSpec
from ipckit.backends._qstate import QueueState
from ipckit.backends._queue import SLICE, QueueTransport
from ipckit.errors import ChannelExists, ChannelNotFound, ConfigurationError, HandleClosed

__all__ = [
    "BACKENDS",
    "MQ_CAPABILITIES",
    "MqBackend",
    "MqTransport",
    "QueueLimitError",
    "explain_limits",
    "max_queue_depth",
]

MQ_CAPABILITIES = Capabilities(
    native_message_size=posix_ipc.QUEUE_MESSAGE_SIZE_MAX_DEFAULT,
    many_producers=True,
    many_consumers=True,
    has_fileno=True,
    named=True,
)

_PRIORITY_MAX = posix_ipc.QUEUE_PRIORITY_MAX
_EOS_FRAME = encode_header(0, FLAG_EOS, 0)
_PROC = "/proc/sys/fs/mqueue"
#: Limits the kernel applies instead of the sysctls to a process with CAP_SYS_RESOURCE.
_HARD_MSGMAX = 65536
_HARD_MSGSIZEMAX = 16 * 1024 * 1024
#: Kernel bookkeeping per message slot (struct msg_msg + posix_msg_tree_node on 64-bit).
_SLOT_OVERHEAD = 48 + 40

OPTIONS: Mapping[str, OptionSpec] = {
    "mode": OptionSpec("mode", 0o600, "permission bits of the queue (octal), 0600 by default"),
    "max_messages": OptionSpec(
        "int", None, "queue depth when creating (default: the system's, usually 10)"
    ),
    "message_size": OptionSpec(
        "size", None, "bytes per queue message when creating (default: usually 8 KiB)"
    ),
    "priority": OptionSpec("int", 0, f"send priority 0..{_PRIORITY_MAX}; higher is received first"),
}


def _read_limit(name: str) -> int | None:
    try:
        with open(os.path.join(_PROC, name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _has_sys_resource() -> bool:
    """True if this process may ignore msg_max/msgsize_max (CAP_SYS_RESOURCE, bit 24)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 24 & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def max_queue_depth() -> int:
    """The deepest queue this process may create (``fs.mqueue.msg_max`` unless exempt)."""
    if _has_sys_resource():
        return _HARD_MSGMAX
    return _read_limit("msg_max") or posix_ipc.QUEUE_MESSAGES_MAX_DEFAULT


def explain_limits(max_messages: int, message_size: int) -> str:
    """Say which kernel limit a queue of this shape breaks, its value and how to raise it."""
    privileged = _has_sys_resource()
    msg_max = _HARD_MSGMAX if privileged else _read_limit("msg_max")
    size_max = _HARD_MSGSIZEMAX if privileged else _read_limit("msgsize_max")
    queues_max = _read_limit("queues_max")
    soft, _ = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
    needed = max_messages * (message_size + _SLOT_OVERHEAD)
    reasons = []
    if msg_max is not None and max_messages > msg_max:
        reasons.append(
            f"max_messages={max_messages} exceeds fs.mqueue.msg_max={msg_max} "
            f"({_PROC}/msg_max); pass max_messages<={msg_max} or, as root, "
            f"run: sysctl -w fs.mqueue.msg_max={max_messages}"
        )
    if size_max is not None and message_size > size_max:
        reasons.append(
            f"message_size={message_size} exceeds fs.mqueue.msgsize_max={size_max} "
            f"({_PROC}/msgsize_max); pass message_size<={size_max} (bigger messages go "
            f"out of band anyway) or, as root, run: sysctl -w fs.mqueue.msgsize_max={message_size}"
        )
    if soft != resource.RLIM_INFINITY and needed > soft:
        reasons.append(
            f"a queue of {max_messages} x {message_size} bytes needs about {needed} bytes, over "
            f"RLIMIT_MSGQUEUE={soft} (bytes of all your queues together); use fewer or "
            "smaller messages, or raise the limit (ulimit -q, prlimit --msgqueue, or "
            "LimitMSGQUEUE= in a systemd unit)"
        )
    if not reasons:
        reasons.append(
            f"your queues together may exceed RLIMIT_MSGQUEUE={soft} bytes, or the system "
            f"may have fs.mqueue.queues_max={queues_max} queues already; remove unused "
            "queues (ipckit gc, or unlink()) or raise those limits"
        )
    return "; ".join(reasons)


class MqTransport(QueueTransport):
    """One handle on a POSIX message queue."""

    capabilities = MQ_CAPABILITIES

    def __init__(self, name: str, url: str, create: bool, options: Mapping[str, Any]) -> None:
        if not name or "/" in name or len(name) > 250:
            raise ConfigurationError(
                f"{url}: a queue name is 1-250 characters without '/', not {name!r}"
            )
        priority = options["priority"]
        if not 0 <= priority <= _PRIORITY_MAX:
            raise ConfigurationError(f"priority must be 0..{_PRIORITY_MAX}, not {priority}")
        self._name = "/" + name
        self._priority = priority
        mode = options["mode"]
        mq = _open_queue(self._name, url, create, options)
        state: QueueState | None = None
        waiter: posix_ipc.MessageQueue | None = None
        try:
            if create:
                os.fchmod(mq.mqd, mode)  # mq_open honours the umask; the caller asked for mode
            mq.block = False
            state = QueueState(
                os.path.join(SHM_DIR, f"ikmq.{name}.ikstate"), mode=mode, reset=create
            )
            # A second, blocking descriptor for waits: the kernel sleeps in mq_timedreceive/
            # send and hands over the message in the same call. (One descriptor cannot serve
            # both: O_NONBLOCK is shared by this handle's sending and receiving threads, and
            # a zero timeout costs a timer round trip, ~25 us, on every empty look.)
            try:
                waiter = posix_ipc.MessageQueue(self._name, 0, read=True, write=True)
            except posix_ipc.Error:
                waiter = None  # unlinked meanwhile: waits fall back to poll()
            self._mq = mq
            self._send = mq.send
            self._receive = mq.receive
            self._waiter = waiter
            self._wait_first = waiter is not None
            super().__init__(
                url=url,
                fd=mq.mqd,
                unit=mq.max_message_size,
                state=state,
                oob_prefix=f"ikmq.{name}",
                max_message_size=options["max_message_size"],
                reducer=(_attach, (name, url, dict(options))),
            )
        except BaseException as exc:
            if waiter is not None:
                waiter.close()
            if state is not None:
                state.close()
                if create:
                    state.unlink()
            mq.close()
            if create:
                posix_ipc.unlink_message_queue(self._name)
            if isinstance(exc, OSError):
                raise os_error_to_ipc(exc, f"opening {url}") from exc
            raise

    def _try_read(self) -> bytes | None:
        try:
            return self._receive()[0]  # type: ignore[no-any-return]
        except posix_ipc.BusyError:
            return None
        except posix_ipc.SignalError:
            return None  # EINTR: the caller retries with its own deadline
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"receiving from {self.url}") from exc

    def _try_write(self, data: Buffer) -> bool:
        try:
            self._send(data, None, self._priority)
        except posix_ipc.BusyError:
            return False
        except posix_ipc.SignalError:
            return False
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"sending to {self.url}") from exc
        return True

    def _read_wait(self, deadline: Deadline) -> bytes | None:
        waiter = self._waiter
        if waiter is None:
            return super()._read_wait(deadline)
        if self._interrupted:
            raise HandleClosed(f"this handle on {self.url} was closed")
        try:
            return waiter.receive(deadline.slice(SLICE))[0]  # type: ignore[no-any-return]
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            return None
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"receiving from {self.url}") from exc

    def _write_wait(self, data: Buffer, deadline: Deadline) -> bool:
        waiter = self._waiter
        if waiter is None:
            return super()._write_wait(data, deadline)
        if self._interrupted:
            raise HandleClosed(f"this handle on {self.url} was closed")
        try:
            waiter.send(data, deadline.slice(SLICE), self._priority)
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            return False
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"sending to {self.url}") from exc
        return True

    def _write_doorbell(self) -> None:
        # Priority 0: the doorbell queues behind every message already sent.
        try:
            self._send(_EOS_FRAME, None, 0)
        except posix_ipc.Error:
            pass

    def _close_kernel_object(self) -> None:
        self._mq.close()
        if self._waiter is not None:
            self._waiter.close()

    def _unlink_kernel_object(self) -> None:
        try:
            posix_ipc.unlink_message_queue(self._name)
        except posix_ipc.ExistentialError:
            pass

    def stats(self) -> TransportStats:
        """Messages queued (depth) and the queue's depth limit (capacity, in messages)."""
        try:
            depth = self._mq.current_messages
        except posix_ipc.Error:
            depth = None
        return TransportStats(
            depth=depth,
            capacity=self._mq.max_messages,
            extra={"message_size": self._mq.max_message_size},
        )


def _open_queue(
    name: str, url: str, create: bool, options: Mapping[str, Any]
) -> posix_ipc.MessageQueue:
    if not create:
        try:
            return posix_ipc.MessageQueue(name, 0, read=True, write=True)
        except posix_ipc.ExistentialError as exc:
            # Said here, not by os_error_to_ipc: posix_ipc's text ("No queue exists...")
            # does not tell "missing" from "exists" reliably.
            raise ChannelNotFound(
                f"attaching to {url}: no such queue; create it with create=True first"
            ) from exc
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"attaching to {url}") from exc
    depth = options["max_messages"] or posix_ipc.QUEUE_MESSAGES_MAX_DEFAULT
    size = options["message_size"] or posix_ipc.QUEUE_MESSAGE_SIZE_MAX_DEFAULT
    if depth < 1 or size < 512:
        raise ConfigurationError(
            f"{url}: max_messages must be at least 1 and message_size at least 512 bytes "
            "(a unit must hold a reference to an out-of-band message)"
        )
    try:
        return posix_ipc.MessageQueue(
            name,
            posix_ipc.O_CREX,
            mode=options["mode"],
            max_messages=depth,
            max_message_size=size,
            read=True,
            write=True,
        )
    except posix_ipc.ExistentialError as exc:
        raise ChannelExists(
            f"creating {url}: the queue already exists; attach without create=True or unlink it"
        ) from exc
    except posix_ipc.Error as exc:
        raise os_error_to_ipc(exc, f"creating {url}") from exc
    except (ValueError, OSError) as exc:
        # posix_ipc reports every limit (EINVAL, EMFILE, ENOSPC) as "Invalid parameter(s)".
        raise QueueLimitError(f"creating {url}: {explain_limits(depth, size)}") from exc


class QueueLimitError(ConfigurationError):
    """Creating a queue broke a kernel limit; the message names it and how to raise it."""


def _attach(name: str, url: str, options: Mapping[str, Any]) -> MqTransport:
    return MqTransport(name, url, False, options)


class MqBackend:
    """Opens ``mq://NAME`` queues."""

    scheme = "mq"
    options = OPTIONS

    def open(self, endpoint: Endpoint, create: bool, options: Mapping[str, Any]) -> Transport:
        """Create (mode 0600) or attach to the POSIX message queue ``/NAME``."""
        return MqTransport(endpoint.address, endpoint.url, create, options)

    def listen(self, endpoint: Endpoint, options: Mapping[str, Any]) -> ListenerTransport:
        """Not supported: message queues are named queues."""
        raise ConfigurationError("mq:// is a named queue: use ipckit.open(), not listen()")

    def connect(
        self, endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline
    ) -> Transport:
        """Not supported: message queues are named queues."""
        raise ConfigurationError("mq:// is a named queue: use ipckit.open(), not connect()")


BACKENDS: dict[str, Any] = {"mq": MqBackend()}
