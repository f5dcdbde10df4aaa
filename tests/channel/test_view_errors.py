"""An exception inside ``with ch.recv_view() as v:`` is the exception the caller sees."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import ipckit
from ipckit.testing import unique_name


def test_an_error_in_the_block_is_not_hidden_by_the_view(pure: bool) -> None:
    url = f"shm://{unique_name('view')}"
    a = ipckit.open(url, create=True)
    b = ipckit.open(url)
    try:
        a.send_bytes(b"x" * 100)
        a.send_bytes(b"next")
        # The KeyError, not a BufferError about the array still alive in the block.
        with pytest.raises(KeyError) as info, b.recv_view(timeout=5) as view:
            arr = np.frombuffer(view.data, dtype=np.uint8)
            assert arr.size == 100
            raise KeyError("the user's own error")
        assert any("MessageView" in note for note in info.value.__notes__)
        del info, arr, view  # the view and its array go: the message is given back
        gc.collect()
        assert b.recv_bytes(timeout=5) == b"next"
    finally:
        a.close()
        b.close()
        a.unlink()
