"""``ipckit ls``, ``stat``, ``rm`` and ``gc``: see and clean named channels.

Named channels (``shm://``, ``mq://``, ``fifo://``) live until ``unlink()``, like the
POSIX objects under them. ``ls`` lists them (kind, size, depth, creator and whether
it lives, whether any process holds the channel, age), ``stat`` shows one channel's
counters and ``--watch`` refreshes them, ``rm`` removes channels with every part of
them, and ``gc`` removes what nobody can use any more (:mod:`ipckit._inventory`).
``fifo://`` channels live at paths of their own and are found by the note each leaves
in /dev/shm; ``--dir`` also searches a directory (for FIFOs made without a note).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import ipckit
from ipckit import _inventory
from ipckit.errors import IPCError

__all__ = ["register_gc", "register_ls", "register_rm", "register_stat"]


def _describe(ch: _inventory.ChannelInfo) -> str:
    creator = (
        "creator=unknown"
        if ch.creator_alive is None
        else f"creator={ch.creator_pid}({'alive' if ch.creator_alive else 'dead'})"
    )
    parts = [
        ch.url,
        f"depth={'?' if ch.depth is None else ch.depth}",
        f"capacity={'?' if ch.capacity is None else ch.capacity}",
        creator,
        "in-use" if ch.in_use else "unused",
        f"age={ch.age_seconds:.0f}s",
        f"objects={len(ch.objects)}",
    ]
    if ch.problem:
        parts.append(f"problem: {ch.problem}")
    if ch.stale:
        parts.append("(stale: ipckit gc removes it)")
    return "  ".join(parts)


def _ls(args: argparse.Namespace) -> int:
    channels = _inventory.list_channels(args.dir)
    if args.json:
        json.dump([ch.as_dict() for ch in channels], sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif not channels:
        sys.stdout.write("no ipckit channels\n")
    else:
        for ch in channels:
            sys.stdout.write(_describe(ch) + "\n")
    return 0


def _stat(args: argparse.Namespace) -> int:
    try:
        ch = ipckit.open(args.url)
    except FileNotFoundError:
        sys.stderr.write(f"ipckit stat: {args.url}: nothing of that name exists\n")
        return 1
    except (IPCError, OSError) as exc:
        sys.stderr.write(f"ipckit stat: {args.url}: {exc}\n")
        return 1
    with ch:
        shown = 0
        while True:
            s = ch.stats()
            if args.json:
                record = {
                    "url": s.url,
                    "depth": s.depth,
                    "capacity": s.capacity,
                    "high_water": s.high_water,
                    **s.extra,
                }
                sys.stdout.write(json.dumps(record) + "\n")
            else:
                extra = " ".join(f"{k}={v}" for k, v in sorted(s.extra.items()))
                sys.stdout.write(
                    f"{time.strftime('%H:%M:%S')}  {s.url}  depth={s.depth} "
                    f"capacity={s.capacity} high_water={s.high_water}  {extra}\n"
                )
            sys.stdout.flush()
            shown += 1
            if not args.watch or (args.count and shown >= args.count):
                return 0
            time.sleep(args.interval)


def _rm(args: argparse.Namespace) -> int:
    status = 0
    for url in args.urls:
        info = _inventory.find_channel(url)
        if info is None:
            sys.stderr.write(f"ipckit rm: {url}: nothing of that name exists\n")
            status = 1
            continue
        left = _inventory.remove_channel(info)
        if left:
            sys.stderr.write(f"ipckit rm: {url}: could not remove {', '.join(left)}\n")
            status = 1
            continue
        sys.stdout.write(f"removed {info.url} ({len(info.objects)} objects)\n")
    return status


def _gc(args: argparse.Namespace) -> int:
    stale, orphans = _inventory.plan_cleanup(args.dir)
    verb = "would remove" if args.dry_run else "removed"
    done = 0
    for ch in stale:
        if args.dry_run or _inventory.remove_if_still_stale(ch):
            why = ch.problem or f"creator {ch.creator_pid} is dead and nobody holds it"
            sys.stdout.write(f"{verb} {ch.url} ({why})\n")
            done += 1
    for path in orphans:
        if args.dry_run or _inventory.unlink_part(path):
            sys.stdout.write(f"{verb} {path} (its channel is gone)\n")
            done += 1
    if not done:
        sys.stdout.write("nothing to remove\n")
    return 0


def _dirs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also look for fifo:// channels in DIR, for any made without a note in "
        "/dev/shm (repeatable)",
    )


def register_ls(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ipckit ls``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "ls", help="list named channels: kind, size, depth, creator, holders, age"
    )
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    _dirs(p)
    p.set_defaults(handler=_ls, parser=p)
    return p


def register_stat(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ipckit stat URL``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "stat", help="one channel's counters (attaches to it); --watch refreshes them"
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--watch", action="store_true", help="print again every --interval")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between prints")
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after N prints")
    p.add_argument("--json", action="store_true", help="one JSON object per print")
    p.set_defaults(handler=_stat, parser=p)
    return p


def register_rm(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ipckit rm URL...``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "rm", help="remove named channels (shm://, mq://, fifo://) and every part of them"
    )
    p.add_argument("urls", nargs="+", metavar="URL")
    p.set_defaults(handler=_rm, parser=p)
    return p


def register_gc(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ipckit gc``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "gc", help="remove channels nobody can use (creator dead, nobody holding) and orphans"
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    _dirs(p)
    p.set_defaults(handler=_gc, parser=p)
    return p
