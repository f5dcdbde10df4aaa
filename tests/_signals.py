"""Signal storms for tests: a handled, harmless signal delivered again and again."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BOUND = 30


@contextmanager
def signal_storm(period: float = 0.003) -> Iterator[list[int]]:
    """SIGUSR1 (handled, not fatal) to the main thread every ``period`` s until the block ends.

    Yields a one-item list counting the signals handled.
    """
    hits = [0]

    def handler(_signum: int, _frame: object) -> None:
        hits[0] += 1

    previous = signal.signal(signal.SIGUSR1, handler)
    stop = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    def storm() -> None:
        while not stop.wait(period):
            signal.pthread_kill(main, signal.SIGUSR1)

    thread = threading.Thread(target=storm, daemon=True)
    thread.start()
    try:
        yield hits
    finally:
        stop.set()
        thread.join(BOUND)
        signal.signal(signal.SIGUSR1, previous)
