"""Counts of the examples each decoder's fuzz tests feed it, for the published figures.

Each hypothesis body that feeds a decoder hostile bytes is wrapped in
``@counted("decoder")`` (under ``@given``): every example it runs is counted, and so is
every one that raised out of the body, which is an exception the contract does not
allow (the bodies catch the errors they expect). With ``IPCKIT_FIGURES=FILE`` the
session appends one JSON line per decoder to FILE (tests/conftest.py), which
scripts/reliability_figures.py turns into a table.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis.errors import StopTest, UnsatisfiedAssumption

_F = TypeVar("_F", bound=Callable[..., Any])

#: decoder -> [examples run, examples that raised]
COUNTS: dict[str, list[int]] = {}


def counted(decoder: str) -> Callable[[_F], _F]:
    """Count the examples of the wrapped body under ``decoder``."""

    def wrap(body: _F) -> _F:
        @functools.wraps(body)
        def run(*args: Any, **kwargs: Any) -> Any:
            tally = COUNTS.setdefault(decoder, [0, 0])
            try:
                result = body(*args, **kwargs)
            except (UnsatisfiedAssumption, StopTest):
                raise  # hypothesis steering its search: not an example the decoder saw
            except BaseException:
                tally[0] += 1
                tally[1] += 1
                raise
            tally[0] += 1
            return result

        return run  # type: ignore[return-value]

    return wrap


def write_figures(path: str) -> None:
    """Append one ``{"kind": "fuzz", ...}`` JSON line per decoder to ``path``."""
    with open(path, "a") as out:
        for decoder, (examples, raised) in sorted(COUNTS.items()):
            record = {"kind": "fuzz", "decoder": decoder, "examples": examples, "raised": raised}
            out.write(json.dumps(record) + "\n")
