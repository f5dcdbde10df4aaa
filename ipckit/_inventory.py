"""What named channels exist on this host, who holds them, and what can go.

Read-only inspection of the OS objects of ``shm://``, ``mq://`` and ``fifo://``
channels: headers and state files are read in place, never attached to, so looking
changes nothing (no hold is taken, no counter moves). Each handle of a channel keeps
a shared ``flock`` on one file of it (the segment, the queue's state file), which
the kernel drops when the process dies: "in use" is whether any is left.

``shm://`` and ``mq://`` channels live in /dev/shm (and /dev/mqueue) and are all
found. A ``fifo://`` channel lives wherever its path is; each leaves a note in
/dev/shm with that path (``ikfifo.BASE.ID.at``), so those are found too, and the
directories the caller names (``fifo_dirs``) are searched for any made without one.

:func:`cleanup_stale` removes only what nobody can use any more: a channel that no
process holds and whose creator is dead, a channel its creator never finished, and
the parts (out-of-band blocks, lock files, doorbells) of channels that are gone. It
never removes a channel some handle still holds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from ipckit._oob import SHM_DIR, nobody_holds
from ipckit.backends import _ring as ring
from ipckit.backends import shm
from ipckit.backends._qstate import read_header, read_header_fd
from ipckit.backends.fifo import (
    REGISTRY_SUFFIX,
    STATE_SUFFIX,
    block_base,
    pipe_figures,
    registry_entry,
)
from ipckit.errors import IPCError

__all__ = [
    "UNFINISHED_AFTER",
    "ChannelInfo",
    "cleanup_stale",
    "find_channel",
    "list_channels",
    "plan_cleanup",
    "remove_channel",
    "remove_if_still_stale",
    "unlink_part",
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
    #: Some handle, in some process, holds the channel open (True when that cannot be told).
    in_use: bool
    #: Seconds since its main object was created (or last changed its metadata).
    age_seconds: float
    #: What is wrong with it, or None: "never finished by its creator", "not ipckit's", ...
    problem: str | None
    #: Every OS object of it, as paths (/dev/shm/..., /dev/mqueue/..., the FIFO).
    objects: tuple[str, ...]
    #: Its creator never finished it (a header or state file never completed).
    unfinished: bool = False
    #: The file every handle of it holds a shared ``flock`` on, and that file's inode when
    #: listed: ``gc`` removes the channel only if that very file is still there, unheld.
    held_by: str = ""
    inode: int = 0

    @property
    def stale(self) -> bool:
        """True when nobody can use it any more (what :func:`cleanup_stale` removes).

        No handle holds it, and its creator is dead; or, when the creator is not
        recorded, it was never finished and is older than an attacher waits for one.
        A channel whose creator lives is never stale (that process may use it again),
        nor one that is not ipckit's or cannot be read.
        """
        if self.in_use or self.creator_alive is True:
            return False
        if self.problem is not None and not self.unfinished:
            return False
        if self.creator_alive is False:
            return True
        return self.unfinished and self.age_seconds > UNFINISHED_AFTER

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON (``ipckit ls --json``)."""
        return {**asdict(self), "objects": list(self.objects), "stale": self.stale}


@dataclass(frozen=True)
class _Scan:
    """What one listing reads once: /dev/shm's entries and the files processes hold open."""

    entries: list[str]
    #: /dev/shm files some process has open (deleted ones included), from /proc/*/fd.
    held: set[str]
    #: False when some process's descriptors could not be read (another user's, not root).
    complete: bool
    #: Creation ids (12 hex digits) of the queue state files (``*.ikstate``) some process
    #: has open, read through /proc/PID/fd: they count wherever the file now is (a
    #: renamed directory, a symlinked path, removed).
    held_ids: frozenset[str] = frozenset()

    @classmethod
    def now(cls) -> _Scan:
        held: set[str] = set()
        held_ids: set[str] = set()
        complete = True
        for pid in _entries("/proc"):
            if not pid.isdigit():
                continue
            fds = f"/proc/{pid}/fd"
            try:
                names = os.listdir(fds)
            except FileNotFoundError:
                continue  # it exited meanwhile
            except OSError:
                complete = False  # someone else's process: it may hold anything
                continue
            for fd in names:
                with contextlib.suppress(OSError):
                    target = os.readlink(f"{fds}/{fd}").removesuffix(" (deleted)")
                    if target.startswith(f"{SHM_DIR}/"):
                        held.add(target)
                    if target.endswith(STATE_SUFFIX):
                        try:
                            held_ids.add(_held_id(f"{fds}/{fd}"))
                        except OSError:
                            complete = False  # held, but by which channel cannot be told
        return cls(_entries(SHM_DIR), held, complete, frozenset(held_ids))

    def in_use(self, held_by: str, unfinished: bool) -> bool:
        """A handle holds it, or a process has it open (a creator still making it)."""
        if not nobody_holds(held_by) or held_by in self.held:
            return True
        return unfinished and not self.complete


