"""A POSIX message queue shared by several producers and several consumers.

Run: python examples/mq_queue.py

``mq://NAME`` is a queue: each message goes to exactly one of the consumers.
When every producer has finished, the parent calls ``shutdown()``: consumers
drain what is left, then their ``for`` loops end. A message larger than one
queue message (8 KiB by default) is carried out of band in a one-off
shared-memory block. ``unlink()`` removes the queue, its state file and any
block nobody received, so nothing is left in /dev/mqueue or /dev/shm.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys

import ipckit

PRODUCERS = 3
CONSUMERS = 2
ITEMS = 40


def produce(queue: ipckit.Channel, producer: int) -> None:
    """Send ITEMS jobs; every tenth one is 20 KiB, more than one queue message holds."""
    with queue:
        for i in range(ITEMS):
            blob = bytes(20_000) if i % 10 == 0 else b""
            queue.send({"producer": producer, "item": i, "blob": blob}, timeout=30)


def consume(queue: ipckit.Channel, report: ipckit.Channel) -> None:
    """Take jobs until the queue is shut down; report how many bytes and jobs were taken."""
    with queue, report:
        jobs = 0
        blob_bytes = 0
        for job in queue:  # ends with ChannelClosed once shut down and drained
            jobs += 1
            blob_bytes += len(job["blob"])
        report.send({"jobs": jobs, "blob_bytes": blob_bytes})


def main() -> int:
    ctx = mp.get_context("spawn")
    queue = ipckit.open(f"mq://ipckit-example-{os.getpid()}", create=True)
    procs: list[mp.process.BaseProcess] = []
    reports: list[ipckit.Channel] = []
    try:
        for _ in range(CONSUMERS):
            mine, theirs = ipckit.pipe(duplex=False)  # one-way: the consumer reports back
            reports.append(mine)
            procs.append(ctx.Process(target=consume, args=(queue, theirs)))
            procs[-1].start()
            theirs.close()
        producers = [ctx.Process(target=produce, args=(queue, k)) for k in range(PRODUCERS)]
        procs.extend(producers)
        for p in producers:
            p.start()
        for p in producers:
            p.join(timeout=60)
        queue.shutdown()  # every consumer drains the queue, then stops
        totals = [r.recv(timeout=30) for r in reports]
        print("per consumer:", totals)
        jobs = sum(t["jobs"] for t in totals)
        print(f"{jobs} jobs received of {PRODUCERS * ITEMS}")
        ok = jobs == PRODUCERS * ITEMS
    finally:
        queue.unlink()  # the creator removes the queue, even on error
        queue.close()
        for r in reports:
            r.close()
        for p in procs:
            if p.pid is not None:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
                    p.join()
    return 0 if ok and all(p.exitcode == 0 for p in procs) else 1


if __name__ == "__main__":
    sys.exit(main())
