"""The channel contract, run for every backend (and start method for process checks).

Backends register pair factories in ``tests/conformance/factories_*.py``; every
factory runs every check in ``ipckit.testing.CONTRACT_CHECKS`` unchanged.
"""

from __future__ import annotations

import importlib
import pathlib

import pytest

from ipckit.testing import CONTRACT_CHECKS, PairFactory


def _factories() -> dict[str, PairFactory]:
    found: dict[str, PairFactory] = {}
    for path in sorted(pathlib.Path(__file__).parent.glob("factories_*.py")):
        module = importlib.import_module(f"tests.conformance.{path.stem}")
        found.update(module.FACTORIES)
    return found


FACTORIES = _factories()
CASES = [
    pytest.param(backend, check, method, id=f"{backend}-{check}" + (f"-{method}" if method else ""))
    for backend in FACTORIES
    for check, spec in CONTRACT_CHECKS.items()
    for method in (("fork", "spawn") if spec.processes else ("",))
]


@pytest.mark.parametrize(("backend", "check", "method"), CASES)
def test_contract(backend: str, check: str, method: str) -> None:
    CONTRACT_CHECKS[check].fn(FACTORIES[backend], method or "fork")
