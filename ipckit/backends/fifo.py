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
pipe's size (``pipe_size=``, 1 MiB by default: 256 packets; at most
``/proc/sys/fs/pipe-max-size``). The creator sets it; attachers leave it alone.
End of stream and the channel's identity are kept in a small state file beside
the FIFO (``PATH.ikstate``), see ``_qstate``. The pipe's contents live while any
handle has the FIFO open: when the last handle closes, what was still queued is
gone (and that handle removes the out-of-band blocks it referenced).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import stat
import termios
from collections.abc import Mapping
from typing import Any

from typing_extensions import Buffer

from ipckit._names import check_path
from ipckit._oob import SHM_DIR
from ipckit._oserror import os_error_to_ipc
from ipckit._transport import Capabilities, NamedBackend, Transport, TransportStats
from ipckit._url import Endpoint, OptionSpec
from ipckit.backends._qstate import QueueState
from ipckit.backends._queue import QueueTransport
from ipckit.errors import ChannelNotFound, ConfigurationError, TransportError

__all__ = [
    "REGISTRY_SUFFIX",
    "block_base",
    "registry_entry",
    "pipe_figures",
    "BACKENDS",
    "FIFO_CAPABILITIES",
    "FifoBackend",
    "FifoTransport",
]

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
#: A FIFO may live in any directory, so each channel leaves a note in /dev/shm,
#: ``ikfifo.BASE.ID.at`` holding its absolute path: ``ipckit ls`` and ``gc`` find it
#: there without being told where to look, and ``gc`` can tell its out-of-band
#: blocks (``ikfifo.BASE.ID.oob.*``) from those of a channel that is gone.
REGISTRY_SUFFIX = ".at"
_DEFAULT_PIPE_SIZE = 1024 * 1024
_DEFAULT_MODE = 0o600
_PIPE_MAX_SIZE = "/proc/sys/fs/pipe-max-size"

OPTIONS: Mapping[str, OptionSpec] = {
    "mode": OptionSpec(
        "mode", None, "permission bits of the FIFO (octal), 0600 by default", creator_only=True
    ),
    "pipe_size": OptionSpec(
        "size",
        None,
        "kernel buffer when creating (1 MiB by default, at most fs.pipe-max-size); "
        "one queued message per 4 KiB of it",
        creator_only=True,
    ),
}
_CREATOR_ONLY = frozenset(k for k, spec in OPTIONS.items() if spec.creator_only)


def pipe_max_size() -> int:
    """``/proc/sys/fs/pipe-max-size``: the largest ``pipe_size`` a FIFO may be given."""
    try:
        with open(_PIPE_MAX_SIZE) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return _DEFAULT_PIPE_SIZE


def _check_options(url: str, create: bool, options: Mapping[str, Any]) -> None:
    # Creator-only options from an attacher and modes outside 0..0o777 are refused at
    # the API edge for every backend (_url.check_attach_options, the "mode" converter).
    size = options.get("pipe_size")
    if size is not None:
        limit = pipe_max_size()
        if size < PIPE_BUF:
            raise ConfigurationError(
                f"{url}: pipe_size must be at least {PIPE_BUF} bytes (one packet), not {size}"
            )
        if size > limit:
            raise ConfigurationError(
                f"{url}: pipe_size={size} is over fs.pipe-max-size={limit} "
                f"({_PIPE_MAX_SIZE}); pass pipe_size<={limit} or, as root, run: "
                f"sysctl -w fs.pipe-max-size={size}"
            )


def block_base(path: str) -> str:
    """The part of a FIFO's path its out-of-band block names start with (``ikfifo.BASE.``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(path))[:64]


def registry_entry(path: str, creation_id: bytes) -> str:
    """The /dev/shm file that records where the ``fifo://`` channel at ``path`` lives."""
    return f"{SHM_DIR}/ikfifo.{block_base(path)}.{creation_id[:6].hex()}{REGISTRY_SUFFIX}"


def _register(path: str, creation_id: bytes, mode: int) -> None:
    """Leave the channel's note in /dev/shm; best effort (without it, ls needs --dir).

    Nobody but its owner may write it, whatever the channel's mode: a note others
    could rewrite would point the tools at another path.
    """
    entry = registry_entry(path, creation_id)
    mode = 0o600 | (mode & 0o044)
    try:
        fd = os.open(
            entry, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode
        )
    except OSError:
        return  # no /dev/shm, or full: the channel works, only the tools must be told
    try:
        os.fchmod(fd, mode)
        os.write(fd, os.fsencode(os.path.realpath(path)))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(entry)
    finally:
        os.close(fd)


def pipe_figures(fd: int) -> tuple[int, int]:
    """``(pipe size, bytes queued)`` of a FIFO descriptor; raises ``OSError``."""
    size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    queued = int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), "little", signed=True)
    return size, queued


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


class FifoTransport(QueueTransport):
    """One handle on a FIFO queue."""

    capabilities = FIFO_CAPABILITIES

    def __init__(self, path: str, url: str, create: bool, options: Mapping[str, Any]) -> None:
        what = f"{'creating' if create else 'opening'} {url}"
        check_path(what, path, ("", STATE_SUFFIX))
        _check_options(url, create, options)
        mode = _DEFAULT_MODE if options.get("mode") is None else options["mode"]
        state_path = path + STATE_SUFFIX
        made = False
        fds = [-1]
        state: QueueState | None = None

        def open_fifo() -> tuple[int, int]:
            if fds[0] >= 0:
                os.close(fds[0])
                fds[0] = -1
            try:
                # O_RDWR: opening a FIFO this way never blocks, and there is always a reader.
                fds[0] = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                raise os_error_to_ipc(exc, what, "attach") from exc
            info = os.fstat(fds[0])
            if not stat.S_ISFIFO(info.st_mode):
                raise ConfigurationError(f"{what}: {path} exists but is not a FIFO")
            return (info.st_dev, info.st_ino)

        try:
            if create:
                _mkfifo(path, mode, what)
                made = True
                kernel_id = open_fifo()
                _packet_mode(fds[0], what)
                _set_pipe_size(fds[0], options.get("pipe_size"), what)
                state = QueueState.create(state_path, mode=mode, kernel_id=kernel_id, what=what)
                _register(path, state.creation_id, mode)
            else:
                try:
                    info = os.stat(path)
                except OSError as exc:
                    raise os_error_to_ipc(exc, what, "attach") from exc
                if not stat.S_ISFIFO(info.st_mode):
                    raise ConfigurationError(f"{what}: {path} exists but is not a FIFO")
                state = QueueState.attach(state_path, kernel_id=open_fifo, what=what)
                kernel_id = _identity(fds[0])
                _packet_mode(fds[0], what)
        except BaseException:
            if state is not None:
                if create:
                    with contextlib.suppress(OSError):
                        os.unlink(registry_entry(path, state.creation_id))
                    state.unlink()
                state.close()
            if fds[0] >= 0:
                os.close(fds[0])
            if made:
                os.unlink(path)
            raise
        fd = fds[0]
        self._path = path
        self._kernel_id = kernel_id
        base = block_base(path)
        attach_options = {k: v for k, v in options.items() if k not in _CREATOR_ONLY}
        super().__init__(
            url=url,
            fd=fd,
            unit=PIPE_BUF,
            state=state,
            oob_prefix=f"ikfifo.{base}.{state.creation_id[:6].hex()}",
            max_message_size=options["max_message_size"],
            reducer=(_attach, (path, url, attach_options)),
        )
        self._make_core(mq=False)

    def _try_read(self) -> bytes | None:
        try:
            # Packet mode: one read is one whole packet (never more than PIPE_BUF bytes).
            return os.read(self._fd, PIPE_BUF)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise os_error_to_ipc(exc, f"reading {self.url}") from exc

    def _try_write(self, data: Buffer, log: list[Any] | None = None) -> bool:
        try:
            if log is None:
                os.write(self._fd, data)
            else:
                log.extend(map(os.write, (self._fd,), (data,)))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            raise os_error_to_ipc(exc, f"writing {self.url}") from exc
        return True

    def _close_kernel_object(self) -> None:
        os.close(self._fd)
        self._fd = -1

    def _unlink_kernel_object(self) -> None:
        self._unlink_fifo()
        # The note names this channel's creation only, never a newer channel's. Best
        # effort: another user may remove the FIFO but not its creator's note in the
        # sticky /dev/shm (gc takes it once the channel is gone).
        with contextlib.suppress(OSError):
            os.unlink(registry_entry(self._path, self._state.creation_id))

    def _unlink_fifo(self) -> None:
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise os_error_to_ipc(exc, f"removing {self.url}", "remove") from exc
        if (info.st_dev, info.st_ino) != self._kernel_id:
            return  # removed already, and the path now names a newer FIFO
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise os_error_to_ipc(exc, f"removing {self.url}", "remove") from exc

    def _blocks_orphaned_at_last_close(self) -> bool:
        # The pipe's contents die with the last descriptor, references and all.
        return True

    def stats(self) -> TransportStats:
        """Pipe size in bytes as capacity; queued bytes and packet slots in ``extra``."""
        try:
            size, queued = pipe_figures(self._fd)
        except OSError:
            return TransportStats()
        return TransportStats(
            capacity=size, extra={"queued_bytes": queued, "packet_slots": size // PIPE_BUF}
        )


def _mkfifo(path: str, mode: int, what: str) -> None:
    try:
        os.mkfifo(path, mode)
        os.chmod(path, mode)  # mkfifo honours the umask; the caller asked for mode
    except FileNotFoundError as exc:
        directory = os.path.dirname(os.path.abspath(path))
        raise ChannelNotFound(
            f"{what}: the directory {directory} does not exist; create it first or choose "
            "a path in an existing directory"
        ) from exc
    except OSError as exc:
        raise os_error_to_ipc(exc, what, "create") from exc


def _set_pipe_size(fd: int, size: int | None, what: str) -> None:
    if size is None:
        size = min(_DEFAULT_PIPE_SIZE, pipe_max_size())
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise ConfigurationError(
                f"{what}: the kernel refused pipe_size={size}: your pipes together are over "
                "fs.pipe-user-pages-soft (/proc/sys/fs/pipe-user-pages-soft); pass a smaller "
                "pipe_size or close other pipes"
            ) from exc
        raise os_error_to_ipc(exc, f"{what}: setting pipe_size={size}") from exc


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


BACKENDS: dict[str, NamedBackend] = {"fifo": FifoBackend()}
