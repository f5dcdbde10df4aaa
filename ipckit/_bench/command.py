"""``ipckit bench``: its arguments, their checks, and the run that prints the table.

:func:`register` adds the subcommand to the ``ipckit`` parser; the heavy imports
wait until :func:`run`, so other subcommands start fast.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["UsageError", "register", "run", "select"]

#: ``--quick``: enough rounds for a median, short rounds; under a minute on 2 CPUs.
QUICK_ROUNDS = 3
QUICK_DURATION = 0.05
DEFAULT_ROUNDS = 5
DEFAULT_DURATION = 0.5


class UsageError(Exception):
    """A bad combination of arguments; the CLI prints it with the usage and exits 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``ipckit`` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="measure every ipckit backend and the usual alternatives side by side",
        description=(
            "Measure each available ipckit transport and, when installed, multiprocessing, "
            "faster-fifo and pyzmq, against raw kernel message passing. Producer and consumer "
            "are separate processes; every message is checked, so a broken contender shows "
            "FAIL instead of a number. Install the peers with pip install '.[bench]' in a "
            "clone of ipckit (not 'pip install ipckit': that name on PyPI is another project)."
        ),
        epilog=(
            "NAMES are comma-separated contender or workload names, or shell-style patterns "
            "such as 'ipckit-*'; see --list. Exit status: 0 when every measured cell passed, "
            "1 when any cell failed its check, crashed or timed out, 2 for bad arguments."
        ),
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"{QUICK_ROUNDS} short rounds per cell ({QUICK_DURATION:g} s): a look in under a minute"
        ),
    )
    p.add_argument(
        "--rounds",
        type=_positive_int,
        metavar="N",
        help=(
            f"rounds per cell; the table shows their median (default {DEFAULT_ROUNDS}, "
            f"--quick {QUICK_ROUNDS})"
        ),
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        metavar="SECONDS",
        help=(
            f"length of one round (default {DEFAULT_DURATION:g}, --quick {QUICK_DURATION:g}); "
            "a round always sends a few messages even if that takes longer"
        ),
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="a round taking longer is killed and shown as TIMEOUT (default 30)",
    )
    p.add_argument(
        "--placement",
        choices=("cross", "same", "none"),
        default="cross",
        help=(
            "cross: producer and consumer pinned to two different CPUs (default); "
            "same: both pinned to one CPU; none: not pinned"
        ),
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAMES",
        help=("run only these contenders and/or workloads (repeatable)"),
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAMES",
        help=("leave out these contenders and/or workloads (repeatable)"),
    )
    p.add_argument(
        "--baseline",
        default="auto",
        metavar="NAME",
        help=(
            "contender every ratio compares with; default 'auto': each table's own (raw-pipe; "
            "raw-memcpy for bw-16MiB; mp-queue for small-dict; faster-fifo, and "
            "faster-fifo-batch for batch rows, for many-*); 'none' for no ratios"
        ),
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (see docs)")
    p.add_argument(
        "--markdown",
        metavar="FILE.md",
        help=(
            "also write the results as Markdown tables: between the generated-block markers "
            "of an existing FILE.md (docs/benchmarks.md has them), or into a new file"
        ),
    )
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="measure nothing: render a saved --json FILE with --markdown",
    )
    p.add_argument("--plot", metavar="FILE.png", help="also draw the results (needs matplotlib)")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (a live bar on a terminal, else a line per finished cell)",
    )
    p.add_argument("--list", action="store_true", help="list contenders and workloads, then exit")
    p.set_defaults(handler=run, parser=p)
    return p


