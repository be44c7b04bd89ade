"""The report's tables as column lists (:mod:`.columns`), and the files written from them.

- :data:`COMPARISON` (+ :data:`LATENCY` on the latency axis): one row per configuration, in
  ``comparison[_<method>].{md,csv,tex}``, report.md, summary.json's rows and W&B's ``comparison``.
  ``top1``, ``val top1``, MACs and latency are the mean ± sample std over seeds; Δ dense is against
  the task's dense reference; front is ``overall``, ``method`` or empty.
- :data:`FRONT`: the Pareto-front members, in report.md and pareto.csv; W&B's ``pareto`` table is
  :data:`SCOPE` and the comparison's columns (:func:`logged_front_columns`).
- :data:`FAILED`: the failed runs, in report.md, failed.csv and W&B.
- :data:`QUALITY`: each method's front hypervolume per task (mean ± std over seeds), in report.md,
  hypervolume.{csv,tex} and W&B; :data:`VERDICTS`: the pairwise verdicts, in verdicts.csv.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from . import render
from .columns import MD, TEX, Column, data, fields, plain
from .load import Failed
from .quality import Quality, Verdict
from .rows import Member, Row


def pm(mean: float, std: float, n: int, digits: int) -> str:
    """``mean ± std``, the std only over more than one seed."""
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def _mean_pm(key: str, digits: int, scale: float = 1) -> Callable[[Row], str]:
    return lambda r: pm(r.mean(key) / scale, r.stats[f"{key}_std"] / scale, len(r.runs), digits)


def _fmt(stat: str, spec: str) -> Callable[[Row], str]:
    """A row's statistic formatted, ``""`` when the row has none."""
    return lambda r: format(r.stats[stat], spec) if stat in r.stats else ""


def _stat(stat: str) -> Callable[[Row], float | None]:
    return lambda r: r.stats.get(stat)


def _val(r: Row) -> str:
    return pm(r.mean("val_top1"), r.stats["val_top1_std"], len(r.runs), 2) if r.has("val_top1") else "-"


def _n(r: Row) -> int:
    return len(r.runs)


def _error(f: Failed) -> str:
    return f.error


def _path(f: Failed) -> str:
    return str(f.path)


def _per_seed(q: Quality) -> str:
    return " ".join(f"{s}:{q.per_seed[s]:.6f}" for s in q.seeds)


# ---------------------------------------------------------------- one row per configuration (Row)

