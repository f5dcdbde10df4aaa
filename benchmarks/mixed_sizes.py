"""One producer, one consumer, message sizes cycling from 64 bytes to 256 KiB.

    python benchmarks/mixed_sizes.py

Real traffic is rarely one size: small control messages between large payloads.
Every message is still checked byte for byte. Sizes above a transport's native
unit (an mq message, an shm ring slot) exercise ipckit's out-of-band path.
"""

from __future__ import annotations

import sys

from _common import main

from ipckit._bench.workloads import PINGPONG, THROUGHPUT, Workload

SIZES = (64, 64, 512, 64, 4096, 64, 65536, 64, 262144)
WORKLOADS = (
    Workload("mixed", "mixed sizes 64 B - 256 KiB (mostly small)", THROUGHPUT, SIZES, 90),
    Workload("mixed-small", "mixed sizes 64 B - 4 KiB", THROUGHPUT, (64, 512, 64, 4096), 200),
    Workload("mixed-pingpong", "ping-pong, 64 B - 4 KiB", PINGPONG, (64, 512, 64, 4096), 40),
)

if __name__ == "__main__":
    sys.exit(main(__doc__ or "", WORKLOADS))
