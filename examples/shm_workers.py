"""A worker pool on a shared-memory queue: jobs out, results back, numpy included.

Run: python examples/shm_workers.py

Two ``shm://`` queues: the parent puts jobs on one, several worker processes
take them (each job goes to exactly one worker) and put results on the other.
Workers receive in batches with ``recv_many`` and stop when the parent calls
``shutdown()``, which ends the stream for every handle once the queue is
drained. The creator removes both queues with ``unlink()``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys

import numpy as np

import ipckit

WORKERS = 3
JOBS = 200


def work(jobs: ipckit.Channel, results: ipckit.Channel) -> None:
    """Square each job's vector until the job queue is shut down."""
    with jobs, results:
        while True:
            try:
                batch = jobs.recv_many(max_items=16, timeout=30)
            except ipckit.ChannelClosed:
                return
            results.send_many(
                [{"id": job["id"], "sum": float((job["v"] ** 2).sum())} for job in batch],
                timeout=30,
            )


def main() -> int:
    ctx = mp.get_context("spawn")
    tag = os.getpid()
    jobs = ipckit.open(f"shm://example-jobs-{tag}", create=True, capacity="1MiB")
    results = ipckit.open(f"shm://example-results-{tag}", create=True)
    workers = [ctx.Process(target=work, args=(jobs, results)) for _ in range(WORKERS)]
    try:
        for w in workers:
            w.start()
        jobs.send_many(
            [{"id": i, "v": np.arange(i, i + 100, dtype=np.float64)} for i in range(JOBS)],
            timeout=30,
        )
        sums: dict[int, float] = {}
        while len(sums) < JOBS:
            for r in results.recv_many(max_items=64, timeout=30):
                sums[r["id"]] = r["sum"]
        jobs.shutdown()
        for w in workers:
            w.join(30)
        expected = {
            i: float((np.arange(i, i + 100, dtype=np.float64) ** 2).sum()) for i in range(JOBS)
        }
        assert sums == expected, "every job answered exactly once"
        done = results.stats().extra["messages_in"]
        print(f"{JOBS} jobs done by {WORKERS} workers; {done} results went through shm://")
        return 0
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
                w.join()
        for q in (jobs, results):
            q.close()
            q.unlink()


if __name__ == "__main__":
    sys.exit(main())
