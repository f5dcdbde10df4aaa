"""Many producers and many consumers on one queue: the loops and the check that joins them.

Every producer sends a fixed list of messages, message ``n`` tagged (producer, n)
(:func:`ipckit._bench.workloads.make_numbered`). Each consumer receives a share of
every producer's stream and checks, message by message, that it is byte for byte
the one its tag names and that each producer's numbers only go up (a queue is
FIFO, so a consumer sees any producer's messages in order, with gaps where another
consumer took some). A consumer also marks every (producer, n) it took; the parent
adds the marks of all consumers and requires exactly one mark per message sent: a
message lost shows as 0, a duplicate (even one taken by two consumers) as 2.

How the consumers learn that the stream is over: only once every producer has
returned from its last send (and flushed it, for queues with a feeder thread) does
the parent tell the *closer*, one more process on the producers' side, to send an
end marker per consumer. A FIFO queue hands out an end marker only after every
message sent before it, so a consumer that receives one has nothing left to take.
A batch receive may take several markers at once and leave another consumer
without, so the parent asks the closer for more markers until every consumer has
stopped (surplus markers are harmless: the queue is removed afterwards). A
consumer's time is taken after its last data message, not after its marker, so
the parent's reaction time is not in the figure.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from multiprocessing.connection import Connection
from time import perf_counter_ns
from typing import Any

from ipckit._bench.contender import Endpoint
from ipckit._bench.workloads import END

__all__ = ["close_stream", "consume_numbered", "produce_numbered", "verify_numbered"]

_TAG = struct.Struct("<II")


def produce_numbered(ep: Endpoint, messages: Sequence[bytes]) -> dict[str, Any]:
    """Send every message once, in order (``send_many`` in batches when ``ep.batch`` > 1)."""
    nbytes = sum(map(len, messages))
    if ep.batch > 1:
        width = ep.batch
        batches = [list(messages[j : j + width]) for j in range(0, len(messages), width)]
        send_many = ep.send_many
        t0 = perf_counter_ns()
        for batch in batches:
            send_many(batch)
    else:
        send = ep.send
        t0 = perf_counter_ns()
        for msg in messages:
            send(msg)
    t1 = perf_counter_ns()
    ep.flush()  # "done" must mean "in the queue": the end markers follow it
    return {"sent": len(messages), "bytes": nbytes, "t0": t0, "t1": t1}


def consume_numbered(
    ep: Endpoint, messages: Sequence[Sequence[bytes]], consumers: int
) -> dict[str, Any]:
    """Receive until an end marker; check order and content; mark what was taken.

    ``messages[p]`` is producer ``p``'s list. With one consumer, each producer's
    numbers must follow one another exactly; with several, they must only go up.
    """
    if not 1 <= consumers < 256:
        raise ValueError(f"1 to 255 consumers, not {consumers} (see _check_marks)")
    alone = consumers == 1
    nxt = [0] * len(messages)
    marks = [] if alone else [bytearray(len(m)) for m in messages]
    received = 0
    nbytes = 0
    failure: str | None = None
    t_last: int | None = None
    unpack = _TAG.unpack_from
    many = ep.batch > 1
    recv, recv_many = ep.recv, ep.recv_many
    ended = False
    while not ended:
        items = recv_many() if many else (recv(),)
        took = 0
        for data in items:
            if data == END:
                ended = True
                continue
            took += 1
            nbytes += len(data)  # type: ignore[arg-type]
            if failure is not None:
                continue
            try:
                p, n = unpack(data)
                want = messages[p][n]
            except (struct.error, IndexError):
                failure = f"message #{received + took - 1}: not from any producer (corrupted tag)"
                continue
            out_of_order = (n != nxt[p]) if alone else (n < nxt[p])
            if out_of_order:
                after = f"expected {nxt[p]}" if alone else f"after {nxt[p] - 1}"
                failure = (
                    f"from producer {p}: got message {n}, {after} "
                    "(a message lost, duplicated or reordered)"
                )
            elif data != want:
                failure = f"from producer {p}: message {n} differs (corrupted payload)"
            nxt[p] = n + 1
            if not alone:
                marks[p][n] = 1
        if took:
            received += took
            t_last = perf_counter_ns()
    return {
        "received": received,
        "bytes": nbytes,
        "t_end": t_last,
        "failure": failure,
        # One consumer: how far each producer's stream got; several: the marks.
        "next": nxt,
        "marks": [bytes(m) for m in marks],
    }


def close_stream(ep: Endpoint, conn: Connection) -> dict[str, Any]:
    """The closer: send end markers when the parent asks, until it says stop."""
    pills = 0
    while True:
        order = conn.recv()
        if order == "stop":
            return {"pills": pills}
        _, count = order
        for _ in range(count):
            ep.send(END)
        pills += count


def verify_numbered(
    producers: Sequence[dict[str, Any]], consumers: Sequence[dict[str, Any]], count: int
) -> tuple[str | None, dict[str, float]]:
    """Join the consumers' reports: (why the round failed or None, its figures if it passed)."""
    for k, c in enumerate(consumers):
        if c["failure"]:
            return f"consumer {k}: {c['failure']}", {}
    for p, prod in enumerate(producers):
        if prod["sent"] != count:
            return f"producer {p} sent {prod['sent']} messages, not {count}", {}
    sent = sum(p["sent"] for p in producers)
    got = sum(c["received"] for c in consumers)
    if len(consumers) == 1:
        for p, reached in enumerate(consumers[0]["next"]):
            if reached != count:
                return f"from producer {p}: received {reached} of {count} messages", {}
    else:
        why = _check_marks(consumers, len(producers), count)
        if why is not None:
            return why, {}
    if got != sent:
        return f"sent {sent} messages, received {got}", {}
    sent_bytes = sum(p["bytes"] for p in producers)
    got_bytes = sum(c["bytes"] for c in consumers)
    if got_bytes != sent_bytes:
        return f"sent {sent_bytes} bytes, received {got_bytes}", {}
    ends = [c["t_end"] for c in consumers if c["t_end"] is not None]
    elapsed = max(1, max(ends, default=0) - min(p["t0"] for p in producers))
    return None, {
        "msgs_per_s": sent * 1e9 / elapsed,
        "mb_per_s": sent_bytes * 1e3 / elapsed,
        "gb_per_s": sent_bytes / elapsed,
        "messages": float(sent),
    }


def _check_marks(consumers: Sequence[dict[str, Any]], producers: int, count: int) -> str | None:
    """Exactly one mark per message over all consumers, else the first message that is off."""
    once = int.from_bytes(b"\x01" * count, "little")
    for p in range(producers):
        # A mark is 0 or 1 per consumer and there are fewer than 256 consumers, so adding
        # the marks as big integers adds them byte by byte without a carry.
        total = sum(int.from_bytes(c["marks"][p], "little") for c in consumers)
        if total == once:
            continue
        times = [sum(c["marks"][p][n] for c in consumers) for n in range(count)]
        n = next(i for i, t in enumerate(times) if t != 1)
        what = "lost" if times[n] == 0 else f"received {times[n]} times"
        return f"from producer {p}: message {n} {what} (over all consumers)"
    return None
