"""The code in README.md and docs/*.md runs as pasted, or is an exact excerpt of an example.

Every fenced ``python`` block is one of:

- an excerpt: right after ``<!-- example: examples/NAME.py -->``, it must appear line for
  line in that file (which tests/examples/test_examples.py runs), so the docs never drift
  from the programs CI runs;
- deliberately not runnable: right after ``<!-- not-run: REASON -->``; there are very few;
- everything else: a whole program. It runs in a fresh interpreter with warnings as errors
  and a hard timeout, must exit 0 on its own within seconds, print no warning, and leave no
  shared-memory segment or message queue behind.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.examples._run import run_bounded

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A snippet must finish well within this; a reader pasting it waits no longer.
TIMEOUT = 20
#: Blocks marked not-run across all pages; raise it only with a reason nobody can fix.
MAX_NOT_RUN = 2

_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE)
_MARK = re.compile(r"<!-- (?P<kind>example|not-run): ?(?P<arg>.*?) -->\s*\Z", re.DOTALL)
_NAME = re.compile(r"\b(?:shm|mq)://(?P<name>[A-Za-z0-9_.-]+)")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    kind: str  # "run", "example" or "not-run"
    arg: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            before = text[: match.start()]
            # Only the line right before the fence can mark it (blank lines in between allowed).
            previous = before.rstrip("\n").rsplit("\n", 1)[-1]
            mark = _MARK.search(previous)
            kind, arg = (mark["kind"], mark["arg"].strip()) if mark else ("run", "")
            line = before.count("\n") + 1
            name = str(page.relative_to(ROOT))
            found.append(Block(name, line, match["code"], kind, arg))
    return found


BLOCKS = _blocks()
RUN = [b for b in BLOCKS if b.kind == "run"]
EXAMPLES = [b for b in BLOCKS if b.kind == "example"]


def test_blocks_are_found_and_hardly_any_are_exempt() -> None:
    assert len(RUN) >= 8, [b.id for b in BLOCKS]
    not_run = [b for b in BLOCKS if b.kind == "not-run"]
    assert all(b.arg for b in not_run), "a not-run mark must say why: <!-- not-run: REASON -->"
    assert len(not_run) <= MAX_NOT_RUN, [f"{b.id}: {b.arg}" for b in not_run]


@pytest.mark.parametrize("block", EXAMPLES, ids=[b.id for b in EXAMPLES])
def test_quoted_code_is_in_the_example(block: Block) -> None:
    source = ROOT / block.arg
    assert source.is_file(), f"{block.id} quotes {block.arg}, which does not exist"
    assert block.code.rstrip("\n") in source.read_text(), (
        f"{block.id} quotes code that is not in {block.arg}:\n{block.code}"
    )


def _ipc_objects() -> set[str]:
    names = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm")}
    if os.path.isdir("/dev/mqueue"):
        names |= {f"/dev/mqueue/{n}" for n in os.listdir("/dev/mqueue")}
    return names


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_snippet_runs_as_pasted(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(block.code)
    before = _ipc_objects()
    _, _, err = run_bounded(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        ROOT,  # as a reader in a clone would run it
        TIMEOUT,
        f"{block.id}\n{block.code}",
    )
    assert "Warning" not in err, f"{block.id} warned\n{err}"
    names = {m["name"] for m in _NAME.finditer(block.code)}
    left = {o for o in _ipc_objects() - before if any(n in o for n in names)}
    assert not left, f"{block.id} left {sorted(left)} behind"