METHOD = plain("method", lambda r: r.method)
MODEL = plain("model", lambda r: r.model)
DATASET = plain("dataset", lambda r: r.dataset)
SETTINGS = Column(  # the method's headline settings, then those that vary between its configurations
    "settings",
    lambda r: r.settings or "-",
    csv=fields(settings=lambda r: r.settings),
    typed=fields(settings=lambda r: r.settings),
)
TOP1 = Column(  # test top-1 (%) of the deployed model, final epoch
    "top1 (%)",
    _mean_pm("top1", 2),
    align="r",
    latex="top-1 (\\%)",
    csv=fields(top1_mean=_fmt("top1_mean", ".4f"), top1_std=_fmt("top1_std", ".4f")),
    typed=fields(top1=_stat("top1_mean"), top1_std=_stat("top1_std")),
)
VAL = Column(  # validation top-1 (%), "-" unless every seed has one
    "val top1 (%)",
    _val,
    align="r",
    latex="val top-1 (\\%)",
    csv=fields(val_top1_mean=_fmt("val_top1_mean", ".4f"), val_top1_std=_fmt("val_top1_std", ".4f")),
    typed=fields(val_top1=_stat("val_top1_mean"), val_top1_std=_stat("val_top1_std")),
)
DELTA = Column(  # mean top-1 minus the task's dense reference's
    "Δ dense",
    lambda r: "-" if r.delta is None else f"{r.delta:+.2f}",
    align="r",
    latex="$\\Delta$ dense",
    csv=fields(delta_top1=lambda r: "" if r.delta is None else f"{r.delta:.4f}"),
    typed=fields(delta_top1=lambda r: r.delta),
)
MACS = Column(  # per sample, deployed model
    "MACs (M)",
    _mean_pm("macs", 2, 1e6),
    align="r",
    csv=fields(macs_mean=_fmt("macs_mean", ".0f"), macs_std=_fmt("macs_std", ".1f")),
    typed=fields(macs=_stat("macs_mean")),
)
SPEEDUP = Column(  # dense MACs / MACs
    "speed-up",
    lambda r: f"{r.mean('speedup'):.2f}x",
    align="r",
    csv=fields(speedup=_fmt("speedup_mean", ".4f")),
    typed=fields(speedup=_stat("speedup_mean")),
)
PARAMS = Column(
    "params (k)",
    lambda r: f"{r.mean('params') / 1e3:.1f}",
    align="r",
    csv=fields(params_mean=_fmt("params_mean", ".0f")),
    typed=fields(params=_stat("params_mean")),
)
COMPRESSION = Column(  # dense params / params
    "compression",
    lambda r: f"{r.mean('compression'):.2f}x",
    align="r",
    csv=fields(compression=_fmt("compression_mean", ".4f")),
    typed=fields(compression=_stat("compression_mean")),
)
SEEDS = Column(  # how many seeds (CSV: and which)
    "seeds",
    lambda r: str(_n(r)),
    align="r",
    csv=fields(n_seeds=_n, seeds=lambda r: " ".join(map(str, r.seeds))),
    typed=fields(n_seeds=_n),
)
FRONT_MARK = Column(  # overall, method or empty (Row.front_mark)
    "front",
    lambda r: r.front_mark,
    csv=fields(on_method_front=lambda r: int(r.on_method_front), on_overall_front=lambda r: int(r.on_overall_front)),
    typed=fields(front=lambda r: r.front_mark),
)
LATENCY_MS = Column(  # median latency per batch on the report's runtime (ms)
    "latency (ms)",
    _mean_pm("x", 3),
    align="r",
    csv=fields(latency_ms_mean=_fmt("x_mean", ".6f"), latency_ms_std=_fmt("x_std", ".6f")),
    typed=fields(latency_ms=_stat("x_mean")),
)
REALIZED = Column(  # the dense model's median latency / the deployed model's, measured in the same run
    "realized speed-up",
    lambda r: f"{r.mean('xspeed'):.2f}x",
    align="r",
    csv=fields(realized_speedup=_fmt("xspeed_mean", ".4f")),
    typed=fields(realized_speedup=_stat("xspeed_mean")),
)

#: the comparison table; CSV ends with the dense MACs of the task and the run directories
COMPARISON: tuple[Column[Row], ...] = (
    *(METHOD, MODEL, DATASET, SETTINGS, TOP1, VAL, DELTA, MACS, SPEEDUP, PARAMS, COMPRESSION, SEEDS, FRONT_MARK),
    *data(macs_dense=lambda r: r.task[2], paths=lambda r: ";".join(str(x.path.parent) for x in r.runs)),
)
#: appended to the comparison on the latency axis
LATENCY: tuple[Column[Row], ...] = (LATENCY_MS, REALIZED)
#: appended to the comparison on the authors' MAC convention (``--x macs_paper``)
PAPER: tuple[Column[Row], ...] = (
    Column(
        "authors' MACs (M)",
        lambda r: f"{r.mean('x') / 1e6:.2f}",
        align="r",
        csv=fields(macs_paper_mean=_fmt("x_mean", ".0f")),
        typed=fields(macs_paper=_stat("x_mean")),
    ),
    Column(
        "authors' speed-up",
        lambda r: f"{r.mean('xspeed'):.2f}x",
        align="r",
        csv=fields(speedup_paper=_fmt("xspeed_mean", ".4f")),
        typed=fields(speedup_paper=_stat("xspeed_mean")),
    ),
)


def _on_latency(rows: Sequence[Row]) -> bool:
    return bool(rows) and rows[0].axis.is_latency


def _axis_columns(rows: Sequence[Row]) -> tuple[Column[Row], ...]:
    """The columns of the rows' cost axis beside the MAC ones: latency, the authors' MACs, or none."""
    if _on_latency(rows):
        return LATENCY
    return PAPER if rows and rows[0].axis.is_paper else ()


