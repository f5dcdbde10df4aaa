"""A one-line progress bar on stderr: plain text, no dependencies, off when not a terminal."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Redraws ``[####....] done/total  label`` in place with a carriage return.

    Disabled (every call a no-op) when ``enabled`` is false or the stream is not a
    TTY, so redirected output and CI logs stay clean.
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self.enabled = enabled and bool(isatty and isatty())
        self._start = time.monotonic()
        self._drawn = False

    def __call__(self, done: int, total: int, label: str) -> None:
        """Show that ``done`` of ``total`` rounds are finished; ``label`` says what runs next."""
        if not self.enabled:
            return
        cols = shutil.get_terminal_size((80, 24)).columns
        frac = done / total if total else 1.0
        bar_w = 24
        filled = int(bar_w * frac)
        elapsed = time.monotonic() - self._start
        eta = f" eta {elapsed / done * (total - done):.0f}s" if 0 < done < total else ""
        line = f"[{'#' * filled}{'.' * (bar_w - filled)}] {done}/{total}{eta}  {label}"
        line = line[: max(10, cols - 1)]
        self._stream.write("\r" + line.ljust(max(10, cols - 1)))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the bar so the table starts on a clean line."""
        if self.enabled and self._drawn:
            cols = shutil.get_terminal_size((80, 24)).columns
            self._stream.write("\r" + " " * max(10, cols - 1) + "\r")
            self._stream.flush()
            self._drawn = False
