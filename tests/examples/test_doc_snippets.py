"""Code quoted in docs/ from an example file is an exact excerpt of that file.

A fenced block right after ``<!-- example: examples/NAME.py -->`` must appear, line
for line, in that file, so the docs never drift from the programs CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
_QUOTE = re.compile(r"<!-- example: (?P<path>\S+) -->\n```[a-z]*\n(?P<code>.*?)\n```", re.DOTALL)


def _quotes() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for match in _QUOTE.finditer(doc.read_text()):
            found.append((doc.name, match["path"], match["code"]))
    return found


QUOTES = _quotes()


@pytest.mark.parametrize(
    ("doc", "path", "code"), QUOTES, ids=[f"{d}:{p}:{i}" for i, (d, p, _) in enumerate(QUOTES)]
)
def test_quoted_code_is_in_the_example(doc: str, path: str, code: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"{doc} quotes {path}, which does not exist"
    assert code in source.read_text(), f"{doc} quotes code that is not in {path}:\n{code}"
