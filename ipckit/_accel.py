"""Which implementation runs the hot paths: the C core or the pure-Python reference.

``ipckit._core`` (csrc/) is built by ``pip install`` where a C compiler is found;
without it, or with ``IPCKIT_PURE=1`` in the environment when ipckit is imported,
every path runs the pure-Python code, which stays the reference. Both share the
same shared-memory layout and semaphores, so native and pure processes can use one
channel together.
"""

from __future__ import annotations

import os
from types import ModuleType

from ipckit._framing import Frame

__all__ = ["built", "core", "describe", "native", "set_pure"]


def _load() -> tuple[ModuleType | None, str]:
    try:
        from ipckit import _core
    except ImportError as exc:
        return None, f"pure Python: the C core is not built ({exc})"
    _core.set_frame_type(Frame)
    return _core, "native: the C core runs the hot paths"


_FORCED_PURE = os.environ.get("IPCKIT_PURE", "") not in ("", "0")
# With IPCKIT_PURE set the C core is not even imported: the variable is also the way
# out should a build of it ever misbehave.
_loaded, _why = (None, "pure Python: IPCKIT_PURE is set") if _FORCED_PURE else _load()
#: The C core when it is in use, else None. Read it when a handle opens, not at import.
core: ModuleType | None = _loaded
#: True when the C core runs the hot paths (see :data:`ipckit.native`).
native: bool = core is not None


def built() -> bool:
    """True when the C core is built and importable (whether or not it is in use)."""
    return (_loaded if _loaded is not None else _load()[0]) is not None


def describe() -> str:
    """One line for ``ipckit --version``: which implementation is in use and why."""
    if core is None and not _FORCED_PURE and _loaded is not None:
        return "pure Python: set_pure(True)"
    if core is not None and _FORCED_PURE:
        return "native: set_pure(False) despite IPCKIT_PURE"
    return _why


def set_pure(pure: bool) -> None:
    """Use the pure path (True) or the C core, if built (False) for handles opened from now on.

    For the tests and the bench, which compare both paths in one process; an
    application sets ``IPCKIT_PURE=1`` in the environment instead.
    """
    global core, native
    core = None if pure else (_loaded if _loaded is not None else _load()[0])
    native = core is not None
