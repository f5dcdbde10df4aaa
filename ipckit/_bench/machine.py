"""A description of the machine a run was made on, for the report and the JSON."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

__all__ = ["machine_info"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _implementation() -> str:
    """What ipckit handles opened in this process run: the C core or pure Python, and why."""
    try:
        from ipckit import _accel
    except ImportError:
        return "pure Python (no C core in this version)"
    return _accel.describe()


def machine_info() -> dict[str, Any]:
    """CPU count and model, kernel, Python and ipckit versions, ipckit's code path."""
    import ipckit

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "ipckit": ipckit.__version__,
        "implementation": _implementation(),
    }
