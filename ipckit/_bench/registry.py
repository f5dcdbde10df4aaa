"""The list of contenders, in the order the table shows them."""

from __future__ import annotations

from ipckit._bench.contender import Contender
from ipckit._bench.ipckit_contenders import IPCKIT_CONTENDERS
from ipckit._bench.peers import PEER_CONTENDERS
from ipckit._bench.raw import RAW_CONTENDERS

__all__ = ["DEFAULT_BASELINE", "all_contenders"]

#: The floor of kernel message passing; ratios are against it unless --baseline says otherwise.
DEFAULT_BASELINE = "raw-pipe"


def all_contenders() -> list[Contender]:
    """Raw kernel paths first, then the peers, then every ipckit transport."""
    return [*RAW_CONTENDERS, *PEER_CONTENDERS, *IPCKIT_CONTENDERS]