def comparison_columns(rows: Sequence[Row]) -> tuple[Column[Row], ...]:
    """:data:`COMPARISON`, and :data:`LATENCY` (:data:`PAPER`) when the rows are on the latency (authors' MAC)
    axis."""
    return COMPARISON + _axis_columns(rows)


# ---------------------------------------------------------------- front members (Member)


def _on_row(c: Column[Row]) -> Column[Member]:
    return c.of(lambda m: m.row)


#: overall, or the method whose front the row is on
SCOPE: Column[Member] = plain("scope", lambda m: m.scope)
#: the front table (report.md, pareto.csv) after the scope: the row's mean top-1, validation top-1 and MACs;
#: pareto.csv has the number of seeds and the mean validation top-1 last
FRONT_ROW: tuple[Column[Row], ...] = (
    *(MODEL, DATASET, METHOD, SETTINGS),
    Column("top1 (%)", lambda r: f"{r.mean('top1'):.2f}", align="r", csv=(TOP1.csv_field("top1_mean"),)),
    VAL.only(MD),
    Column("MACs (M)", lambda r: f"{r.mean('macs') / 1e6:.2f}", align="r", csv=(MACS.csv_field("macs_mean"),)),
    Column("n_seeds", csv=(SEEDS.csv_field("n_seeds"),)),
    Column("val_top1_mean", csv=(VAL.csv_field("val_top1_mean"),)),
)
FRONT: tuple[Column[Member], ...] = (SCOPE, *map(_on_row, FRONT_ROW))


def front_columns(rows: Sequence[Row]) -> tuple[Column[Member], ...]:
    """:data:`FRONT`, and the axis's columns (Markdown only) when the rows are on the latency or the authors'
    MAC axis."""
    return FRONT + tuple(_on_row(c.only(MD)) for c in _axis_columns(rows))


def logged_front_columns(rows: Sequence[Row]) -> tuple[Column[Member], ...]:
    """W&B's ``pareto`` table: the scope, then the comparison's columns."""
    return (SCOPE, *map(_on_row, comparison_columns(rows)))


# ---------------------------------------------------------------- failed runs (Failed)

FAILED: tuple[Column[Failed], ...] = (
    plain("method", lambda f: f.method),
    plain("model", lambda f: f.model),
    plain("dataset", lambda f: f.dataset),
    Column("seed", lambda f: str(f.seed), csv=fields(seed=lambda f: f.seed), typed=fields(seed=lambda f: str(f.seed))),
    Column("error", lambda f: f.error.replace("|", "/"), csv=fields(error=_error), typed=fields(error=_error)),
    Column("path", lambda f: f"`{f.path}`", csv=fields(path=_path), typed=fields(path=_path)),
)


# ---------------------------------------------------------------- front quality (Quality, Verdict)


def hv_text(q: Quality) -> str:
    """The hypervolume as shown: mean ± std over seeds."""
    return pm(q.mean, q.std, q.n, 3)


