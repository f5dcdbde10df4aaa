"""``--plot FILE.png``: throughput, bandwidth and latency per contender (matplotlib).

matplotlib is optional (``pip install ".[plot]"`` in a clone); without it :func:`plot`
raises :class:`PlotUnavailable` with that advice, and the CLI checks before
measuring anything.
"""

from __future__ import annotations

from ipckit._bench.results import BenchResult
from ipckit._bench.workloads import Workload

__all__ = ["PlotUnavailable", "plot", "require_matplotlib"]

_PANELS = (
    ("msgs_per_s", "throughput (messages/s, log scale)", True),
    ("gb_per_s", "bandwidth (GB/s)", False),
    ("p50_us", "ping-pong round trip (us, log scale; p50 bar, p99 tick)", True),
)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise :class:`PlotUnavailable` unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install matplotlib "
            "(or pip install '.[plot]' in a clone of ipckit)"
        ) from None


def _short(value: float) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def plot(result: BenchResult, workloads: list[Workload], path: str) -> None:
    """Draw one panel per kind of figure and save it as a PNG at ``path``."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    names = [c["name"] for c in result.contenders]
    panels = [(m, t, log) for m, t, log in _PANELS if any(w.primary == m for w in workloads)]
    if not panels:
        raise ValueError("nothing to plot: no workload selected")
    height = max(3.0, 0.28 * len(names) + 1.2)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), height), squeeze=False)
    for ax, (metric, title, log) in zip(axes[0], panels, strict=True):
        group = [w for w in workloads if w.primary == metric]
        bar_h = 0.8 / len(group)
        for gi, w in enumerate(group):
            ys: list[float] = []
            xs: list[float] = []
            errs: list[list[float]] = [[], []]
            ticks: list[float] = []
            for ni, name in enumerate(names):
                cell = result.cells.get((name, w.name))
                summary = None if cell is None else cell.summary(metric)
                if cell is None or summary is None:
                    continue
                ys.append(ni + gi * bar_h - 0.4 + bar_h / 2)
                xs.append(summary.median)
                errs[0].append(summary.median - summary.min)
                errs[1].append(summary.max - summary.median)
                if metric == "p50_us":
                    p99 = cell.summary("p99_us")
                    ticks.append(p99.median if p99 is not None else summary.median)
            ax.barh(ys, xs, height=bar_h, xerr=errs, label=w.name, capsize=2)
            if ticks:
                ax.scatter(ticks, ys, marker="|", s=120, color="black", label="p99")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        if log:
            ax.set_xscale("log")
            # Plain labels (20k, 50k, 1M) at 1-2-5 steps; the default minor labels collide.
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    s = result.settings
    fig.suptitle(
        f"ipckit bench: {result.machine['cpu_model']}, {result.machine['nproc']} CPUs; "
        f"placement {s['placement']['mode']}; median of {s['rounds']} rounds, bars min-max",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
