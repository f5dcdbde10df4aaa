"""The machine-readable report (``--json FILE``) and a check against its schema.

The schema is ``ipckit/_bench/schema.json`` (JSON Schema 2020-12), shipped in the
package. :func:`check` validates with a small built-in checker covering the parts
of JSON Schema that file uses, so no dependency is needed; the tests also run the
real ``jsonschema`` package when it is installed.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

from ipckit._bench.report import baseline_cell, ratio
from ipckit._bench.results import OK, BenchResult, out_of_band
from ipckit._bench.workloads import Workload

__all__ = ["VERSION", "check", "load_schema", "to_json"]

#: Version 2 added dicts, many producers and consumers, per-workload and per-row
#: baselines, and native/pure; a version 1 report still validates and renders.
VERSION = 2

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report."""
    text = resources.files("ipckit._bench").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def to_json(result: BenchResult, workloads: list[Workload]) -> dict[str, Any]:
    """The report as a JSON-ready dict following ``schema.json``."""
    by_name = {w.name: w for w in workloads}
    cells = []
    for (contender, wname), cell in result.cells.items():
        w = by_name[wname]
        metrics: dict[str, Any] = {}
        if cell.status == OK and cell.rounds:
            for key in cell.rounds[0].metrics:
                summary = cell.summary(key)
                if summary is not None:
                    metrics[key] = summary.as_dict()
        cells.append(
            {
                "contender": contender,
                "workload": wname,
                "status": cell.status,
                "reason": cell.reason,
                "ratio": ratio(cell, baseline_cell(result, cell), w),
                "baseline": cell.baseline,
                "implementation": cell.implementation,
                "metrics": metrics,
                "unit": None
                if cell.unit is None
                else {
                    "inline_max": cell.unit.inline_max,
                    "what": cell.unit.what,
                    "out_of_band": out_of_band(cell.unit, w.sizes),
                },
                "rounds": [
                    {
                        "status": r.status,
                        "reason": r.reason,
                        "seconds": r.seconds,
                        "metrics": dict(r.metrics),
                        "implementation": r.implementation,
                    }
                    for r in cell.rounds
                ],
            }
        )
    return {
        "format": "ipckit-bench",
        "version": VERSION,
        "started": result.started,
        "seconds": result.seconds,
        "settings": result.settings,
        "machine": result.machine,
        "contenders": result.contenders,
        "workloads": result.workloads,
        "results": cells,
    }


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "number" and isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, _TYPES[kind])


def check(instance: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Problems found validating ``instance`` against the report schema (empty: valid)."""
    root = load_schema() if schema is None else schema
    problems: list[str] = []
    _check(instance, root, root, "$", problems)
    return problems


def _check(
    value: Any, schema: dict[str, Any], root: dict[str, Any], at: str, out: list[str]
) -> None:
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        _check(value, target, root, at, out)
        return
    if "const" in schema and value != schema["const"]:
        out.append(f"{at}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} is not one of {schema['enum']}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            out.append(f"{at}: expected {' or '.join(kinds)}, got {type(value).__name__}")
            return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and "minimum" in schema and value < schema["minimum"]:
        out.append(f"{at}: {value} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                out.append(f"{at}: missing {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                _check(item, props[key], root, f"{at}.{key}", out)
            elif extra is False:
                out.append(f"{at}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                _check(item, extra, root, f"{at}.{key}", out)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{at}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{at}[{i}]", out)
