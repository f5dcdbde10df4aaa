"""A public test kit: the channel contract as reusable checks.

``check_channel_contract(make_pair)`` runs every check in :data:`CONTRACT_CHECKS`
against pairs from ``make_pair``; ``tests/conformance`` runs each check as its own
test for every backend and start method. A new backend is done when it passes them
all unchanged.
"""

from __future__ import annotations

from ipckit.testing._contract import (
    CONTRACT_CHECKS,
    PairFactory,
    check_channel_contract,
)
from ipckit.testing._names import NAME_PREFIX, unique_name

__all__ = ["CONTRACT_CHECKS", "NAME_PREFIX", "PairFactory", "check_channel_contract", "unique_name"]
