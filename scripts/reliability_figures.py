#!/usr/bin/env python3
"""Run the fault suite's storms and write the figures docs/reliability.md shows.

The kill storms (tests/faults/test_kill_storm.py), the named kill points, the
interval-timer storm (tests/faults/test_eintr_storm.py) and the decoders' fuzz tests
(counted by tests/fuzzing.py), plus the C record parser's fuzzer (scripts/fuzz.sh);
one run, one table each.

    python scripts/reliability_figures.py            # 30 s storms (--run-slow), a few minutes
    python scripts/reliability_figures.py --quick    # the 2 s storms CI runs

Writes docs/reliability-figures.md (included by docs/reliability.md) from one run;
the JSON lines the tests append (IPCKIT_FIGURES) are kept beside it as
docs/reliability-figures.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (
    ("sent", "sends returned"),
    ("delivered", "delivered"),
    ("unconfirmed", "delivered, send cut short"),
    ("lost_explained", "lost with a killed consumer"),
    ("lost_unexplained", "lost otherwise"),
    ("duplicated", "duplicated"),
    ("corrupted", "corrupted"),
    ("out_of_order", "out of order"),
    ("phantoms", "from no send"),
    ("producer_kills", "producers killed"),
    ("consumer_kills", "consumers killed"),
)


KILL_COLUMNS = (
    ("point", "kill point"),
    ("trials", "trials"),
    ("survived", "survivors went on"),
    ("p50_ms", "recovery p50 (ms)"),
    ("p99_ms", "recovery p99 (ms)"),
)
CTRL_C_COLUMNS = (
    ("trials", "trials"),
    ("p50_ms", "SIGINT to KeyboardInterrupt p50 (ms)"),
    ("max_ms", "max (ms)"),
)
FUZZ_COLUMNS = (
    ("examples", "examples run"),
    ("raised", "unexpected exceptions"),
)
#: The hypothesis tests that feed a decoder hostile bytes (each body is @counted).
FUZZ_TESTS = (
    "tests/framing/test_framing.py",
    "tests/framing/test_one_validator.py",
    "tests/framing/test_native_decoder.py",
    "tests/ring/test_native_ring.py",
    "tests/ring/test_ring_properties.py",
    "tests/serializers/test_serializers.py",
    "tests/faults/test_hostile_input.py",
)
C_FUZZ_RUNS = 300_000
EINTR_COLUMNS = (
    ("signals", "signals handled"),
    ("calls", "timed-out calls"),
    ("p50_ms", "overshoot p50 (ms)"),
    ("p99_ms", "overshoot p99 (ms)"),
    ("max_ms", "overshoot max (ms)"),
)


def _table(
    rows: list[dict[str, object]], columns: tuple[tuple[str, str], ...], first: str = "backend"
) -> list[str]:
    lines = [
        f"| {first} | " + " | ".join(title for _, title in columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for row in rows:
        cells = [
            f"{row[k]:,}"
            if isinstance(row[k], int)
            else f"`{row[k]}`"
            if k == "point"
            else f"{row[k]}"
            for k, _ in columns
        ]
        lines.append(f"| `{row['backend']}` | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    """Run the storms, write the tables and the JSON; the exit status is pytest's."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the 2 s storms only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.jsonl"
        test = "test_kill_storm" if args.quick else "test_kill_storm_long"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"tests/faults/test_kill_storm.py::{test}",
            "tests/faults/test_eintr_storm.py",
            "tests/faults/test_kill_points.py::test_survivors_go_on_50_trials",
            "tests/faults/test_blocked_calls.py::"
            "test_ctrl_c_while_asleep_is_prompt_and_leaves_the_channel_whole",
            *FUZZ_TESTS,
            "--run-slow",
        ]
        started = time.time()
        proc = subprocess.run(
            cmd, cwd=ROOT, env={**os.environ, "IPCKIT_FIGURES": str(out)}, check=False
        )
        rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    c_fuzz = _c_fuzz()
    storms = [r for r in rows if r.get("kind", "storm") == "storm"]
    eintr = [r for r in rows if r.get("kind") == "eintr"]
    kills = [r for r in rows if r.get("kind") == "killpoint"]
    fuzz = [{**r, "backend": r["decoder"]} for r in rows if r.get("kind") == "fuzz"]
    ctrl_c = [r for r in rows if r.get("kind") == "ctrl_c"]
    if not storms or not eintr or not kills or not fuzz or not ctrl_c:
        print("some figures were not written", file=sys.stderr)
        return 1
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    where = (
        f"on {when} on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs, Linux "
        f"{platform.release()}), by `python scripts/reliability_figures.py"
        f"{' --quick' if args.quick else ''}`"
    )
    lines = [
        f"**Kill storms**, {storms[0]['seconds']:g} s of kills per backend, run {where}:",
        "",
        *_table(storms, COLUMNS),
        "",
        "**Kill points**: a process SIGKILLed at each named point of each backend's protocol; "
        "recovery is the time from its death until the survivors have sent and received again "
        "(for a stream cut mid-frame: until the receiver has every whole message and the "
        "report of the cut), in the same run:",
        "",
        *_table(kills, KILL_COLUMNS),
        "",
        "**Interval-timer storm**: SIGALRM every 1 ms during calls that time out after 10 ms "
        "(receives on an empty channel, sync and `ipckit.aio`, and sends on a full one), "
        "in the same run:",
        "",
        *_table(eintr, EINTR_COLUMNS),
        "",
        "**Ctrl-C while asleep**: a SIGINT from another process once the caller has slept "
        "50 ms in a receive on an empty channel or a send on a full one, native and pure; "
        "every channel was then whole for another process, in the same run:",
        "",
        *_table(ctrl_c, CTRL_C_COLUMNS, "backend, call"),
        "",
        "**Fuzzing**: hypothesis examples fed to each decoder by the tests that feed it hostile "
        "bytes (frames cut, flipped and made up; msgpack and the numpy array layout, decoded "
        "alone and through a channel; records and garbage in the shm ring; handshakes from "
        "both sides); an unexpected exception is one the contract does not allow, in the same "
        "run:",
        "",
        *_table(fuzz, FUZZ_COLUMNS, "decoder"),
        "",
        f"The C ring's record parser, header decoder and writer, under AddressSanitizer and "
        f"UBSan (`scripts/fuzz.sh {C_FUZZ_RUNS}`): {c_fuzz}.",
    ]
    (ROOT / "docs" / "reliability-figures.md").write_text("\n".join(lines) + "\n")
    (ROOT / "docs" / "reliability-figures.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return proc.returncode


def _c_fuzz() -> str:
    """Run scripts/fuzz.sh and return its verdict line (or why it did not run)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "fuzz.sh"), str(C_FUZZ_RUNS), "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if proc.returncode != 0:
        return f"FAILED (exit {proc.returncode}): {lines[-1] if lines else 'no output'}"
    return lines[-1].removeprefix("fuzz_ring: ") if lines else "no output"


if __name__ == "__main__":
    sys.exit(main())
