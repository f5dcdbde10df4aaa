"""Order statistics for rounds and samples: median, quartiles, extremes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Summary", "percentile", "summarize"]


def percentile(ordered: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of already sorted values, linearly interpolated."""
    if not ordered:
        raise ValueError("percentile of no values")
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * pct / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


@dataclass(frozen=True)
class Summary:
    """The median of repeated rounds and how far they spread."""

    median: float
    min: float
    max: float
    q1: float
    q3: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """The summary as the JSON report stores it."""
        return {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "q1": self.q1,
            "q3": self.q3,
            "n": self.n,
        }


def summarize(values: Sequence[float]) -> Summary:
    """Median, quartiles and extremes of ``values`` (at least one)."""
    ordered = sorted(values)
    return Summary(
        median=percentile(ordered, 50),
        min=float(ordered[0]),
        max=float(ordered[-1]),
        q1=percentile(ordered, 25),
        q3=percentile(ordered, 75),
        n=len(ordered),
    )
