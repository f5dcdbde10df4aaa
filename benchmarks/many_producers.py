"""Many producers -> one consumer, for every contender that lets several processes send.

    python benchmarks/many_producers.py --producers 4

Each producer tags its messages; the consumer follows every producer's stream and
checks each message, so lost, duplicated or interleaved data still shows FAIL. Only
queues take part (raw-mq, multiprocessing.Queue, faster-fifo, pyzmq PUSH/PULL, and
ipckit's shm://, mq:// and fifo://): pipes and sockets have one writer per end.
With --placement cross the producers share one CPU and the consumer has the other.

``ipckit bench --only 'many-*'`` runs the fixed comparison of issue 9 instead (10 x 1,
20 x 3 and 20 x 20, several consumers, ipckit shm:// against faster-fifo); this script
takes any number of producers, one consumer, and every queue.
"""

from __future__ import annotations

import sys

from _common import main

from ipckit._bench.workloads import THROUGHPUT, Workload

WORKLOADS = (
    Workload("many-64B", "N producers -> 1 consumer, 64-byte messages", THROUGHPUT, (64,), 500),
    Workload("many-4KiB", "N producers -> 1 consumer, 4 KiB messages", THROUGHPUT, (4096,), 100),
)

if __name__ == "__main__":
    sys.exit(main(__doc__ or "", WORKLOADS, producers_default=4, many_producers_only=True))