def _tokens(values: Sequence[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def select(
    contenders: Sequence[str], workloads: Sequence[str], only: Sequence[str], skip: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Apply ``--only``/``--skip`` (names or patterns) to contender and workload names."""
    known = [*contenders, *workloads]

    def matches(tokens: list[str], flag: str) -> tuple[set[str], set[str]]:
        cs: set[str] = set()
        ws: set[str] = set()
        for tok in tokens:
            hit = [n for n in known if fnmatch.fnmatchcase(n, tok)]
            if not hit:
                raise UsageError(
                    f"{flag} {tok!r} matches no contender or workload; contenders: "
                    f"{', '.join(contenders)}; workloads: {', '.join(workloads)}"
                )
            cs |= {n for n in hit if n in contenders}
            ws |= {n for n in hit if n in workloads}
        return cs, ws

    only_c, only_w = matches(_tokens(only), "--only")
    skip_c, skip_w = matches(_tokens(skip), "--skip")
    chosen_c = [c for c in contenders if (not only_c or c in only_c) and c not in skip_c]
    chosen_w = [w for w in workloads if (not only_w or w in only_w) and w not in skip_w]
    if not chosen_c:
        raise UsageError("--only/--skip left no contender to run")
    if not chosen_w:
        raise UsageError("--only/--skip left no workload to run")
    return chosen_c, chosen_w


def _with_baselines(
    names: list[str], pool: Sequence[Any], workloads: Sequence[Any], skip: Sequence[str]
) -> list[str]:
    """``names`` plus each chosen workload's baselines (the ratio column needs them).

    A baseline the user skipped by name or pattern stays out: its ratios show "-".
    """
    from ipckit._bench.workloads import AUTO, baseline_of

    by_name = {c.name: c for c in pool}
    batched = {by_name[n].batch for n in names} - {1}
    wanted = set(names)
    for w in workloads:
        for batch in (1, *batched):
            base = baseline_of(AUTO, w, batch)
            if base is None or base not in by_name:
                continue
            if any(fnmatch.fnmatchcase(base, tok) for tok in _tokens(skip)):
                continue
            wanted.add(base)
    return [c.name for c in pool if c.name in wanted]


def _list(out: Any) -> int:
    from ipckit._bench.registry import all_contenders
    from ipckit._bench.workloads import WORKLOADS

    contenders = all_contenders()
    width = max(len(n) for n in [*(c.name for c in contenders), *(w.name for w in WORKLOADS)])
    out.write("contenders:\n")
    for c in contenders:
        try:
            reason = c.probe()
        except Exception as exc:  # noqa: BLE001 - listing must survive a broken probe
            reason = f"probe failed: {exc}"
        state = "" if reason is None else f"  [skipped: {reason}]"
        out.write(f"  {c.name:<{width}} {c.description}{state}\n")
    out.write("workloads:\n")
    for w in WORKLOADS:
        base = w.baseline or "nothing"
        if w.batch_baseline is not None:
            base += f"; batch rows vs {w.batch_baseline}"
        out.write(f"  {w.name:<{width}} {w.label} (vs {base})\n")
    return 0


def _render_saved(source: str, markdown: str | None) -> int:
    """``--from-json``: the Markdown tables of a saved run, without measuring anything."""
    from ipckit._bench.jsonreport import check
    from ipckit._bench.markdown import to_markdown, write_markdown

    if not markdown:
        raise UsageError("--from-json renders a saved run: give --markdown FILE.md too")
    try:
        with open(source, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--from-json {source}: cannot read it: {exc}") from None
    problems = check(doc)
    if problems:
        raise UsageError(
            f"--from-json {source} is not an ipckit bench --json report: {'; '.join(problems[:3])}"
        )
    write_markdown(markdown, to_markdown(doc))
    return 0


def run(args: argparse.Namespace, contenders: Sequence[Any] | None = None) -> int:
    """Run the bench as ``args`` say; print the table; write JSON and plot if asked.

    ``contenders`` replaces the built-in list (the tests pass a deliberately broken one).
    """
    from ipckit._bench.jsonreport import to_json
    from ipckit._bench.markdown import (
        MarkdownTargetError,
        check_target,
        to_markdown,
        write_markdown,
    )
    from ipckit._bench.plot import PlotUnavailable, plot, require_matplotlib
    from ipckit._bench.progress import Progress
    from ipckit._bench.registry import all_contenders
    from ipckit._bench.report import cell_line, format_table
    from ipckit._bench.results import ERROR, FAIL, TIMEOUT
    from ipckit._bench.session import Settings, run_bench
    from ipckit._bench.workloads import AUTO, WORKLOADS

    if args.list:
        return _list(sys.stdout)
    if args.markdown:
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.markdown))):
            raise UsageError(f"--markdown {args.markdown}: the directory does not exist")
        try:
            check_target(args.markdown)
        except MarkdownTargetError as exc:
            raise UsageError(str(exc)) from None
    if args.from_json:
        return _render_saved(args.from_json, args.markdown)
    pool = list(contenders) if contenders is not None else all_contenders()
    by_name = {c.name: c for c in pool}
    names, wnames = select(list(by_name), [w.name for w in WORKLOADS], args.only, args.skip)
    baseline: str | None = None if args.baseline.lower() == "none" else args.baseline
    if baseline == AUTO:
        chosen = [w for w in WORKLOADS if w.name in wnames]
        names = _with_baselines(names, pool, chosen, args.skip)
    elif baseline is not None:
        if baseline not in by_name:
            raise UsageError(
                f"--baseline {baseline!r} is not a contender; choose one of {', '.join(by_name)}, "
                "'auto' or 'none'"
            )
        if baseline in _tokens(args.skip):
            raise UsageError(f"--baseline {baseline} is also in --skip; drop one of them")
        if baseline not in names:  # the ratio column needs it: run it too
            names = [n for n in by_name if n in names or n == baseline]
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"{flag} {path}: the directory does not exist")
    if args.plot:
        try:
            require_matplotlib()
        except PlotUnavailable as exc:
            raise UsageError(str(exc)) from None

    settings = Settings(
        rounds=args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS),
        duration=args.duration or (QUICK_DURATION if args.quick else DEFAULT_DURATION),
        timeout=args.timeout,
        placement=args.placement,
        baseline=baseline,
        quick=args.quick,
    )
    workloads = [w for w in WORKLOADS if w.name in wnames]
    progress = Progress(sys.stderr, enabled=not args.no_progress)
    try:
        result = run_bench(
            [by_name[n] for n in names],
            workloads,
            settings,
            progress,
            on_cell=lambda cell, w, done, total: progress.cell_done(
                done, total, cell_line(cell, w)
            ),
        )
    finally:
        progress.close()
    sys.stdout.write(format_table(result, workloads) + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(to_json(result, workloads), f, indent=1)
            f.write("\n")
    if args.markdown:
        write_markdown(args.markdown, to_markdown(to_json(result, workloads)))
    if args.plot:
        plot(result, workloads, args.plot)
    bad = [cell for cell in result.cells.values() if cell.status in (FAIL, ERROR, TIMEOUT)]
    return 1 if bad else 0
