"""Progress on stderr: a live bar on a terminal, plain log lines anywhere else.

On a terminal one line is redrawn in place. When stderr is a file or a pipe (CI
logs, ``2>log``, ``| tee``) a redrawn bar would be noise, but silence for a
minute looks like a hang, so the run writes plain lines instead: one when it
starts, one per finished cell with its figure, and a heartbeat at most every
``heartbeat`` seconds while the rounds before the last one run (cells finish
only in the last round, because rounds are interleaved).
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

__all__ = ["HEARTBEAT", "Progress"]

#: Seconds between plain "still running" lines when stderr is not a terminal.
HEARTBEAT = 10.0


class Progress:
    """Shows how far a bench run is, as a bar on a terminal or as lines elsewhere.

    ``enabled=False`` turns every call into a no-op (``--no-progress``).
    """

    def __init__(
        self, stream: TextIO | None = None, enabled: bool = True, heartbeat: float = HEARTBEAT
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self.enabled = enabled
        self.live = enabled and bool(isatty and isatty())
        self._heartbeat = heartbeat
        self._start = time.monotonic()
        self._last_line = self._start
        self._started = False
        self._drawn = False

    def _elapsed(self) -> float:
        return time.monotonic() - self._start

    def _eta(self, done: int, total: int) -> str:
        if 0 < done < total:
            return f", eta {self._elapsed() / done * (total - done):.0f} s"
        return ""

    def _line(self, text: str) -> None:
        self._stream.write(f"ipckit bench: {text}\n")
        self._stream.flush()
        self._last_line = time.monotonic()

    def __call__(self, done: int, total: int, label: str) -> None:
        """Show that ``done`` of ``total`` rounds are finished; ``label`` says what runs next."""
        if not self.enabled:
            return
        if not self.live:
            if not self._started:
                self._started = True
                self._line(f"{total} rounds to run; one line per finished cell")
            elif done < total and time.monotonic() - self._last_line >= self._heartbeat:
                self._line(
                    f"{done}/{total} rounds, {self._elapsed():.0f} s{self._eta(done, total)}; "
                    f"next: {label}"
                )
            return
        cols = shutil.get_terminal_size((80, 24)).columns
        frac = done / total if total else 1.0
        bar_w = 24
        filled = int(bar_w * frac)
        eta = f" eta {self._elapsed() / done * (total - done):.0f}s" if 0 < done < total else ""
        line = f"[{'#' * filled}{'.' * (bar_w - filled)}] {done}/{total}{eta}  {label}"
        line = line[: max(10, cols - 1)]
        self._stream.write("\r" + line.ljust(max(10, cols - 1)))
        self._stream.flush()
        self._drawn = True

    def cell_done(self, done: int, total: int, text: str) -> None:
        """Report that a cell has its result (``done`` of ``total`` cells); a line off a terminal.

        On a terminal the bar already moves, so nothing is written there.
        """
        if not self.enabled or self.live:
            return
        self._started = True
        self._line(f"[{done}/{total} cells, {self._elapsed():.0f} s] {text}")

    def close(self) -> None:
        """Erase the bar so the table starts on a clean line."""
        if self.live and self._drawn:
            cols = shutil.get_terminal_size((80, 24)).columns
            self._stream.write("\r" + " " * max(10, cols - 1) + "\r")
            self._stream.flush()
            self._drawn = False
