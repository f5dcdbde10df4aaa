"""A work queue on a named pipe: several producer processes, one consumer.

Run: python examples/fifo_queue.py

``fifo://PATH`` is a queue: every handle may send and receive, and each message
goes to exactly one receiver, whole. The producers get the channel as a
``Process`` argument (a named channel travels as its URL and options and
re-attaches in the child). A message bigger than one pipe packet (4 KiB) is
carried out of band in a one-off shared-memory block; ``unlink()`` removes the
FIFO, its state file and any block nobody received.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile

import ipckit

PRODUCERS = 3
ITEMS = 50


def produce(queue: ipckit.Channel, producer: int) -> None:
    """Send ITEMS small jobs, one large one, then a "done" marker."""
    with queue:
        for i in range(ITEMS):
            queue.send({"producer": producer, "item": i}, timeout=30)
        queue.send({"producer": producer, "item": ITEMS, "blob": bytes(64 * 1024)}, timeout=30)
        queue.send({"producer": producer, "done": True}, timeout=30)


def main() -> int:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        queue = ipckit.open(f"fifo://{tmp}/jobs-{os.getpid()}", create=True)
        producers = [ctx.Process(target=produce, args=(queue, k)) for k in range(PRODUCERS)]
        try:
            for p in producers:
                p.start()
            # Messages from one producer arrive in its send order, so a "done"
            # marker means everything that producer sent has been received.
            seen = {k: [] for k in range(PRODUCERS)}
            done = 0
            while done < PRODUCERS:
                msg = queue.recv(timeout=30)
                if msg.get("done"):
                    done += 1
                else:
                    seen[msg["producer"]].append(msg["item"])
            for p in producers:
                p.join(timeout=30)
            print("received per producer:", {k: len(v) for k, v in seen.items()})
            print("stats:", queue.stats())
            in_order = all(v == list(range(ITEMS + 1)) for v in seen.values())
            ok = in_order and all(p.exitcode == 0 for p in producers)
        finally:
            queue.unlink()  # the creator removes the FIFO, even on error
            queue.close()
            for p in producers:
                if p.pid is not None and p.is_alive():  # started, and stuck after an error
                    p.kill()
                    p.join()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
