"""Shared command line for the scenarios in this folder: same harness as ``ipckit bench``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ipckit._bench.command import UsageError, select
from ipckit._bench.jsonreport import to_json
from ipckit._bench.progress import Progress
from ipckit._bench.registry import all_contenders
from ipckit._bench.report import format_table
from ipckit._bench.session import Settings, run_bench
from ipckit._bench.workloads import Workload


def main(
    description: str,
    workloads: Sequence[Workload],
    argv: Sequence[str] | None = None,
    *,
    producers_default: int = 1,
    many_producers_only: bool = False,
) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--placement", choices=("cross", "same", "none"), default="cross")
    parser.add_argument("--producers", type=int, default=producers_default)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.producers < 1:
        parser.error("--rounds and --producers must be at least 1, --duration positive")
    pool = [c for c in all_contenders() if c.many_producers or not many_producers_only]
    by_name = {c.name: c for c in pool}
    try:
        names, wnames = select(list(by_name), [w.name for w in workloads], args.only, args.skip)
    except UsageError as exc:
        parser.error(str(exc))
    baseline = args.baseline or names[0]
    if baseline not in names:
        parser.error(f"--baseline {baseline} is not among the selected contenders")
    chosen = [w for w in workloads if w.name in wnames]
    settings = Settings(
        rounds=args.rounds,
        duration=args.duration,
        timeout=args.timeout,
        placement=args.placement,
        baseline=baseline,
        producers=args.producers,
    )
    progress = Progress(sys.stderr, enabled=not args.no_progress)
    try:
        result = run_bench([by_name[n] for n in names], chosen, settings, progress)
    finally:
        progress.close()
    print(format_table(result, list(chosen)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(to_json(result, list(chosen)), f, indent=1)
    return 0
