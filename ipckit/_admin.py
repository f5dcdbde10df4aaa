"""``ipckit ls``, ``ipckit rm`` and ``ipckit gc``: find and remove named channels.

Named channels live until ``unlink()``, like the POSIX objects under them. These
commands are for the ones a crashed program left behind: ``ls`` shows every
``shm://`` queue in /dev/shm with its figures, ``rm`` removes channels by URL,
and ``gc`` removes what cannot be used any more (queues whose creator died
before finishing them, out-of-band blocks whose queue is gone).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import Any

import ipckit
from ipckit._oob import SHM_DIR
from ipckit.backends import shm
from ipckit.errors import ChannelNotFound, IPCError, ProtocolError

__all__ = ["register_gc", "register_ls", "register_rm"]

_SEGMENT = "ikshm."


def _shm_names() -> Iterator[str]:
    # Segments are "ikshm.NAME"; every other object of a channel has a "~" in its name.
    for entry in sorted(os.listdir(SHM_DIR)):
        if entry.startswith(_SEGMENT) and "~" not in entry:
            yield entry[len(_SEGMENT) :]


def _ls(args: argparse.Namespace) -> int:
    out = sys.stdout
    found = False
    for name in _shm_names():
        found = True
        url = f"shm://{name}"
        try:
            with ipckit.open(url) as ch:
                s = ch.stats()
            out.write(
                f"{url}  depth={s.depth} capacity={s.capacity} high_water={s.high_water} "
                f"in={s.extra['messages_in']} out={s.extra['messages_out']} "
                f"recoveries={s.extra['recoveries']}\n"
            )
        except ProtocolError as exc:
            out.write(f"{url}  unusable: {exc}\n")
        except IPCError as exc:
            out.write(f"{url}  cannot attach: {exc}\n")
    if not found:
        out.write("no shm:// channels in /dev/shm\n")
    return 0


def _rm(args: argparse.Namespace) -> int:
    status = 0
    for url in args.urls:
        try:
            if url.startswith("shm://"):
                # By name, so half-made or corrupt queues can be removed too.
                shm.remove(url.removeprefix("shm://").partition("?")[0])
            else:
                with ipckit.open(url) as ch:
                    ch.unlink()
            sys.stdout.write(f"removed {url}\n")
        except ChannelNotFound as exc:
            # Not the attach message ("create it with create=True"): rm creates nothing.
            del exc
            sys.stderr.write(f"ipckit rm: {url}: nothing of that name exists\n")
            status = 1
        except (IPCError, OSError) as exc:
            sys.stderr.write(f"ipckit rm: {url}: {exc}\n")
            status = 1
    return status


def _gc(args: argparse.Namespace) -> int:
    removed = 0
    names = set(_shm_names())
    for name in sorted(names):
        try:
            with ipckit.open(f"shm://{name}"):
                pass
        except ProtocolError:
            if not args.dry_run:
                shm.remove(name)
            sys.stdout.write(f"{'would remove' if args.dry_run else 'removed'} shm://{name}\n")
            removed += 1
        except IPCError:
            pass
    for entry in sorted(os.listdir(SHM_DIR)):
        owner, sep, _ = entry.partition("~.oob.")
        if sep and owner.startswith(_SEGMENT) and owner[len(_SEGMENT) :] not in names:
            if not args.dry_run:
                try:
                    os.unlink(os.path.join(SHM_DIR, entry))
                except FileNotFoundError:
                    continue
            sys.stdout.write(f"{'would remove' if args.dry_run else 'removed'} {entry}\n")
            removed += 1
    if not removed:
        sys.stdout.write("nothing to remove\n")
    return 0


def register_ls(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ipckit ls``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "ls", help="list shm:// channels in /dev/shm with their figures"
    )
    p.set_defaults(handler=_ls, parser=p)
    return p


def register_rm(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ipckit rm URL...``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "rm", help="remove named channels (shm://, mq://, fifo://) and everything under them"
    )
    p.add_argument("urls", nargs="+", metavar="URL")
    p.set_defaults(handler=_rm, parser=p)
    return p


def register_gc(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ipckit gc``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "gc", help="remove half-made shm:// queues and orphaned out-of-band blocks"
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.set_defaults(handler=_gc, parser=p)
    return p
