"""report.html: the report's fronts as interactive plotly figures and its tables with sortable columns,
in one self-contained page (plotly.js is inlined: it opens offline and fetches nothing).

Per task there is a figure on MACs (in millions, log scale) and, where the runs recorded it, one on
measured latency (the matched table's runtime and batch). A point is a configuration (mean over seeds,
bars: the standard deviation of test top-1); hovering it shows its method, settings, seeds, test and
validation top-1, MACs, latency and run directories. Each method has one colour in every figure; its
front is a line of that colour, the front over all methods is dashed, the dense reference a star with a
dotted line. A click on a legend entry hides the method (points and front). Fronts are selected on the
report's selection (validation top-1 by default) and drawn at test top-1, as in pareto.png.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from ..axes import Axis
from ..errors import printable
from . import render
from .colours import method_colors
from .matched import noisy_of
from .plot import front_xy
from .rows import Row, dense_references, method_order, task_name

#: sorts a table by the clicked column, numbers by value (the first number in the cell), text by text
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const up = th.dataset.order !== "asc";
  th.closest("tr").querySelectorAll("th").forEach(h => delete h.dataset.order);
  th.dataset.order = up ? "asc" : "desc";
  const key = td => {
    const t = td.textContent.trim();
    const n = parseFloat(t.replace(/^[^0-9+-.]*/, ""));
    return th.classList.contains("num") && !isNaN(n) ? n : t.toLowerCase();
  };
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a.cells[col]), y = key(b.cells[col]);
    return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
  });
  rows.forEach(r => body.appendChild(r));
}));
"""

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table.sortable { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
table.sortable th, table.sortable td { border: 1px solid #ccc; padding: 0.25em 0.5em; }
table.sortable th { background: #f3f3f3; cursor: pointer; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
td.num, th.num { text-align: right; }
"""


def latency_ms(latency: Axis) -> Callable[[Row], float | None]:
    """A row's mean deployed latency on ``latency`` (ms per batch), None unless every run has it."""

    def cost(r: Row) -> float | None:
        vals = [latency.value(run.rec) for run in r.runs]
        return statistics.fmean(vals) if vals and None not in vals else None

    return cost


def hover_text(r: Row, latency: Axis) -> str:
    """The text a point shows on hover (plotly's subset of HTML; every value escaped)."""
    e = html.escape
    lines = [f"<b>{e(r.method)}</b>" + (f": {e(r.settings)}" if r.settings else "")]
    lines.append(f"seeds: {e(', '.join(str(s) for s in r.seeds))}")
    top1 = f"test top-1 {r.mean('top1'):.2f} %"
    if len(r.runs) > 1:
        top1 += f" ± {r.stats['top1_std']:.2f}"
    if r.has("val_top1"):
        top1 += f", validation {r.mean('val_top1'):.2f} %"
    lines.append(top1)
    lines.append(f"MACs {r.mean('macs') / 1e6:.3g} M ({r.mean('speedup'):.2f}x fewer)")
    ms = latency_ms(latency)(r)
    where = f"{e(latency.runtime or '')}, batch {latency.batch}"
    flagged = any(noisy_of(run.rec, latency.runtime or "", latency.batch or 0) for run in r.runs)
    noise = ", noisy: timing rounds disagreed" if flagged else ""
    lines.append(f"latency {ms:.3g} ms ({where}{noise})" if ms is not None else f"latency: not measured ({where})")
    lines += [f"run: {e(str(run.path.parent))}" for run in r.runs]
    return printable("<br>".join(lines))  # a run directory's name that is not UTF-8 shown as \xe9


def task_figure(rows: Sequence[Row], cost: Callable[[Row], float | None], x_title: str, key: str,
                latency: Axis, colours: dict[str, str], against: str = "MACs"):  # fmt: skip
    """One task's figure on one cost axis (``against``: its name in the title; rows whose cost is None
    are left out): a trace per method (its points, its front in the same legend group), the overall
    front, the dense reference."""
    import plotly.graph_objects as go

    fig = go.Figure()
    placed = [r for r in rows if cost(r) is not None]
    for m in sorted({r.method for r in placed}, key=method_order):
        mr = [r for r in placed if r.method == m]
        fig.add_trace(
            go.Scatter(
                x=[cost(r) for r in mr],
                y=[r.mean("top1") for r in mr],
                error_y=dict(type="data", array=[r.stats["top1_std"] for r in mr], visible=len(mr[0].runs) > 1),
                mode="markers",
                marker=dict(size=9, color=colours[m]),
                name=html.escape(m),
                legendgroup=m,
                hovertext=[hover_text(r, latency) for r in mr],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
        fx, fy = front_xy(mr, key, cost)
        if len(fx) > 1:
            fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line=dict(color=colours[m], width=1.5), legendgroup=m,
                                     showlegend=False, hoverinfo="skip"))  # fmt: skip
    fx, fy = front_xy(placed, key, cost)
    if len(fx) > 1:
        on = " on validation" if key == "val_top1" else ""
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line=dict(color="black", width=1, dash="dash"),
                                 name=f"front (all methods{on})", hoverinfo="skip"))  # fmt: skip
    ref = dense_references(rows).get(rows[0].task) if rows else None
    if ref is not None and cost(ref) is not None:
        fig.add_trace(
            go.Scatter(
                x=[cost(ref)],
                y=[ref.mean("top1")],
                mode="markers",
                marker=dict(symbol="star", size=16, color="gold", line=dict(color="black", width=1)),
                name=f"dense reference ({ref.mean('top1'):.2f} %)",
                hovertext=[hover_text(ref, latency)],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
        fig.add_hline(y=ref.mean("top1"), line=dict(color="gray", dash="dot", width=1))
    task = rows[0].task
    fig.update_layout(
        title=html.escape(f"{task_name(task)} (dense {task[2] / 1e6:.2f} M MACs): test top-1 against {against}"),
        xaxis=dict(title=x_title, type="log"),
        yaxis=dict(title="test top-1 (%)"),
        legend=dict(x=1.02, y=1, xanchor="left", yanchor="top"),  # outside the data
        height=520,
        margin=dict(r=260),
        template="plotly_white",
    )
    return fig


def write_html(path: Path, rows: Sequence[Row], key: str, latency: Axis, tables: Sequence[tuple[str, str]],
               title: str = "svdbench report") -> Path:  # fmt: skip
    """report.html: per task the figure on MACs and, where any row has the latency, on ``latency``;
    then ``tables`` (``(heading, HTML table)``, see :func:`svdbench.report.render.html_table`)."""
    colours = method_colors(r.method for r in rows)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    first = True
    for task in sorted({r.task for r in rows}):
        rs = [r for r in rows if r.task == task]
        axes = [(lambda r: r.mean("macs") / 1e6, "MACs per image (M, log scale)", "MACs")]
        if any(latency_ms(latency)(r) is not None for r in rs):
            label = f"median latency per batch of {latency.batch}, {latency.runtime} (ms, log scale)"
            axes.append((latency_ms(latency), label, "latency"))
        for cost, x_title, against in axes:
            fig = task_figure(rs, cost, x_title, key, latency, colours, against)
            parts.append(fig.to_html(full_html=False, include_plotlyjs=first, config={"displaylogo": False}))
            first = False
    for heading, table in tables:
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{table}")
    head = f'<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n<style>{STYLE}</style>'
    body = "\n".join(parts) + f"\n<script>{SORT_SCRIPT}</script>"
    page = f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'
    render.write_text(path, page)
    return path
