"""``fifo://PATH``: a named pipe used as a many-producer, many-consumer queue.

How frames stay whole with many writers and many readers, without a lock:

- Every handle opens the FIFO ``O_RDWR``, so opening never waits for a peer and a
  writer never sees "no reader" (the queue simply fills up, and ``send`` times out).
- Every handle writes in *packet mode* (``O_DIRECT`` on the descriptor, pipe(7)):
  each ``write`` of at most ``PIPE_BUF`` bytes is one packet, written atomically,
  and each ``read`` returns exactly one packet. A packet holds whole frames only,
  so readers never share a frame and need no lock: a reader or writer killed at
  any point leaves the queue consistent.
- A frame bigger than a packet goes out of band (``ipckit._oob``): a one-off
  shared-memory block, referenced by a small frame in the packet.

The kernel limits depth by pipe buffer slots: one packet per 4 KiB page of the
pipe's size (``pipe_size=``, 1 MiB by default: 256 packets). End of stream is kept
in a small state file beside the FIFO (``PATH.ikstate``), see ``_qstate``.
"""

from __future__ import annotations

import fcntl
import os
import select
import stat
import termios
from collections.abc import Mapping
from typing import Any

from typing_extensions import Buffer

from ipckit._deadline import Deadline
from ipckit._oserror import translate_os_errors
from ipckit._transport import Capabilities, ListenerTransport, Transport, TransportStats
from ipckit._url import Endpoint, OptionSpec
from ipckit.backends._qstate import QueueState
from ipckit.backends._queue import QueueTransport
from ipckit.errors import ConfigurationError, TransportError

__all__ = ["BACKENDS", "FIFO_CAPABILITIES", "FifoBackend", "FifoTransport"]

PIPE_BUF = select.PIPE_BUF

FIFO_CAPABILITIES = Capabilities(
    native_message_size=PIPE_BUF,
    many_producers=True,
    many_consumers=True,
    has_fileno=True,
    named=True,
)

#: Suffix of the state file kept beside the FIFO.
STATE_SUFFIX = ".ikstate"
_DEFAULT_PIPE_SIZE = 1024 * 1024

OPTIONS: Mapping[str, OptionSpec] = {
    "mode": OptionSpec("mode", 0o600, "permission bits of the FIFO (octal), 0600 by default"),
    "pipe_size": OptionSpec(
        "size", _DEFAULT_PIPE_SIZE, "kernel buffer; one queued message per 4 KiB of it"
    ),
}


class FifoTransport(QueueTransport):
    """One handle on a FIFO queue."""

    capabilities = FIFO_CAPABILITIES

    def __init__(self, path: str, url: str, create: bool, options: Mapping[str, Any]) -> None:
        mode = options["mode"]
        what = f"{'creating' if create else 'opening'} {url}"
        made = False
        fd = -1
        state: QueueState | None = None
        try:
            with translate_os_errors(what):
                if create:
                    os.mkfifo(path, mode)
                    made = True
                    os.chmod(path, mode)  # mkfifo honours the umask; the caller asked for mode
                # O_RDWR: opening a FIFO this way never blocks, and there is always a reader.
                fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                info = os.fstat(fd)
                if not stat.S_ISFIFO(info.st_mode):
                    raise ConfigurationError(f"{what}: {path} exists but is not a FIFO")
                _packet_mode(fd, what)
                try:
                    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, options["pipe_size"])
                except OSError:
                    pass  # above /proc/sys/fs/pipe-max-size: the current size works too
                state = QueueState(path + STATE_SUFFIX, mode=mode, reset=create)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            if made:
                os.unlink(path)
                try:
                    os.unlink(path + STATE_SUFFIX)
                except FileNotFoundError:
                    pass
            raise
        base = os.path.basename(path)[:96]
        self._path = path
        super().__init__(
            url=url,
            fd=fd,
            unit=PIPE_BUF,
            state=state,
            oob_prefix=f"ikfifo.{base}.{info.st_dev:x}.{info.st_ino:x}",
            max_message_size=options["max_message_size"],
            reducer=(_attach, (path, url, dict(options))),
        )

    def _try_read(self) -> bytes | None:
        try:
            # Packet mode: one read is one whole packet (never more than PIPE_BUF bytes).
            return os.read(self._fd, PIPE_BUF)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise TransportError(exc.errno or 0, f"reading {self.url}: {exc.strerror}") from exc

    def _try_write(self, data: Buffer) -> bool:
        try:
            os.write(self._fd, data)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            raise TransportError(exc.errno or 0, f"writing {self.url}: {exc.strerror}") from exc
        return True

    def _close_kernel_object(self) -> None:
        os.close(self._fd)
        self._fd = -1

    def _unlink_kernel_object(self) -> None:
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass

    def stats(self) -> TransportStats:
        """Pipe size in bytes as capacity; queued bytes and packet slots in ``extra``."""
        try:
            size = fcntl.fcntl(self._fd, fcntl.F_GETPIPE_SZ)
            queued = int.from_bytes(
                fcntl.ioctl(self._fd, termios.FIONREAD, bytes(4)), "little", signed=True
            )
        except OSError:
            return TransportStats()
        return TransportStats(
            capacity=size, extra={"queued_bytes": queued, "packet_slots": size // PIPE_BUF}
        )


def _packet_mode(fd: int, what: str) -> None:
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError as exc:
        raise TransportError(
            exc.errno or 0,
            f"{what}: this kernel cannot put a FIFO in packet mode (O_DIRECT, Linux 3.4+), "
            "which fifo:// needs to keep frames whole; use mq:// or shm:// instead",
        ) from exc


def _attach(path: str, url: str, options: Mapping[str, Any]) -> FifoTransport:
    return FifoTransport(path, url, False, options)


class FifoBackend:
    """Opens ``fifo://PATH`` queues."""

    scheme = "fifo"
    options = OPTIONS

    def open(self, endpoint: Endpoint, create: bool, options: Mapping[str, Any]) -> Transport:
        """Create (``mkfifo``, mode 0600) or attach to the FIFO at the URL's path."""
        return FifoTransport(endpoint.address, endpoint.url, create, options)

    def listen(self, endpoint: Endpoint, options: Mapping[str, Any]) -> ListenerTransport:
        """Not supported: FIFOs are named queues."""
        raise ConfigurationError("fifo:// is a named queue: use ipckit.open(), not listen()")

    def connect(
        self, endpoint: Endpoint, options: Mapping[str, Any], deadline: Deadline
    ) -> Transport:
        """Not supported: FIFOs are named queues."""
        raise ConfigurationError("fifo:// is a named queue: use ipckit.open(), not connect()")


BACKENDS: dict[str, Any] = {"fifo": FifoBackend()}
