"""Pair factories for shm:// (two handles on one queue: a creates, b attaches)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipckit
from ipckit import _accel
from ipckit.testing import PairFactory, unique_name


def _shm_pair(extra: Mapping[str, Any], paths: tuple[bool, bool] | None = None) -> PairFactory:
    """Two handles on one queue; ``paths`` forces each handle pure (True) or native (False).

    None keeps this run's default (native when built, pure under IPCKIT_PURE=1). A
    handle handed to a spawned child is attached again there, on that child's default.
    """

    def make(
        a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
    ) -> tuple[ipckit.Channel, ipckit.Channel]:
        url = f"shm://{unique_name('shm')}"
        default = _accel.core is None
        try:
            if paths is not None:
                _accel.set_pure(paths[0])
            left = ipckit.open(url, create=True, **{**extra, **(a or {})})
            try:
                if paths is not None:
                    _accel.set_pure(paths[1])
                right = ipckit.open(
                    url, **{**{k: v for k, v in extra.items() if k != "capacity"}, **(b or {})}
                )
            except BaseException:
                left.close()
                left.unlink()
                raise
        finally:
            _accel.set_pure(default)
        return left, right

    return make


FACTORIES: dict[str, PairFactory] = {
    "shm": _shm_pair({}),
    "shm-small-ring": _shm_pair({"capacity": "64KiB"}),
    "shm-spin": _shm_pair({"spin": 0.0005}),
    # The pure path in a native run, and a native handle facing a pure one.
    "shm-pure": _shm_pair({}, (True, True)),
    "shm-mixed": _shm_pair({}, (False, True)),
}