#: hypervolume per task and method; y_ref is shown with how it was set in Markdown, as a number in LaTeX
QUALITY: tuple[Column[Quality], ...] = (
    plain("model", lambda q: q.task[0]),
    plain("dataset", lambda q: q.task[1]),
    *data(macs_dense=lambda q: q.task[2]),
    plain("method", lambda q: q.method),
    Column(
        "seeds",
        lambda q: str(q.n),
        align="r",
        csv=fields(n_seeds=lambda q: q.n, seeds=lambda q: " ".join(map(str, q.seeds))),
        typed=fields(n_seeds=lambda q: q.n),
    ),
    Column(
        "hypervolume",
        hv_text,
        align="r",
        csv=fields(hv_mean=lambda q: f"{q.mean:.6f}", hv_std=lambda q: f"{q.std:.6f}", hv_per_seed=_per_seed),
        typed=fields(hv_mean=lambda q: q.mean, hv_std=lambda q: q.std),
    ),
    Column(
        "y_ref (top-1 %)",
        lambda q: f"{q.y_ref:.2f} ({q.reference})",
        shown_in=(MD,),
        csv=fields(y_ref=lambda q: f"{q.y_ref:.4f}", reference=lambda q: q.reference),
        typed=fields(y_ref=lambda q: q.y_ref),
    ),
    Column("y_ref", lambda q: f"{q.y_ref:.2f}", align="r", latex="$y_\\mathrm{ref}$ (\\%)", shown_in=(TEX,)),
    Column("selection", csv=fields(selection=lambda q: q.metric), typed=fields(selection=lambda q: q.metric)),
)
#: the verdict between two methods' fronts (a and b), their hypervolumes, gap and spread, in verdicts.csv
VERDICTS: tuple[Column[Verdict], ...] = data(
    model=lambda v: v.a.task[0],
    dataset=lambda v: v.a.task[1],
    macs_dense=lambda v: v.a.task[2],
    method_a=lambda v: v.a.method,
    method_b=lambda v: v.b.method,
    hv_a_mean=lambda v: f"{v.a.mean:.6f}",
    hv_a_std=lambda v: f"{v.a.std:.6f}",
    n_seeds_a=lambda v: v.a.n,
    hv_b_mean=lambda v: f"{v.b.mean:.6f}",
    hv_b_std=lambda v: f"{v.b.std:.6f}",
    n_seeds_b=lambda v: v.b.n,
    gap=lambda v: f"{v.gap:.6f}",
    spread=lambda v: f"{v.spread:.6f}",
    verdict=lambda v: v.text,
    note=lambda v: v.note,
)


# ---------------------------------------------------------------- files


#: the longest stem of a file name (bytes: ASCII only), far below the file systems' 255
STEM_MAX = 80


def safe_name(s: str) -> str:
    """``s`` with every character but ASCII letters, digits and ``-_.`` as ``_``."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in s)


def file_stems(methods: Sequence[str]) -> dict[str, str]:
    """Method name -> a file-name stem of its own: :func:`safe_name`, cut to :data:`STEM_MAX` (then with
    a digest of the name), and with a digest of the name wherever two names map to one stem (``svd (a)``
    and ``svd_(a)``), again until no two stems are alike (a name crafted as another's stem and digest):
    no table overwrites another."""

    def digest(m: str) -> str:
        return hashlib.sha1(m.encode()).hexdigest()[:8]

    stems = {}
    for m in methods:
        s = safe_name(m)
        stems[m] = s if len(s) <= STEM_MAX else f"{s[:STEM_MAX]}-{digest(m)}"
    for _ in range(len(stems)):
        counts = Counter(stems.values())
        clash = [m for m, s in stems.items() if counts[s] > 1]
        if not clash:
            break
        for m in clash:
            stems[m] = f"{stems[m][:STEM_MAX]}-{digest(m)}"
    return stems


def comparison_markdown(rows: Sequence[Row]) -> str:
    return render.markdown(comparison_columns(rows), rows)


def write_comparison(out: Path, stem: str, rows: Sequence[Row], caption: str) -> list[Path]:
    """``<stem>.md``, ``<stem>.csv`` and ``<stem>.tex``: the comparison table of ``rows``."""
    cols = comparison_columns(rows)
    paths = [out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.tex"]
    render.write_text(paths[0], render.markdown(cols, rows))
    render.write_csv(paths[1], cols, rows)
    render.write_text(paths[2], render.latex(cols, rows, caption))
    return paths


def write_quality(out: Path, quality: Sequence[Quality], verdicts: Sequence[Verdict], metric: str) -> list[Path]:
    """hypervolume.csv, hypervolume.tex and verdicts.csv."""
    caption = (
        f"Front quality: hypervolume in (log2 MAC speed-up, {metric} top-1) above (0, y_ref); "
        "mean and standard deviation over seeds"
    )
    paths = [render.write_csv(out / "hypervolume.csv", QUALITY, quality), out / "hypervolume.tex"]
    render.write_text(paths[1], render.latex(QUALITY, quality, caption))
    return [*paths, render.write_csv(out / "verdicts.csv", VERDICTS, verdicts)]
