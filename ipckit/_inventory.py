"""What named channels exist on this host, who holds them, and what can go.

Read-only inspection of the OS objects of ``shm://``, ``mq://`` and ``fifo://``
channels: headers and state files are read in place, never attached to, so looking
changes nothing (no hold is taken, no counter moves). Each handle of a channel keeps
a shared ``flock`` on one file of it (the segment, the queue's state file), which
the kernel drops when the process dies: "in use" is whether any is left.

``shm://`` and ``mq://`` channels live in /dev/shm (and /dev/mqueue) and are all
found. A ``fifo://`` channel lives wherever its path is, so FIFOs are found in the
directories the caller names (``fifo_dirs``).

:func:`cleanup_stale` removes only what nobody can use any more: a channel that no
process holds and whose creator is dead, a channel its creator never finished, and
the parts (out-of-band blocks, lock files, doorbells) of channels that are gone. It
never removes a channel some handle still holds.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from ipckit._oob import SHM_DIR, nobody_holds
from ipckit.backends import _ring as ring
from ipckit.backends._qstate import read_header
from ipckit.backends.fifo import STATE_SUFFIX, block_base, pipe_figures

__all__ = [
    "UNFINISHED_AFTER",
    "ChannelInfo",
    "cleanup_stale",
    "find_channel",
    "list_channels",
    "remove_channel",
]

_MQ_DIR = "/dev/mqueue"
_SHM_PREFIX = "ikshm."
_MQ_PREFIX = "ikmq."
_MQ_STATE = ".ikstate"
#: Seconds after which a never-finished channel of an unknown creator counts as dead
#: (attachers wait 2 s for a creator to finish: shm._ATTACH_WAIT, _qstate._ATTACH_WAIT).
UNFINISHED_AFTER = 2.0


@dataclass(frozen=True)
class ChannelInfo:
    """One named channel as the OS shows it (see :func:`ipckit.list_channels`)."""

    #: The URL that opens it (``shm://jobs``, ``mq://jobs``, ``fifo:///run/app/q``).
    url: str
    #: ``"shm"``, ``"mq"`` or ``"fifo"``.
    kind: str
    #: Ring bytes (``shm``), messages (``mq``) or pipe-buffer bytes (``fifo``); None if unknown.
    capacity: int | None
    #: Messages queued now (``fifo``: bytes queued); None if unknown.
    depth: int | None
    #: The creator's pid, 0 when the channel does not record it.
    creator_pid: int
    #: Whether that process is alive (None when the pid is unknown).
    creator_alive: bool | None
    #: Some handle, in some process, holds the channel open.
    in_use: bool
    #: Seconds since its main object was created (or last changed its metadata).
    age_seconds: float
    #: What is wrong with it, or None: "never finished by its creator", "corrupt: ...".
    problem: str | None
    #: Every OS object of it, as paths (/dev/shm/..., /dev/mqueue/..., the FIFO).
    objects: tuple[str, ...]

    @property
    def stale(self) -> bool:
        """True when nobody can use it any more (what :func:`cleanup_stale` removes).

        No handle holds it, and its creator is dead; or, when the creator is not
        recorded, it was never finished and is older than an attacher waits for one.
        A channel whose creator lives is never stale: that process may use it again.
        """
        if self.in_use or self.creator_alive is True:
            return False
        if self.creator_alive is False:
            return True
        return self.problem is not None and self.age_seconds > UNFINISHED_AFTER

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON (``ipckit ls --json``)."""
        return {**asdict(self), "objects": list(self.objects), "stale": self.stale}


def _alive(pid: int) -> bool | None:
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"  # a zombie is dead
    except OSError:
        return True


def _info(
    url: str,
    *,
    held_by: str,
    made: os.stat_result,
    capacity: int | None,
    depth: int | None,
    pid: int,
    problem: str | None,
    objects: Iterable[str],
) -> ChannelInfo:
    """A ChannelInfo; ``held_by`` is the file its handles flock, ``made`` its main object's stat."""
    return ChannelInfo(
        url=url,
        kind=url.partition("://")[0],
        capacity=capacity,
        depth=depth,
        creator_pid=pid,
        creator_alive=_alive(pid),
        in_use=not nobody_holds(held_by),
        age_seconds=max(0.0, time.time() - made.st_ctime),
        problem=problem,
        objects=tuple(objects),
    )


def _entries(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


# -- shm:// -----------------------------------------------------------------------------


def _shm_parts(name: str, entries: Iterable[str]) -> list[str]:
    # "~" ends every name (names cannot contain it), so "a~x" is never a part of "a.b".
    own = f"{_SHM_PREFIX}{name}~"
    sems = f"sem.{_SHM_PREFIX}{name}~"
    return [f"{SHM_DIR}/{e}" for e in entries if e.startswith(own) or e.startswith(sems)]


def _shm_info(name: str, entries: list[str]) -> ChannelInfo:
    path = f"{SHM_DIR}/{_SHM_PREFIX}{name}"
    st = os.stat(path)
    capacity = depth = None
    pid = 0
    problem: str | None = None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            head = os.pread(fd, ring.DATA_OFFSET, 0)
        finally:
            os.close(fd)
        if len(head) < ring.DATA_OFFSET:
            problem = "never finished by its creator (the segment was never sized)"
        else:
            magic, version, ready, cap, _max, _flags, pid = ring.META.unpack_from(head, 0)
            if magic != ring.MAGIC:
                problem = "never finished by its creator" if magic == bytes(8) else "not ipckit's"
            elif version != ring.VERSION:
                problem = f"layout version {version}, this ipckit reads {ring.VERSION}"
            elif not ready:
                problem = "never finished by its creator"
            else:
                capacity = cap
                q = memoryview(head).cast("Q")
                depth = max(q[ring.MSGS_IN // 8] - q[ring.MSGS_OUT // 8], 0)
    except OSError as exc:
        problem = f"unreadable: {exc.strerror}"
    return _info(
        f"shm://{name}",
        held_by=path,
        made=st,
        capacity=capacity,
        depth=depth,
        pid=pid,
        problem=problem,
        objects=(path, *_shm_parts(name, entries)),
    )


def _shm_channels(entries: list[str]) -> Iterator[ChannelInfo]:
    for entry in entries:
        if entry.startswith(_SHM_PREFIX) and "~" not in entry:
            with contextlib.suppress(FileNotFoundError):
                yield _shm_info(entry[len(_SHM_PREFIX) :], entries)


# -- mq:// ------------------------------------------------------------------------------


def _mq_info(name: str, entries: list[str]) -> ChannelInfo:
    state = f"{SHM_DIR}/{_MQ_PREFIX}{name}{_MQ_STATE}"
    st = os.stat(state)
    whole, _shut, pid = read_header(state)
    queue = f"{_MQ_DIR}/{name}"
    capacity = depth = None
    problem = None if whole else "never finished by its creator"
    try:
        import posix_ipc

        mq = posix_ipc.MessageQueue(f"/{name}", read=True, write=False)  # reads nothing
        try:
            capacity, depth = mq.max_messages, mq.current_messages
        finally:
            mq.close()
    except Exception as exc:  # noqa: BLE001 - ExistentialError, PermissionError: reported
        problem = problem or f"its queue cannot be opened ({exc})"
    blocks = f"{_MQ_PREFIX}{name}."
    objects = [state]
    if os.path.exists(queue):
        objects.append(queue)
    objects += [f"{SHM_DIR}/{e}" for e in entries if e.startswith(blocks) and ".oob." in e]
    return _info(
        f"mq://{name}",
        held_by=state,
        made=st,
        capacity=capacity,
        depth=depth,
        pid=pid,
        problem=problem,
        objects=objects,
    )


def _mq_channels(entries: list[str]) -> Iterator[ChannelInfo]:
    for entry in entries:
        if entry.startswith(_MQ_PREFIX) and entry.endswith(_MQ_STATE):
            with contextlib.suppress(FileNotFoundError):
                yield _mq_info(entry[len(_MQ_PREFIX) : -len(_MQ_STATE)], entries)


# -- fifo:// ----------------------------------------------------------------------------


def _fifo_info(path: str, entries: list[str]) -> ChannelInfo:
    state = path + STATE_SUFFIX
    st = os.stat(state)
    whole, _shut, pid = read_header(state)
    problem = None if whole else "never finished by its creator"
    depth = capacity = None
    objects = [state]
    try:
        fst = os.lstat(path)
    except FileNotFoundError:
        problem = problem or "its FIFO is gone"
    else:
        if not stat.S_ISFIFO(fst.st_mode):
            problem = problem or "its path is not a FIFO"
        else:
            objects.insert(0, path)
            # Opening read-write never blocks, reads nothing and takes no hold.
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
                try:
                    capacity, depth = pipe_figures(fd)
                finally:
                    os.close(fd)
    blocks = f"ikfifo.{block_base(path)}."
    objects += [f"{SHM_DIR}/{e}" for e in entries if e.startswith(blocks) and ".oob." in e]
    return _info(
        f"fifo://{path}",
        held_by=state,
        made=st,
        capacity=capacity,
        depth=depth,
        pid=pid,
        problem=problem,
        objects=objects,
    )


def _fifo_channels(dirs: Iterable[str], entries: list[str]) -> Iterator[ChannelInfo]:
    for directory in dirs:
        for entry in _entries(directory):
            if entry.endswith(STATE_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    yield _fifo_info(
                        os.path.join(os.path.abspath(directory), entry[: -len(STATE_SUFFIX)]),
                        entries,
                    )


# -- the public calls -------------------------------------------------------------------


def list_channels(fifo_dirs: Iterable[str] = ()) -> list[ChannelInfo]:
    """Every named ipckit channel on this host (``fifo://`` ones in ``fifo_dirs``).

    Reads headers and state files in place: it attaches to nothing, so it changes no
    counter and takes no hold. Use :func:`ipckit.open` and ``stats()`` for a channel's
    live counters.
    """
    entries = _entries(SHM_DIR)
    return [
        *_shm_channels(entries),
        *_mq_channels(entries),
        *_fifo_channels(fifo_dirs, entries),
    ]


def _held_elsewhere() -> set[str]:
    """Files in /dev/shm some process has open, deleted ones included (what /proc shows).

    A channel that was unlinked while handles still had it open is gone from the
    directory but not from those processes: its blocks are still theirs to read.
    """
    held = set()
    for pid in _entries("/proc"):
        if not pid.isdigit():
            continue
        fds = f"/proc/{pid}/fd"
        for fd in _entries(fds):
            with contextlib.suppress(OSError):
                target = os.readlink(f"{fds}/{fd}")
                if target.startswith(f"{SHM_DIR}/"):
                    held.add(target.removesuffix(" (deleted)"))
    return held


def _orphans(entries: list[str], channels: list[ChannelInfo]) -> list[str]:
    """Parts in /dev/shm whose channel is gone: blocks, lock files, doorbells, semaphores.

    Gone means unlinked and held by no process: parts of a channel some process
    still has open (unlinked under it) are left to its last handle's close().
    """
    owned = {p for ch in channels for p in ch.objects}
    held = _held_elsewhere()
    shm_names = {ch.url.removeprefix("shm://") for ch in channels if ch.kind == "shm"}
    mq_names = {ch.url.removeprefix("mq://") for ch in channels if ch.kind == "mq"}
    out = []
    for entry in entries:
        path = f"{SHM_DIR}/{entry}"
        if path in owned:
            continue
        body = entry.removeprefix("sem.")
        if body.startswith(_SHM_PREFIX) and "~" in body:
            name = body[len(_SHM_PREFIX) :].partition("~")[0]
            if name not in shm_names and f"{SHM_DIR}/{_SHM_PREFIX}{name}" not in held:
                out.append(path)
        elif entry.startswith(_MQ_PREFIX) and ".oob." in entry:
            # ikmq.NAME.<id>.oob.<random>: NAME may hold dots, the two last fields do not.
            name = entry[len(_MQ_PREFIX) :].rsplit(".oob.", 1)[0].rsplit(".", 1)[0]
            state = f"{SHM_DIR}/{_MQ_PREFIX}{name}{_MQ_STATE}"
            if name not in mq_names and state not in held:
                out.append(path)
    return out


def find_channel(url: str) -> ChannelInfo | None:
    """The channel ``url`` names (a ``fifo://`` one in its own directory), or None."""
    scheme, _, rest = url.partition("://")
    rest = rest.partition("?")[0]
    dirs = [os.path.dirname(rest) or "."] if scheme == "fifo" else []
    for ch in list_channels(dirs):
        if ch.url == f"{scheme}://{os.path.abspath(rest) if scheme == 'fifo' else rest}":
            return ch
    return None


def _remove(paths: Iterable[str]) -> None:
    for path in paths:
        if path.startswith(f"{_MQ_DIR}/"):
            with contextlib.suppress(Exception):
                import posix_ipc

                posix_ipc.unlink_message_queue("/" + path[len(_MQ_DIR) + 1 :])
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def remove_channel(info: ChannelInfo) -> None:
    """Remove every object of one channel, held or not (``ipckit rm``).

    Handles still open keep what they mapped, as after ``unlink()``, but the
    out-of-band blocks of messages they have not read yet go too.
    """
    _remove(info.objects)


def cleanup_stale(*, dry_run: bool = False, fifo_dirs: Iterable[str] = ()) -> list[str]:
    """Remove what nobody can use any more; return the paths removed (or, dry, to remove).

    Removes every object of a channel no process holds whose creator is dead, or that
    its creator never finished, and the parts in /dev/shm of channels already gone
    (out-of-band blocks, lock files, doorbells, semaphores). A channel some handle
    still holds is never touched, whatever its state. ``fifo://`` channels are looked
    for in ``fifo_dirs`` only; their out-of-band blocks are removed with them.
    """
    entries = _entries(SHM_DIR)
    channels = list_channels(fifo_dirs)
    doomed = [p for ch in channels if ch.stale for p in ch.objects]
    doomed += _orphans(entries, channels)
    if not dry_run:
        _remove(doomed)
    return doomed
