"""Many processes log into one collector over a POSIX message queue.

Run: python examples/mq_logging.py

Each worker process attaches a ``logging.Handler`` that sends every record as a
small dict over ``mq://``; the collector process is the one place that formats
and writes them (here: to stdout, and it checks that nothing was lost or
reordered per worker). A queue decouples them: a worker's ``logger.info`` costs
one message, and the collector may be slower for a while (the queue holds the
backlog, and senders wait when it is full). The parent shuts the queue down once
every worker is done; the collector's loop then ends after the last record.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
from typing import Any

import ipckit

WORKERS = 6
RECORDS = 300  # per worker


class ChannelHandler(logging.Handler):
    """A logging handler that sends each record, formatted, to a channel."""

    def __init__(self, channel: ipckit.Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record; a full queue makes the caller wait up to 10 s."""
        try:
            self.channel.send(
                {
                    "pid": record.process,
                    "name": record.name,
                    "level": record.levelname,
                    "msg": record.getMessage(),
                    "seq": getattr(record, "seq", -1),
                },
                timeout=10,
            )
        except ipckit.IPCError:
            self.handleError(record)


def worker(url: str, number: int) -> None:
    """Log RECORDS lines, as any program would, through the queue."""
    with ipckit.open(url) as channel:
        log = logging.getLogger(f"worker{number}")
        log.setLevel(logging.INFO)
        log.addHandler(ChannelHandler(channel))
        for seq in range(RECORDS):
            level = logging.WARNING if seq % 100 == 99 else logging.INFO
            log.log(level, "worker %d did step %d", number, seq, extra={"seq": seq})


def collector(url: str, result: Any) -> None:
    """Write every record; report per worker how many came and whether in order."""
    counts: dict[str, int] = {}
    in_order = True
    with ipckit.open(url) as channel:
        for rec in channel:  # until the parent's shutdown() and the queue is empty
            expected = counts.get(rec["name"], 0)
            in_order = in_order and rec["seq"] == expected
            counts[rec["name"]] = expected + 1
            if rec["level"] != "INFO":
                print(f"{rec['level']:7} {rec['name']} [{rec['pid']}] {rec['msg']}")
    result.put((counts, in_order))


def main() -> int:
    ctx = mp.get_context("spawn")
    url = f"mq://example-logs-{os.getpid()}"
    with ipckit.open(url, create=True) as queue:
        result = ctx.Queue()
        sink = ctx.Process(target=collector, args=(url, result))
        sink.start()
        workers = [ctx.Process(target=worker, args=(url, n)) for n in range(WORKERS)]
        try:
            for w in workers:
                w.start()
            for w in workers:
                w.join(30)
            queue.shutdown()  # every record is in: the collector drains the queue and stops
            counts, in_order = result.get(timeout=30)
            sink.join(30)
        finally:
            for p in (*workers, sink):
                if p.is_alive():
                    p.kill()
                    p.join()
            queue.unlink()
    total = sum(counts.values())
    print(f"collector: {total} records from {len(counts)} workers, in order: {in_order}")
    ok = in_order and counts == {f"worker{n}": RECORDS for n in range(WORKERS)}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
