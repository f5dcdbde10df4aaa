"""The judge of a fault storm: what was sent, what arrived, and what the kills explain.

Pure code over the logs the workers leave (see _storm.py), so it is tested on its own
(test_oracle.py) before it judges a backend.

- A producer logs ``(seq, t_returned, consumer)`` right after each send returns. A
  producer killed between the return and the log leaves a message that may arrive
  unconfirmed: allowed, never counted as lost.
- A consumer logs ``(producer, generation, seq, ok)`` for every message it took,
  after checking its checksum (``ok``).
- The supervisor logs every kill with the time the victim was seen dead.

Verdicts: a message is *duplicated* if it arrived twice, *corrupted* if its checksum
failed, a *phantom* if no send of it could have started (a sequence number past the
last send that returned, plus the one in flight), *out of order* if one consumer saw
a producer's sequence numbers go backwards. A message whose send returned and that
never arrived is *lost*, and *explained* when a consumer that could have held it was
killed after the send returned: for a queue any consumer, for a connection the one
it was sent to. Nothing else may be lost.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

__all__ = ["CONSUMED", "KILL", "SENT", "Figures", "Kill", "judge", "read_records"]

#: Producer log record: seq, monotonic ns when the send returned, consumer slot (-1: a queue).
SENT = struct.Struct("<QQq")
#: Consumer log record: producer slot, producer generation, seq, checksum ok.
CONSUMED = struct.Struct("<IIQI")
#: Supervisor log record: role (0 producer, 1 consumer), slot, generation, monotonic ns dead.
KILL = struct.Struct("<IIIQ")


@dataclass(frozen=True)
class Kill:
    """One SIGKILL of a worker, by role, slot and generation, with the time it was seen dead."""

    consumer: bool
    slot: int
    generation: int
    dead_ns: int


@dataclass
class Figures:
    """What one storm did, for the assertions and for docs/reliability.md."""

    sent: int = 0
    delivered: int = 0
    unconfirmed: int = 0
    lost_explained: int = 0
    lost_unexplained: int = 0
    duplicated: int = 0
    corrupted: int = 0
    phantoms: int = 0
    out_of_order: int = 0
    producer_kills: int = 0
    consumer_kills: int = 0
    #: Workers that ended on their own (an exception), not by a kill: always a failure.
    worker_failures: int = 0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The figures as plain data (for JSON)."""
        return asdict(self)


def read_records(data: bytes, record: struct.Struct) -> list[tuple[int, ...]]:
    """Whole records of a log; a record cut short by a kill mid-write is ignored."""
    whole = len(data) - len(data) % record.size
    return [record.unpack_from(data, off) for off in range(0, whole, record.size)]


def judge(
    sent: Mapping[tuple[int, int], Sequence[tuple[int, int, int]]],
    consumed: Iterable[Sequence[tuple[int, int, int, int]]],
    kills: Sequence[Kill],
    *,
    queue: bool,
) -> Figures:
    """Compare what producers saw returned with what consumers took.

    ``sent`` maps (producer slot, generation) to its ``(seq, t_ns, consumer)``
    records; ``consumed`` is one record list per consumer log, in its order.
    """
    fig = Figures()
    fig.producer_kills = sum(not k.consumer for k in kills)
    fig.consumer_kills = sum(k.consumer for k in kills)
    deaths: dict[int, list[int]] = defaultdict(list)  # consumer slot -> times dead
    for k in kills:
        if k.consumer:
            deaths[k.slot].append(k.dead_ns)
    last_death = max((t for ts in deaths.values() for t in ts), default=-1)

    seen: dict[tuple[int, int, int], int] = {}
    for log in consumed:
        latest: dict[tuple[int, int], int] = {}
        for pslot, pgen, seq, ok in log:
            key = (pslot, pgen, seq)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 2:
                fig.duplicated += 1
                _note(fig, f"duplicated: producer {pslot}.{pgen} message {seq}")
            if not ok:
                fig.corrupted += 1
                _note(fig, f"corrupted: producer {pslot}.{pgen} message {seq}")
            before = latest.get((pslot, pgen))
            if before is not None and seq <= before:
                fig.out_of_order += 1
                _note(fig, f"out of order: producer {pslot}.{pgen} message {seq} after {before}")
            latest[(pslot, pgen)] = seq
    fig.delivered = len(seen)

    returned: dict[tuple[int, int], int] = {}
    for producer, records in sent.items():
        fig.sent += len(records)
        returned[producer] = max((r[0] for r in records), default=-1)
        for seq, t_ns, consumer in records:
            if (*producer, seq) in seen:
                continue
            if queue:
                explained = last_death >= t_ns
            else:
                explained = any(t >= t_ns for t in deaths.get(consumer, ()))
            if explained:
                fig.lost_explained += 1
            else:
                fig.lost_unexplained += 1
                _note(fig, f"lost: producer {producer[0]}.{producer[1]} message {seq}")
    confirmed = {(*p, r[0]) for p, records in sent.items() for r in records}
    for key in seen:
        if key in confirmed:
            continue
        if key[2] > returned.get(key[:2], -1) + 1:
            fig.phantoms += 1
            _note(fig, f"phantom: producer {key[0]}.{key[1]} message {key[2]}")
        else:
            fig.unconfirmed += 1
    return fig


def _note(fig: Figures, what: str) -> None:
    if len(fig.examples) < 10:
        fig.examples.append(what)
