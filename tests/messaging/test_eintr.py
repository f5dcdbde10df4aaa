"""Signals during a blocked send on a fifo with a small pipe.

Every backend's blocked recv and send: tests/channel/test_signal_storms.py.
"""

from __future__ import annotations

import os
import tempfile
import time

import pytest

import ipckit
from ipckit.testing import unique_name
from tests._signals import signal_storm

BOUND = 30


def test_send_on_a_full_fifo_survives_signals() -> None:
    url = "fifo://" + os.path.join(tempfile.gettempdir(), unique_name("fifo"))
    with ipckit.open(url, create=True, pipe_size="64KiB") as q:
        while True:
            try:
                q.send_bytes(b"x", timeout=0)
            except ipckit.Full:
                break
        with signal_storm(0.01) as hits:
            start = time.monotonic()
            with pytest.raises(ipckit.Full):
                q.send_bytes(b"y", timeout=0.3)
            elapsed = time.monotonic() - start
        assert hits[0] > 0
        assert elapsed >= 0.29
        q.unlink()
