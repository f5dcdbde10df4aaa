"""``mq://NAME``: a POSIX message queue (mq_overview(7)) as a many-producer, many-consumer queue.

Each queue message is one unit: it holds one frame, or several small frames from
one ``send_many``. A frame bigger than the queue's message size goes out of band
(``ipckit._oob``) and the queue carries a small reference to it. The queue
descriptor is a file descriptor on Linux, so waits ``poll`` it (and ``fileno()``
hands it out). End of stream lives in ``/dev/shm/ikmq.NAME.ikstate`` (``_qstate``).

Names are checked before anything is created against every object the channel
will make (``_names``): the queue ``/NAME``, ``/dev/shm/ikmq.NAME.ikstate`` and the
out-of-band blocks ``/dev/shm/ikmq.NAME.<id>.oob.<random>``, each at most
NAME_MAX bytes, so NAME is at most 216 bytes.

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
from ipckit._names import check_names
from ipckit._oob import SHM_DIR
from ipckit._oserror import os_error_to_ipc, out_of_descriptors
from ipckit._transport import Capabilities, NamedBackend, Transport, TransportStats
from ipckit._url import Endpoint, OptionSpec
from ipckit.backends._qstate import QueueState
from ipckit.backends._queue import SLICE, QueueTransport
from ipckit.errors import (
    ChannelExists,
    ChannelNotFound,
    ConfigurationError,
    HandleClosed,
    QueueLimitError,
)

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
    "mode": OptionSpec(
        "mode", None, "permission bits of the queue (octal), 0600 by default", creator_only=True
    ),
    "max_messages": OptionSpec(
        "int",
        None,
        "queue depth when creating (default: the system's, usually 10)",
        creator_only=True,
    ),
    "message_size": OptionSpec(
        "size",
        None,
        "bytes per queue message when creating (default: usually 8 KiB)",
        creator_only=True,
    ),
    "priority": OptionSpec("int", 0, f"send priority 0..{_PRIORITY_MAX}; higher is received first"),
}
_CREATOR_ONLY = frozenset(k for k, spec in OPTIONS.items() if spec.creator_only)
#: Every name a queue NAME makes, each at most NAME_MAX bytes (see _names).
NAME_TEMPLATES = (
    ("the queue", "{}"),
    ("its state file", "ikmq.{}.ikstate"),
    ("its out-of-band blocks", "ikmq.{}.XXXXXXXXXXXX.oob.XXXXXXXXXXXXXXXX"),
)
_DEFAULT_MODE = 0o600


def check_options(url: str, create: bool, options: Mapping[str, Any]) -> None:
    """Refuse bad values and creator-only options given to an attacher, before any call."""
    # Creator-only options from an attacher and modes outside 0..0o777 are refused at
    # the API edge for every backend (_url.check_attach_options, the "mode" converter).
    depth = options.get("max_messages")
    if depth is not None and depth < 1:
        raise ConfigurationError(
            f"{url}: max_messages must be at least 1, not {depth} (leave it out for the "
            f"system's default, fs.mqueue.msg_default)"
        )
    size = options.get("message_size")
    if size is not None and size < 512:
        raise ConfigurationError(
            f"{url}: message_size must be at least 512 bytes, not {size} (a message must "
            "hold a reference to an out-of-band block)"
        )
    priority = options["priority"]
    if not 0 <= priority <= _PRIORITY_MAX:
        raise ConfigurationError(f"{url}: priority must be 0..{_PRIORITY_MAX}, not {priority}")


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
            f"may have fs.mqueue.queues_max={queues_max or '?'} queues already; remove unused "
            "queues (ipckit gc, or unlink()) or raise those limits"
        )
    return "; ".join(reasons)


class MqTransport(QueueTransport):
    """One handle on a POSIX message queue."""

    capabilities = MQ_CAPABILITIES

    def __init__(self, name: str, url: str, create: bool, options: Mapping[str, Any]) -> None:
        what = f"{'creating' if create else 'attaching to'} {url}"
        check_names(what, name, NAME_TEMPLATES)
        check_options(url, create, options)
        self._name = "/" + name
        self._priority = options["priority"]
        mode = _DEFAULT_MODE if options.get("mode") is None else options["mode"]
        mq = _open_queue(self._name, url, create, options, mode)
        state: QueueState | None = None
        waiter: posix_ipc.MessageQueue | None = None
        try:
            if create:
                os.fchmod(mq.mqd, mode)  # mq_open honours the umask; the caller asked for mode
            mq.block = False
            kernel_id = _identity(mq.mqd)
            self._kernel_id = kernel_id
            path = os.path.join(SHM_DIR, f"ikmq.{name}.ikstate")
            if create:
                state = QueueState.create(path, mode=mode, kernel_id=kernel_id, what=what)
            else:
                state = QueueState.attach(path, kernel_id=lambda: kernel_id, what=what)
            # A second, blocking descriptor for waits: the kernel sleeps in mq_timedreceive/
            # send and hands over the message in the same call. (One descriptor cannot serve
            # both: O_NONBLOCK is shared by this handle's sending and receiving threads, and
            # a zero timeout costs a timer round trip, ~25 us, on every empty look.)
            try:
                waiter = posix_ipc.MessageQueue(self._name, 0, read=True, write=True)
                if _identity(waiter.mqd) != kernel_id:
                    waiter.close()
                    waiter = None
            except posix_ipc.Error:
                waiter = None  # unlinked meanwhile: waits fall back to poll()
            self._mq = mq
            self._send = mq.send
            self._receive = mq.receive
            self._waiter = waiter
            self._wait_first = waiter is not None
            attach_options = {k: v for k, v in options.items() if k not in _CREATOR_ONLY}
            super().__init__(
                url=url,
                fd=mq.mqd,
                unit=mq.max_message_size,
                state=state,
                oob_prefix=f"ikmq.{name}.{state.creation_id[:6].hex()}",
                max_message_size=options["max_message_size"],
                reducer=(_attach, (name, url, attach_options)),
            )
            self._make_core(mq=True, priority=self._priority)
        except BaseException as exc:
            # Judged before the cleanup frees descriptors: posix_ipc's EMFILE has no errno,
            # and the translation asks whether this process is out of them right now.
            translated = (
                os_error_to_ipc(exc, what, "create" if create else "attach")
                if isinstance(exc, OSError)
                else None
            )
            if waiter is not None:
                waiter.close()
            if state is not None:
                if create:
                    state.unlink()
                state.close()
            mq.close()
            if create:
                try:
                    posix_ipc.unlink_message_queue(self._name)
                except posix_ipc.ExistentialError:
                    pass
            if translated is not None:
                raise translated from exc
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

    def _try_write(self, data: Buffer, log: list[Any] | None = None) -> bool:
        try:
            if log is None:
                self._send(data, None, self._priority)
            else:
                log.extend(map(self._send, (data,), (None,), (self._priority,)))
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

    def _write_wait(self, data: Buffer, deadline: Deadline, log: list[Any] | None = None) -> bool:
        waiter = self._waiter
        if waiter is None:
            return super()._write_wait(data, deadline, log)
        if self._interrupted:
            raise HandleClosed(f"this handle on {self.url} was closed")
        try:
            if log is None:
                waiter.send(data, deadline.slice(SLICE), self._priority)
            else:
                send = waiter.send
                log.extend(map(send, (data,), (deadline.slice(SLICE),), (self._priority,)))
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

    def _put_back_unit(self, data: Buffer) -> bool:
        # The highest priority: the frames go back to the head of the queue, where
        # they were, ahead of messages sent after them.
        try:
            self._send(data, None, _PRIORITY_MAX)
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            return False
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"putting messages back into {self.url}") from exc
        return True

    def _close_kernel_object(self) -> None:
        self._mq.close()
        if self._waiter is not None:
            self._waiter.close()

    def _name_is_ours(self) -> bool:
        """True while ``/NAME`` still names the queue this handle opened."""
        try:
            probe = posix_ipc.MessageQueue(self._name, 0, read=True, write=False)
        except posix_ipc.ExistentialError:
            return False
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"checking {self.url}", "attach") from exc
        try:
            return _identity(probe.mqd) == self._kernel_id
        finally:
            probe.close()

    def _unlink_kernel_object(self) -> None:
        if not self._name_is_ours():
            return  # removed already, or the name belongs to a newer queue now
        try:
            posix_ipc.unlink_message_queue(self._name)
        except posix_ipc.ExistentialError:
            pass
        except posix_ipc.Error as exc:
            raise os_error_to_ipc(exc, f"removing {self.url}", "remove") from exc

    def _blocks_orphaned_at_last_close(self) -> bool:
        # A queue still reachable by name keeps its messages (and their blocks) for
        # the next attacher; an unlinked one dies with its last descriptor.
        try:
            return not self._name_is_ours()
        except Exception:  # noqa: BLE001 - cannot tell: keeping the blocks loses nothing
            return False

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


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _open_queue(
    name: str, url: str, create: bool, options: Mapping[str, Any], mode: int
) -> posix_ipc.MessageQueue:
    if not create:
        try:
            return posix_ipc.MessageQueue(name, 0, read=True, write=True)
        except posix_ipc.ExistentialError as exc:
            # Attaching: ExistentialError can only mean ENOENT (posix_ipc_module.c).
            raise ChannelNotFound(
                f"attaching to {url}: no queue of that name exists; create it with "
                "create=True first"
            ) from exc
        except (posix_ipc.Error, OSError) as exc:
            # posix_ipc reports EMFILE as a plain OSError without errno.
            raise os_error_to_ipc(exc, f"attaching to {url}", "attach") from exc
    depth = options["max_messages"]
    if depth is None:
        depth = posix_ipc.QUEUE_MESSAGES_MAX_DEFAULT
    size = options["message_size"]
    if size is None:
        size = posix_ipc.QUEUE_MESSAGE_SIZE_MAX_DEFAULT
    try:
        return posix_ipc.MessageQueue(
            name,
            posix_ipc.O_CREX,
            mode=mode,
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
        raise os_error_to_ipc(exc, f"creating {url}", "create") from exc
    except (ValueError, OSError) as exc:
        # posix_ipc reports every limit (EINVAL, EMFILE, ENOSPC) as "Invalid parameter(s)":
        # out of descriptors is the one this process can check for itself.
        if code := out_of_descriptors():
            raise os_error_to_ipc(
                OSError(code, os.strerror(code)), f"creating {url}", "create"
            ) from exc
        raise QueueLimitError(f"creating {url}: {explain_limits(depth, size)}") from exc


def _attach(name: str, url: str, options: Mapping[str, Any]) -> MqTransport:
    return MqTransport(name, url, False, options)


class MqBackend:
    """Opens ``mq://NAME`` queues."""

    scheme = "mq"
    options = OPTIONS

    def open(self, endpoint: Endpoint, create: bool, options: Mapping[str, Any]) -> Transport:
        """Create (mode 0600) or attach to the POSIX message queue ``/NAME``."""
        return MqTransport(endpoint.address, endpoint.url, create, options)


BACKENDS: dict[str, NamedBackend] = {"mq": MqBackend()}