def _held_id(proc_fd: str) -> str:
    """The creation id of the state file open at ``/proc/PID/fd/N``; OSError if none."""
    fd = os.open(proc_fd, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        whole, _pid, creation_id = read_header_fd(fd)
    finally:
        os.close(fd)
    if not whole:
        raise OSError(errno.EINVAL, "an unfinished state file")
    return creation_id[:6].hex()


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


def _entries(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def _info(
    url: str,
    scan: _Scan,
    *,
    held_by: str,
    made: os.stat_result,
    capacity: int | None,
    depth: int | None,
    pid: int,
    problem: str | None,
    unfinished: bool,
    objects: Iterable[str],
) -> ChannelInfo:
    """A ChannelInfo; ``held_by`` is the file its handles flock, ``made`` that file's stat."""
    return ChannelInfo(
        url=url,
        kind=url.partition("://")[0],
        capacity=capacity,
        depth=depth,
        creator_pid=pid,
        creator_alive=_alive(pid),
        in_use=scan.in_use(held_by, unfinished),
        age_seconds=max(0.0, time.time() - made.st_ctime),
        problem=problem,
        objects=tuple(objects),
        unfinished=unfinished,
        held_by=held_by,
        inode=made.st_ino,
    )


def _unreadable(url: str, path: str, exc: OSError) -> ChannelInfo:
    """A channel whose files this process may not read: shown, never touched."""
    return ChannelInfo(
        url=url,
        kind=url.partition("://")[0],
        capacity=None,
        depth=None,
        creator_pid=0,
        creator_alive=None,
        in_use=True,
        age_seconds=0.0,
        problem=f"cannot be read ({exc.strerror}): another user's?",
        objects=(path,),
        held_by=path,
    )


# -- shm:// -----------------------------------------------------------------------------

_SHM_BLOCK = re.compile(r"^ikshm\.(?P<name>[^~]+)~(?P<ino>[0-9a-f]+)\.oob\.[0-9a-f]{16}$")
_MQ_BLOCK = re.compile(r"^ikmq\.(?P<name>.+)\.(?P<id>[0-9a-f]{12})\.oob\.[0-9a-f]{16}$")


def _shm_parts(name: str, ino: int, entries: Iterable[str]) -> list[str]:
    """The objects of the channel ``name`` whose segment is inode ``ino``, by exact name."""
    try:
        names = shm._Names(name)
    except IPCError:
        return []
    fixed = {
        f"{SHM_DIR}/sem.{n.lstrip('/')}"
        for n in (names.items, names.space, names.send_sem, names.recv_sem)
    } | {names.send_recovery, names.recv_recovery, names.data_bell, names.room_bell}
    blocks = f"{names.oob_prefix}{ino:x}.oob."
    return [
        f"{SHM_DIR}/{e}"
        for e in entries
        if f"{SHM_DIR}/{e}" in fixed or (e.startswith(blocks) and _SHM_BLOCK.match(e))
    ]


def _shm_info(name: str, scan: _Scan) -> ChannelInfo:
    path = f"{SHM_DIR}/{_SHM_PREFIX}{name}"
    url = f"shm://{name}"
    try:
        st = os.stat(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            head = os.pread(fd, ring.DATA_OFFSET, 0)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return _unreadable(url, path, exc)
    capacity = depth = None
    pid = 0
    problem: str | None = None
    unfinished = False
    if len(head) < ring.DATA_OFFSET or head[:8] == bytes(8):
        problem, unfinished = "never finished by its creator", True
    else:
        magic, version, ready, cap, _max, _flags, meta_pid = ring.META.unpack_from(head, 0)
        if magic != ring.MAGIC:
            problem = "not ipckit's"
        elif version != ring.VERSION:
            problem = f"layout version {version}, this ipckit reads {ring.VERSION}"
        else:
            pid = meta_pid  # trusted only from a header that is ours
            if not ready:
                problem, unfinished = "never finished by its creator", True
            else:
                capacity = cap
                q = memoryview(head).cast("Q")
                depth = max(q[ring.MSGS_IN // 8] - q[ring.MSGS_OUT // 8], 0)
    return _info(
        url,
        scan,
        held_by=path,
        made=st,
        capacity=capacity,
        depth=depth,
        pid=pid,
        problem=problem,
        unfinished=unfinished,
        objects=(path, *_shm_parts(name, st.st_ino, scan.entries)),
    )


def _shm_channels(scan: _Scan) -> Iterator[ChannelInfo]:
    for entry in scan.entries:
        if entry.startswith(_SHM_PREFIX) and "~" not in entry:
            with contextlib.suppress(FileNotFoundError):
                yield _shm_info(entry[len(_SHM_PREFIX) :], scan)


# -- mq:// ------------------------------------------------------------------------------


_Inspected = tuple[int | None, int | None, str | None, list[str]]


def _queue_info(
    url: str, state: str, scan: _Scan, inspect: Callable[[bytes], _Inspected]
) -> ChannelInfo:
    """An ``mq://`` or ``fifo://`` channel, from its state file and its kernel object.

    ``inspect(creation_id)`` looks at the kernel object without taking a hold and
    gives ``(capacity, depth, problem, every object of the channel)``.
    """
    try:
        st = os.stat(state)
        whole, pid, creation_id = read_header(state)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return _unreadable(url, state, exc)
    capacity, depth, problem, objects = inspect(creation_id)
    return _info(
        url,
        scan,
        held_by=state,
        made=st,
        capacity=capacity,
        depth=depth,
        pid=pid,
        problem=problem if whole else "never finished by its creator",
        unfinished=not whole,
        objects=objects,
    )


def _blocks(scan: _Scan, prefix: str) -> list[str]:
    return [f"{SHM_DIR}/{e}" for e in scan.entries if e.startswith(prefix)]


def _mq_info(name: str, scan: _Scan) -> ChannelInfo:
    state = f"{SHM_DIR}/{_MQ_PREFIX}{name}{_MQ_STATE}"

    def inspect(creation_id: bytes) -> _Inspected:
        capacity = depth = None
        problem = None
        try:
            import posix_ipc

            mq = posix_ipc.MessageQueue(f"/{name}", read=True, write=False)  # reads nothing
            try:
                capacity, depth = mq.max_messages, mq.current_messages
            finally:
                mq.close()
        except Exception as exc:  # noqa: BLE001 - ExistentialError, PermissionError: reported
            problem = f"its queue cannot be opened ({exc})"
        objects = [state]
        queue = f"{_MQ_DIR}/{name}"
        if os.path.exists(queue):
            objects.append(queue)
        if creation_id:
            prefix = f"{_MQ_PREFIX}{name}.{creation_id[:6].hex()}.oob."
            objects += [p for p in _blocks(scan, prefix) if _MQ_BLOCK.match(os.path.basename(p))]
        return capacity, depth, problem, objects

    return _queue_info(f"mq://{name}", state, scan, inspect)


def _mq_channels(scan: _Scan) -> Iterator[ChannelInfo]:
    for entry in scan.entries:
        if entry.startswith(_MQ_PREFIX) and entry.endswith(_MQ_STATE):
            with contextlib.suppress(FileNotFoundError):
                yield _mq_info(entry[len(_MQ_PREFIX) : -len(_MQ_STATE)], scan)


# -- fifo:// ----------------------------------------------------------------------------


def _fifo_info(path: str, scan: _Scan) -> ChannelInfo:
    state = path + STATE_SUFFIX

    def inspect(creation_id: bytes) -> _Inspected:
        capacity = depth = None
        problem = None
        objects = [state]
        try:
            fst = os.lstat(path)
        except FileNotFoundError:
            problem = "its FIFO is gone"
        else:
            if not stat.S_ISFIFO(fst.st_mode):
                problem = "its path is not a FIFO"
            else:
                objects.insert(0, path)
                # Opening read-write never blocks, reads nothing and takes no hold.
                with contextlib.suppress(OSError):
                    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
                    try:
                        capacity, depth = pipe_figures(fd)
                    finally:
                        os.close(fd)
        if creation_id:
            objects += _blocks(scan, f"ikfifo.{block_base(path)}.{creation_id[:6].hex()}.oob.")
            note = registry_entry(path, creation_id)
            if os.path.basename(note) in scan.entries:
                objects.append(note)
        return capacity, depth, problem, objects

    return _queue_info(f"fifo://{path}", state, scan, inspect)


_FIFO_NOTE = re.compile(
    rf"^ikfifo\.(?P<base>.+)\.(?P<id>[0-9a-f]{{12}}){re.escape(REGISTRY_SUFFIX)}$"
)
_FIFO_BLOCK = re.compile(r"^ikfifo\.(?P<base>.+)\.(?P<id>[0-9a-f]{12})\.oob\.[0-9a-f]{16}$")
_NOTE_MAX = 4096


def _notes(scan: _Scan) -> dict[str, tuple[str, str, int]]:
    """The ``fifo://`` notes in /dev/shm that can be read: note -> (FIFO path, id, owner).

    A note that is not a regular file, cannot be read, or names a path whose block
    base is not its own is left out (so never taken for a channel that is gone).
    """
    notes = {}
    for entry in scan.entries:
        m = _FIFO_NOTE.match(entry)
        if m is None:
            continue
        note = f"{SHM_DIR}/{entry}"
        try:
            fd = os.open(note, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                continue
            path = os.fsdecode(os.read(fd, _NOTE_MAX))
        except (OSError, UnicodeError):
            continue
        finally:
            os.close(fd)
        if os.path.isabs(path) and block_base(path) == m["base"]:
            notes[note] = (path, m["id"], info.st_uid)
    return notes


def _fifo_may_live(path: str, ident: str) -> bool:
    """False only when ``path`` surely holds no channel of creation ``ident`` any more."""
    try:
        whole, _pid, creation_id = read_header(path + STATE_SUFFIX)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: keep
    return not whole or creation_id[:6].hex() == ident


def _noted_paths(scan: _Scan) -> list[str]:
    """FIFO paths from the notes whose state file has the note's owner (not a forged one)."""
    paths = []
    for path, _ident, uid in _notes(scan).values():
        if os.path.realpath(path) != path:
            continue  # through a symlink: --dir finds it (a note must not steer root)
        with contextlib.suppress(OSError):
            if os.stat(path + STATE_SUFFIX, follow_symlinks=False).st_uid == uid:
                paths.append(path)
    return paths


def _fifo_channels(dirs: Iterable[str], scan: _Scan) -> Iterator[ChannelInfo]:
    paths = [
        os.path.join(os.path.abspath(directory), entry[: -len(STATE_SUFFIX)])
        for directory in dirs
        for entry in _entries(directory)
        if entry.endswith(STATE_SUFFIX)
    ]
    paths += _noted_paths(scan)
    seen: set[str] = set()
    for path in paths:
        real = os.path.realpath(path)  # one channel, reached by two spellings, is listed once
        if real in seen:
            continue
        seen.add(real)
        with contextlib.suppress(FileNotFoundError):
            yield _fifo_info(path, scan)


# -- the public calls -------------------------------------------------------------------


def _list(fifo_dirs: Iterable[str], scan: _Scan) -> list[ChannelInfo]:
    return [*_shm_channels(scan), *_mq_channels(scan), *_fifo_channels(fifo_dirs, scan)]


def list_channels(fifo_dirs: Iterable[str] = ()) -> list[ChannelInfo]:
    """Every named ipckit channel on this host.

    ``fifo://`` channels are found by the note each leaves in /dev/shm, and in the
    directories ``fifo_dirs`` names (for any made where /dev/shm could not be written).

    Reads headers and state files in place: it attaches to nothing, so it changes no
    counter and takes no hold. Use :func:`ipckit.open` and ``stats()`` for a channel's
    live counters.
    """
    return _list(fifo_dirs, _Scan.now())


def find_channel(url: str) -> ChannelInfo | None:
    """The channel ``url`` names (a ``fifo://`` one in its own directory), or None."""
    scheme, _, rest = url.partition("://")
    rest = rest.partition("?")[0]
    if scheme == "fifo":
        rest = os.path.abspath(rest)
    dirs = [os.path.dirname(rest)] if scheme == "fifo" else []
    for ch in list_channels(dirs):
        if ch.url == f"{scheme}://{rest}":
            return ch
    return None


def _orphans(scan: _Scan, channels: list[ChannelInfo]) -> list[str]:
    """Parts in /dev/shm whose channel is gone and that no process has open.

    Only when every process's descriptors could be read: a part of a channel that
    was unlinked while handles still had it open is theirs until their last close.
    A ``fifo://`` block goes once no process has a state file of its creation open
    (wherever that file now is): the FIFO's contents, its reference included, died
    with the last descriptor. A note goes when its channel is gone (its FIFO and
    state file were removed without ``unlink()``) and nobody holds that creation.
    """
    if not scan.complete:
        return []
    owned = {p for ch in channels for p in ch.objects}
    # A FIFO's contents die with its last descriptor, references and all: a block whose
    # creation no process holds is garbage whether or not its channel is still there.
    gone_notes = {
        note
        for note, (path, ident, _uid) in _notes(scan).items()
        if note not in owned and ident not in scan.held_ids and not _fifo_may_live(path, ident)
    }
    shm_names = {ch.url.removeprefix("shm://") for ch in channels if ch.kind == "shm"}
    mq_names = {ch.url.removeprefix("mq://") for ch in channels if ch.kind == "mq"}
    out = []
    for entry in scan.entries:
        path = f"{SHM_DIR}/{entry}"
        if path in owned or path in scan.held:
            continue
        body = entry.removeprefix("sem.")
        if body.startswith(_SHM_PREFIX) and "~" in body:
            name = body[len(_SHM_PREFIX) :].partition("~")[0]
            segment = f"{SHM_DIR}/{_SHM_PREFIX}{name}"
            if segment in scan.held:
                continue  # this name's channel, or an unlinked one of it, is still open
            if name not in shm_names or _SHM_BLOCK.match(entry):
                out.append(path)  # no channel; or a block of an older channel of the name
        elif (m := _MQ_BLOCK.match(entry)) is not None:
            state = f"{SHM_DIR}/{_MQ_PREFIX}{m['name']}{_MQ_STATE}"
            if m["name"] not in mq_names and state not in scan.held:
                out.append(path)
        elif path in gone_notes or _unheld_fifo_block(entry, scan):
            out.append(path)
    return out


def _unheld_fifo_block(entry: str, scan: _Scan) -> bool:
    m = _FIFO_BLOCK.match(entry)
    return m is not None and m["id"] not in scan.held_ids


def unlink_part(path: str) -> bool:
    """Remove one object (a file in /dev/shm, a queue); False if it could not go."""
    try:
        if path.startswith(f"{_MQ_DIR}/"):
            import posix_ipc

            posix_ipc.unlink_message_queue("/" + path[len(_MQ_DIR) + 1 :])
        else:
            os.unlink(path)
    except FileNotFoundError:
        return True
    except Exception:  # noqa: BLE001 - another user's (EPERM in a sticky /dev/shm): left
        return False
    return True


def remove_channel(info: ChannelInfo) -> list[str]:
    """Remove every object of one channel, held or not (``ipckit rm``); what could not go.

    Handles still open keep what they mapped, as after ``unlink()``, but the
    out-of-band blocks of messages they have not read yet go too.
    """
    return [p for p in info.objects if not unlink_part(p)]


def remove_if_still_stale(info: ChannelInfo) -> bool:
    """Remove a stale channel unless it changed since it was listed; True if removed.

    The file its handles hold is opened again, checked to be the same file, and held
    with an exclusive ``flock`` while the channel's objects go, so a process that
    attaches meanwhile either got in first (then the lock is refused) or waits and
    finds the channel gone, as after ``unlink()``.
    """
    directory, name = os.path.split(info.held_by)
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd
            )
        except OSError:
            return False
        try:
            if os.fstat(fd).st_ino != info.inode:
                return False  # made again since it was listed: a new channel
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # someone attached meanwhile
            # What lies beside the held file goes through the directory it was found in:
            # a path component swapped for a symlink since cannot point this elsewhere.
            return all(
                _unlink_at(dfd, os.path.basename(p))
                if os.path.dirname(p) == directory
                else unlink_part(p)
                for p in info.objects
            )
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def _unlink_at(dfd: int, name: str) -> bool:
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def plan_cleanup(fifo_dirs: Iterable[str] = ()) -> tuple[list[ChannelInfo], list[str]]:
    """What :func:`cleanup_stale` would remove: the stale channels and the orphaned parts."""
    scan = _Scan.now()
    channels = _list(fifo_dirs, scan)
    return [ch for ch in channels if ch.stale], _orphans(scan, channels)


def cleanup_stale(*, dry_run: bool = False, fifo_dirs: Iterable[str] = ()) -> list[str]:
    """Remove what nobody can use any more; return the paths removed (or, dry, to remove).

    Removes every object of a channel no process holds whose creator is dead, or that
    its creator never finished, and the parts in /dev/shm of channels already gone
    (out-of-band blocks, lock files, doorbells, semaphores) that no process has open.
    A channel some handle still holds is never touched, nor one whose creator lives.
    Each channel is checked again, under an exclusive lock, just before it goes.
    ``fifo://`` channels are found by their notes in /dev/shm and in ``fifo_dirs``.
    """
    stale, orphans = plan_cleanup(fifo_dirs)
    if dry_run:
        return [p for ch in stale for p in ch.objects] + orphans
    removed = [p for ch in stale if remove_if_still_stale(ch) for p in ch.objects]
    return removed + [p for p in orphans if unlink_part(p)]
