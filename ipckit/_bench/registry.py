"""The list of contenders, in the order the table shows them."""

from __future__ import annotations

from ipckit._bench.contender import Contender
from ipckit._bench.ipckit_contenders import IPCKIT_CONTENDERS
from ipckit._bench.memcpy import MEMCPY
from ipckit._bench.peers import PEER_CONTENDERS
from ipckit._bench.raw import RAW_CONTENDERS

__all__ = ["DEFAULT_BASELINE", "all_contenders"]

#: The floor of kernel message passing: the baseline of the byte workloads (each
#: workload names its own, see ``Workload.baseline``).
DEFAULT_BASELINE = "raw-pipe"


def all_contenders() -> list[Contender]:
    """Raw kernel paths and the memcpy floor first, then the peers, then every ipckit transport."""
    return [*RAW_CONTENDERS, MEMCPY, *PEER_CONTENDERS, *IPCKIT_CONTENDERS]
