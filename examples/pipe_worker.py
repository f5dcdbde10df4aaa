"""A parent hands work to a spawned child over ``ipckit.pipe()`` and reads the results.

Run: python examples/pipe_worker.py

The child end is passed to the child as a ``Process`` argument; the parent then
closes its own copy of that end, so that if the child dies the parent's ``recv``
raises ``ChannelClosed`` instead of waiting forever. ``shutdown()`` tells the
child that no more work is coming.
"""

from __future__ import annotations

import multiprocessing as mp
import sys

import ipckit


def worker(ch: ipckit.Channel) -> None:
    """Square every number received until the parent shuts the stream down."""
    with ch:
        for job in ch:  # ends with ChannelClosed, after every job was received
            ch.send({"id": job["id"], "result": job["value"] ** 2})


def main() -> int:
    ctx = mp.get_context("spawn")  # "fork" works the same way
    parent_end, child_end = ipckit.pipe()
    with parent_end:
        child = ctx.Process(target=worker, args=(child_end,))
        child.start()
        child_end.close()  # the child has its own copy now

        parent_end.send_many({"id": i, "value": i} for i in range(10))
        results = [parent_end.recv(timeout=30) for _ in range(10)]
        parent_end.shutdown()  # end of stream: the child's loop finishes
        child.join(timeout=30)

    squares = sorted(r["result"] for r in results)
    print("squares:", squares)
    if squares != [i * i for i in range(10)] or child.exitcode != 0:
        print(f"unexpected result (child exit code {child.exitcode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
