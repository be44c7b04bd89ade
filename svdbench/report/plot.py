"""pareto.png and pareto.svg: each task's rows and fronts, top-1 against the cost on the report's axis."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .. import pareto
from .colours import method_colors
from .render import plot_text
from .rows import Row, dense_references, method_order


def front_xy(
    rows: Sequence[Row], key: str = "top1", cost: Callable[[Row], float] = lambda r: r.mean("x")
) -> tuple[list[float], list[float]]:
    """(cost, test top-1) of the rows on the front computed on (mean ``key``, ``cost``), by cost, duplicates
    once; the cost is the rows' axis unless given (report.html's MAC and latency figures)."""
    return pareto.front_line([(r.mean(key), cost(r)) for r in rows], shown=[(r.mean("top1"), cost(r)) for r in rows])


def plot(rows: Sequence[Row], out: Path, key: str = "top1") -> list[Path]:
    """pareto.png and pareto.svg: test top-1 against the cost on the rows' axis (log x), one panel per
    task, one series per method (mean over seeds, bars: std of top-1), each method's front as a line,
    the overall front dashed, the dense reference as a star and a dotted horizontal line. The fronts
    are selected on mean ``key`` (val_top1: their lines join the members' test top-1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    tasks = sorted({r.task for r in rows})
    if not tasks:
        return []
    methods = sorted({r.method for r in rows}, key=method_order)
    colors = method_colors(methods)
    refs = dense_references(rows)
    fig, axes = plt.subplots(1, len(tasks), figsize=(8.4 * len(tasks), 4.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rs = [r for r in rows if r.task == task]
        scale = rs[0].axis.plot_scale  # MACs in M
        for m in methods:
            mr = [r for r in rs if r.method == m]
            if not mr:
                continue
            x = [r.mean("x") / scale for r in mr]
            y = [r.mean("top1") for r in mr]
            yerr = [r.stats["top1_std"] for r in mr]
            ax.errorbar(
                x, y, yerr=yerr if any(yerr) else None, fmt="o", ms=5, alpha=0.75, color=colors[m], label=plot_text(m)
            )
            fx, fy = front_xy(mr, key)
            if len(fx) > 1:
                ax.plot([v / scale for v in fx], fy, "-", color=colors[m], lw=1.5)
        ox, oy = front_xy(rs, key)
        if len(ox) > 1:
            on = " on validation" if key == "val_top1" else ""
            ax.plot([v / scale for v in ox], oy, "--", color="black", lw=1, alpha=0.6, label=f"front (all methods{on})")
        ref = refs.get(task)
        if ref is not None:
            ax.plot(
                [ref.mean("x") / scale],
                [ref.mean("top1")],
                "*",
                ms=16,
                color="gold",
                mec="black",
                zorder=5,
                label=f"dense reference ({ref.mean('top1'):.2f}%)",
            )
            ax.axhline(ref.mean("top1"), color="gray", ls=":", lw=1)
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")  # 4, 6, 9 (M): not 4x10^0
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.set_xlabel(rs[0].axis.plot_label)
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(plot_text(f"{task[0]} / {task[1]} (dense {task[2] / 1e6:.2f} M MACs)"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # beside the data
    fig.tight_layout()
    paths = [out / "pareto.png", out / "pareto.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths
