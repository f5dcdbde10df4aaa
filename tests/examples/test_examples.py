"""Every program in examples/ runs by itself, exits 0 and leaves no IPC object behind.

Examples are found by globbing, so a new ``examples/*.py`` is tested without
touching this file. Each runs as a real process with a hard timeout.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.examples._run import run_bounded

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
TIMEOUT = 60


def _ipc_names() -> set[str]:
    names = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm")}
    if os.path.isdir("/dev/mqueue"):
        names |= {f"/dev/mqueue/{n}" for n in os.listdir("/dev/mqueue")}
    return names


def test_examples_exist() -> None:
    assert EXAMPLES, f"no examples found in {EXAMPLES_DIR}"


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    before = _ipc_names()
    pid, _, _ = run_bounded(
        [sys.executable, "-W", "error", str(path)], EXAMPLES_DIR.parent, TIMEOUT, path.name
    )
    # Examples name their OS objects after their own process id (os.getpid()).
    mine = re.compile(rf"(?<!\d){pid}(?!\d)")
    left = {n for n in _ipc_names() - before if mine.search(n)}
    assert not left, f"{path.name} left IPC objects behind: {sorted(left)}"


@pytest.mark.parametrize("page", ["docs/index.md", "docs/guide.md"])
def test_every_example_is_listed_in_the_docs(page: str) -> None:
    text = (EXAMPLES_DIR.parent / page).read_text()
    listed = set(re.findall(r"`examples/([\w.]+\.py)`", text))
    files = {p.name for p in EXAMPLES}
    assert files <= listed, f"{page} does not list {sorted(files - listed)}"
    assert listed <= files, f"{page} lists examples that do not exist: {sorted(listed - files)}"


def test_the_docs_site_includes_every_example() -> None:
    # docs/examples.md includes the files (pymdownx.snippets), so the site shows them as they are.
    text = (EXAMPLES_DIR.parent / "docs" / "examples.md").read_text()
    included = set(re.findall(r'--8<-- "examples/([\w.]+)"', text))
    assert {p.name for p in EXAMPLES} <= included, sorted({p.name for p in EXAMPLES} - included)
