"""Pair factories for shm:// (two handles on one queue: a creates, b attaches)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipckit
from ipckit.testing import PairFactory, unique_name


def _shm_pair(extra: Mapping[str, Any]) -> PairFactory:
    def make(
        a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
    ) -> tuple[ipckit.Channel, ipckit.Channel]:
        url = f"shm://{unique_name('shm')}"
        left = ipckit.open(url, create=True, **{**extra, **(a or {})})
        try:
            right = ipckit.open(
                url, **{**{k: v for k, v in extra.items() if k != "capacity"}, **(b or {})}
            )
        except BaseException:
            left.close()
            left.unlink()
            raise
        return left, right

    return make


FACTORIES: dict[str, PairFactory] = {
    "shm": _shm_pair({}),
    "shm-small-ring": _shm_pair({"capacity": "64KiB"}),
    "shm-spin": _shm_pair({"spin": 0.0005}),
}
