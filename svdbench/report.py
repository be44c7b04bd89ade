"""Comparison tables, Pareto fronts and a plot from the results.json files of runs and sweeps.

``svdbench report PATH... [--out DIR] [--wandb]`` (or ``python -m svdbench.report PATH...``) reads
every ``results.json`` below the given run or multirun directories, recursively (energy-sweep
points in ``energy_<e>/`` included), and writes to ``--out`` (default ``<first PATH>/report``):

- ``comparison.{md,csv,tex}``: every configuration, all methods; ``comparison_<method>.{md,csv,tex}``
  per method. A *configuration* is the resolved config minus the seed, the output and input
  paths and the bookkeeping keys (:data:`IGNORED_KEYS`); its runs over several seeds are one row
  with the mean and the sample standard deviation.
- ``pareto.csv`` and ``pareto.{png,svg}``: the Pareto fronts (maximize top-1, minimize MACs; see
  :mod:`svdbench.pareto` for dominance, ties and duplicates), per method and over all methods.
- ``failed.csv`` and ``report.md`` (everything above, plus the failed and skipped files).
- ``summary.json``: the rows and fronts, machine-readable.

Rows are compared within a *task*: the same model, dataset and dense MAC count (the dense count
pins the input size and number of classes). The dense reference of a task is its ``dense``
configuration with the most seeds (then the highest mean top-1); ``delta`` is a row's mean top-1
minus the reference's.

A file that is not valid JSON, lacks a required key, or is not ``completed`` is skipped with a
one-line warning on stderr; failed runs are also listed in the failed section.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import pareto, tracking
from .errors import one_line
from .methods import METHODS
from .results import RESULTS_FILE, RunRecord, comparable_config, write_json_atomic

#: config keys (dotted, prefixes included) that do not define a configuration: the seed, where data,
#: outputs and checkpoints live, logging, and evaluation-only settings. ``init_from`` is replaced
#: by whether it is set. ``method.energies`` is left out because each energy-sweep point is a
#: result at its own ``method.energy``.
IGNORED_KEYS = (
    "seed", "hydra", "logger", "resume", "checkpoint", "keep_checkpoints", "save_model", "init_from",
    "dataset.root", "dataset.download", "trainer.progress", "trainer.num_workers", "trainer.eval_batch_size",
    "method.energies",
)  # fmt: skip
DENSE = "dense"
SHORT = (("method.", ""), ("regularizer.", "reg."), ("trainer.", "tr."), ("dataset.", "ds."), ("model.", "model."))


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


@dataclass
class Run:
    path: Path
    rec: RunRecord
    flat: dict  # the configuration: dotted config keys -> values, IGNORED_KEYS removed

    @property
    def method(self) -> str:
        return self.rec.method

    @property
    def task(self) -> tuple[str, str, int]:
        return (self.rec.model, self.rec.dataset, int(self.rec.macs_dense))

    @property
    def headline(self) -> tuple[str, ...]:
        """The settings the method shows first: as recorded, else its registered config's (older files)."""
        if self.rec.headline is not None:
            return tuple(self.rec.headline)
        cls = METHODS.find(self.rec.method)
        return cls.Config.headline if cls is not None else ()


@dataclass
class Failed:
    path: Path
    method: str
    model: str
    dataset: str
    seed: Any
    error: str


@dataclass
class Row:
    """One configuration: its runs over seeds and their statistics."""

    method: str
    model: str
    dataset: str
    task: tuple[str, str, int]
    flat: dict
    runs: list[Run]
    settings: str = ""
    delta: float | None = None
    on_method_front: bool = False
    on_overall_front: bool = False
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def seeds(self) -> list:
        return [r.rec.seed for r in self.runs]

    def mean(self, key: str) -> float:
        return self.stats[f"{key}_mean"]

    @property
    def point(self) -> tuple[float, float]:
        return (self.mean("top1"), self.mean("macs"))


# ---------------------------------------------------------------- loading


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every results.json at or below ``paths`` (a file is taken as it is), sorted, each once."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(p.rglob(RESULTS_FILE)))
        else:
            warn(f"{p}: no such file or directory")
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def flatten(d: Any, prefix: str = "") -> dict:
    """Nested dicts to dotted keys; lists become tuples (hashable, comparable)."""
    if isinstance(d, dict):
        out: dict = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, list):
        d = tuple(flatten(v) if isinstance(v, (dict, list)) else v for v in d)
        d = tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in d)
    return {prefix[:-1]: d}


def configuration(config: dict, method: str) -> dict:
    """The config keys that define a configuration: the comparable config
    (:func:`svdbench.results.comparable_config`) without :data:`IGNORED_KEYS`."""
    flat = flatten(comparable_config(config, method))
    out = {k: v for k, v in flat.items() if not any(k == i or k.startswith(i + ".") for i in IGNORED_KEYS)}
    out["init_from"] = bool(config.get("init_from"))
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_runs(paths: Iterable[str | Path]) -> tuple[list[Run], list[Failed], list[tuple[Path, str]]]:
    """(completed runs, failed runs, skipped files with the reason), warning once per file left out."""
    runs: list[Run] = []
    failed: list[Failed] = []
    skipped: list[tuple[Path, str]] = []

    def skip(path: Path, why: str) -> None:
        skipped.append((path, why))
        warn(f"skipping {path}: {why}")

    for path in find_results(paths):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            skip(path, f"not valid JSON ({one_line(err, with_type=True)})")
            continue
        try:
            rec = RunRecord.from_dict(data)
        except (ValueError, TypeError) as err:
            skip(path, one_line(err))
            continue
        if rec.status == "failed":
            error = " ".join(str(rec.error or "no reason recorded").split())
            failed.append(Failed(path, rec.method, rec.model, rec.dataset, rec.seed, error))
            skip(path, f"failed run ({error[:200]})")
            continue
        if rec.status != "completed":
            skip(path, f"status {rec.status!r}, not completed (partial run)")
            continue
        runs.append(Run(path, rec, configuration(rec.config, rec.method)))
    return runs, failed, skipped


# ---------------------------------------------------------------- rows


def _std(xs: Sequence[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def _method_order(m: str) -> tuple[int, str]:
    return (0 if m == DENSE else 1, m)


def group_rows(runs: Sequence[Run]) -> list[Row]:
    """One row per (method, task, configuration). Two runs of one configuration with the same seed
    are the same run found twice (a copied directory, or an energy-sweep point equal to its parent):
    the first by path is kept, the other skipped with a warning."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        key = (r.method, r.task, tuple(sorted((k, repr(v)) for k, v in r.flat.items())))
        groups.setdefault(key, []).append(r)
    rows = []
    for (method, task, _), members in groups.items():
        kept: dict[Any, Run] = {}
        for r in sorted(members, key=lambda r: str(r.path)):
            seed = r.rec.seed
            if seed in kept:
                warn(f"skipping {r.path}: same configuration and seed {seed} as {kept[seed].path}")
                continue
            kept[seed] = r
        rs = list(kept.values())
        row = Row(method, task[0], task[1], task, rs[0].flat, rs)
        for key in ("top1", "macs", "params", "speedup", "compression"):
            vals = [float(getattr(r.rec, key)) for r in rs if _number(getattr(r.rec, key))]
            if key == "speedup" and not vals:
                vals = [r.rec.macs_dense / max(r.rec.macs, 1) for r in rs]
            if key == "compression" and not vals:
                vals = [r.rec.params_dense / max(r.rec.params, 1) for r in rs]
            row.stats[f"{key}_mean"] = statistics.fmean(vals)
            row.stats[f"{key}_std"] = _std(vals)
        rows.append(row)
    _settings(rows)
    _deltas(rows)
    _fronts(rows)
    rows.sort(key=lambda r: (r.task, _method_order(r.method), -r.mean("macs"), -r.mean("top1"), r.settings))
    return rows


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "[" + ",".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def short_key(k: str) -> str:
    for long, short in SHORT:
        if k.startswith(long):
            return short + k[len(long) :]
    return k


def _settings(rows: Sequence[Row]) -> None:
    """A row's settings: the method's headline keys, then every key that varies among the
    configurations of the same method."""
    by_method: dict[str, list[Row]] = {}
    for r in rows:
        by_method.setdefault(r.method, []).append(r)
    for rs in by_method.values():
        keys = sorted({k for r in rs for k in r.flat})
        varying = [k for k in keys if len({repr(r.flat.get(k)) for r in rs}) > 1 and not k.endswith("_target_")]
        head = [k for k in rs[0].runs[0].headline if k not in varying]
        for r in rs:
            parts = [f"{short_key(k)}={_fmt_value(r.flat[k])}" for k in head if r.flat.get(k) is not None]
            parts += [f"{short_key(k)}={_fmt_value(r.flat.get(k))}" for k in varying]
            r.settings = ", ".join(parts)


def dense_references(rows: Sequence[Row]) -> dict[tuple, Row]:
    """Per task, the dense configuration with the most seeds (then the highest mean top-1)."""
    refs: dict[tuple, Row] = {}
    for r in rows:
        if r.method != DENSE:
            continue
        cur = refs.get(r.task)
        if cur is None or (len(r.runs), r.mean("top1")) > (len(cur.runs), cur.mean("top1")):
            refs[r.task] = r
    return refs


def _deltas(rows: Sequence[Row]) -> None:
    refs = dense_references(rows)
    for r in rows:
        ref = refs.get(r.task)
        r.delta = None if ref is None else r.mean("top1") - ref.mean("top1")


def _fronts(rows: Sequence[Row]) -> None:
    tasks: dict[tuple, list[Row]] = {}
    for r in rows:
        tasks.setdefault(r.task, []).append(r)
    for rs in tasks.values():
        pts = [r.point for r in rs]
        for i in pareto.front_indices(pts):
            rs[i].on_overall_front = True
        for idx in pareto.fronts_by(pts, [r.method for r in rs]).values():
            for i in idx:
                rs[i].on_method_front = True


def fronts(rows: Sequence[Row]) -> list[tuple[str, Row]]:
    """(scope, row) for every front member: scope ``overall`` or the method's name; by task and MACs."""
    out = [("overall", r) for r in rows if r.on_overall_front]
    out += [(r.method, r) for r in rows if r.on_method_front]
    return sorted(out, key=lambda sr: (sr[1].task, sr[0] != "overall", sr[0], sr[1].mean("macs")))


# ---------------------------------------------------------------- tables


COLUMNS = ("method", "model", "dataset", "settings", "top1 (%)", "Δ dense", "MACs (M)", "speed-up", "params (k)",
           "compression", "seeds", "front")  # fmt: skip
CSV_COLUMNS = ("method", "model", "dataset", "settings", "top1_mean", "top1_std", "delta_top1", "macs_mean",
               "macs_std", "speedup", "params_mean", "compression", "n_seeds", "seeds", "on_method_front",
               "on_overall_front", "macs_dense", "paths")  # fmt: skip


def _pm(mean: float, std: float, n: int, digits: int, pm: str) -> str:
    return f"{mean:.{digits}f}" + (f" {pm} {std:.{digits}f}" if n > 1 else "")


def _front_mark(r: Row) -> str:
    return "overall" if r.on_overall_front else ("method" if r.on_method_front else "")


def display_cells(r: Row, pm: str = "±") -> list[str]:
    n = len(r.runs)
    return [
        r.method,
        r.model,
        r.dataset,
        r.settings or "-",
        _pm(r.mean("top1"), r.stats["top1_std"], n, 2, pm),
        "-" if r.delta is None else f"{r.delta:+.2f}",
        _pm(r.mean("macs") / 1e6, r.stats["macs_std"] / 1e6, n, 2, pm),
        f"{r.mean('speedup'):.2f}x",
        f"{r.mean('params') / 1e3:.1f}",
        f"{r.mean('compression'):.2f}x",
        str(n),
        _front_mark(r),
    ]


def csv_cells(r: Row) -> list:
    return [
        r.method, r.model, r.dataset, r.settings, f"{r.mean('top1'):.4f}", f"{r.stats['top1_std']:.4f}",
        "" if r.delta is None else f"{r.delta:.4f}", f"{r.mean('macs'):.0f}", f"{r.stats['macs_std']:.1f}",
        f"{r.mean('speedup'):.4f}", f"{r.mean('params'):.0f}", f"{r.mean('compression'):.4f}", len(r.runs),
        " ".join(map(str, r.seeds)), int(r.on_method_front), int(r.on_overall_front), r.task[2],
        ";".join(str(x.path.parent) for x in r.runs),
    ]  # fmt: skip


REPORT_COLUMNS = ["method", "model", "dataset", "settings", "top1", "top1_std", "delta_top1", "macs", "speedup",
                  "params", "compression", "n_seeds", "front"]  # fmt: skip


def _typed_row(r: Row) -> list:
    """The cells of :data:`REPORT_COLUMNS`, as numbers where they are numbers (W&B tables)."""
    return [
        r.method, r.model, r.dataset, r.settings, r.mean("top1"), r.stats["top1_std"], r.delta, r.mean("macs"),
        r.mean("speedup"), r.mean("params"), r.mean("compression"), len(r.runs), _front_mark(r),
    ]  # fmt: skip


def markdown_table(rows: Sequence[Row]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    align = ["---" if i < 4 or i == len(COLUMNS) - 1 else "--:" for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in display_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def latex_escape(s: str) -> str:
    return "".join(LATEX_SPECIALS.get(c, c) for c in s)


def latex_table(rows: Sequence[Row], caption: str = "") -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``); mean $\\pm$ std over seeds."""
    head = ["method", "model", "dataset", "settings", "top-1 (\\%)", "$\\Delta$ dense", "MACs (M)", "speed-up",
            "params (k)", "compression", "seeds", "front"]  # fmt: skip
    out = ["\\begin{table}[t]", "\\centering", "\\small", "\\begin{tabular}{llll" + "r" * 7 + "l}", "\\toprule",
           " & ".join(head) + " \\\\", "\\midrule"]  # fmt: skip
    for r in rows:
        cells = [latex_escape(c) for c in display_cells(r, pm="PLUSMINUS")]
        cells = [c.replace("PLUSMINUS", "$\\pm$") for c in cells]
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if caption:
        out.append(f"\\caption{{{latex_escape(caption)}}}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_tables(out: Path, stem: str, rows: Sequence[Row], caption: str) -> list[Path]:
    paths = [out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.tex"]
    paths[0].write_text(markdown_table(rows))
    write_csv(paths[1], CSV_COLUMNS, (csv_cells(r) for r in rows))
    paths[2].write_text(latex_table(rows, caption))
    return paths


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


# ---------------------------------------------------------------- plot


def plot(rows: Sequence[Row], out: Path) -> list[Path]:
    """pareto.png and pareto.svg: top-1 against MACs (log x), one panel per task, one series per
    method (mean over seeds, bars: std of top-1), each method's front as a line, the overall
    front dashed, the dense reference as a star and a dotted horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r.task for r in rows})
    if not tasks:
        return []
    methods = sorted({r.method for r in rows}, key=_method_order)
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    refs = dense_references(rows)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rs = [r for r in rows if r.task == task]
        for m in methods:
            mr = [r for r in rs if r.method == m]
            if not mr:
                continue
            x = [r.mean("macs") for r in mr]
            y = [r.mean("top1") for r in mr]
            yerr = [r.stats["top1_std"] for r in mr]
            ax.errorbar(x, y, yerr=yerr if any(yerr) else None, fmt="o", ms=5, alpha=0.75, color=colors[m], label=m)
            fx, fy = pareto.front_line([r.point for r in mr])
            if len(fx) > 1:
                ax.plot(fx, fy, "-", color=colors[m], lw=1.5)
        ox, oy = pareto.front_line([r.point for r in rs])
        if len(ox) > 1:
            ax.plot(ox, oy, "--", color="black", lw=1, alpha=0.6, label="front (all methods)")
        ref = refs.get(task)
        if ref is not None:
            ax.plot([ref.mean("macs")], [ref.mean("top1")], "*", ms=16, color="gold", mec="black", zorder=5,
                    label=f"dense reference ({ref.mean('top1'):.2f}%)")  # fmt: skip
            ax.axhline(ref.mean("top1"), color="gray", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("MACs per sample (log scale)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{task[0]} / {task[1]} (dense {task[2] / 1e6:.2f} M MACs)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    paths = [out / "pareto.png", out / "pareto.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


# ---------------------------------------------------------------- the report


@dataclass
class Report:
    rows: list[Row]
    failed: list[Failed]
    skipped: list[tuple[Path, str]]
    out: Path
    files: list[Path] = field(default_factory=list)


def report_tables(rep: Report) -> tracking.ReportTables:
    """``rep`` as the plain tables :func:`svdbench.tracking.log_report` logs."""
    png = rep.out / "pareto.png"
    return tracking.ReportTables(
        columns=REPORT_COLUMNS,
        rows=[_typed_row(r) for r in rep.rows],
        front_rows=[["overall", *_typed_row(r)] for r in rep.rows if r.on_overall_front]
        + [[r.method, *_typed_row(r)] for r in rep.rows if r.on_method_front],
        failed_columns=["method", "model", "dataset", "seed", "error", "path"],
        failed_rows=[[f.method, f.model, f.dataset, str(f.seed), f.error, str(f.path)] for f in rep.failed],
        markdown=markdown_table(rep.rows),
        png=png if png.is_file() else None,
        out=rep.out,
        sources=sorted({str(x.path.parent) for r in rep.rows for x in r.runs}),
    )


def split_methods(runs: Sequence[Run], keys: Sequence[str]) -> None:
    """Name each run's method after the values of ``keys`` too (dotted config keys, e.g.
    ``method.decomposition``: ``svd`` becomes ``svd (channel)`` and ``svd (spatial)``), so they are
    separate methods in tables, fronts and plot. Runs without the key keep their name."""
    for r in runs:
        values = [str(r.flat[k]) for k in keys if k in r.flat]
        if values:
            r.rec = dataclasses.replace(r.rec, method=f"{r.rec.method} ({', '.join(values)})")


def build_report(paths: Sequence[str | Path], out: str | Path | None = None, split: Sequence[str] = ()) -> Report:
    """Read every results.json under ``paths`` and write the report files into ``out``; ``split``:
    config keys whose values tell methods apart (:func:`split_methods`)."""
    if not paths:
        raise ValueError("no PATH given")
    out = Path(out) if out is not None else Path(paths[0]) / "report"
    if Path(paths[0]).is_file() and out == Path(paths[0]) / "report":
        out = Path(paths[0]).parent / "report"
    runs, failed, skipped = load_runs(paths)
    split_methods(runs, split)
    rows = group_rows(runs)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(rows, failed, skipped, out)
    rep.files += write_tables(out, "comparison", rows, "All methods: mean and standard deviation over seeds")
    for m in sorted({r.method for r in rows}, key=_method_order):
        rep.files += write_tables(out, f"comparison_{safe_name(m)}", [r for r in rows if r.method == m], m)
    front_rows = fronts(rows)
    p = out / "pareto.csv"
    write_csv(p, ("scope", "model", "dataset", "method", "settings", "top1_mean", "macs_mean", "n_seeds"),
              ((s, r.model, r.dataset, r.method, r.settings, f"{r.mean('top1'):.4f}", f"{r.mean('macs'):.0f}",
                len(r.runs)) for s, r in front_rows))  # fmt: skip
    rep.files.append(p)
    p = out / "failed.csv"
    write_csv(p, ("method", "model", "dataset", "seed", "error", "path"),
              ((f.method, f.model, f.dataset, f.seed, f.error, str(f.path)) for f in failed))  # fmt: skip
    rep.files.append(p)
    rep.files += plot(rows, out)
    p = out / "report.md"
    p.write_text(markdown_report(rep, paths, front_rows))
    rep.files.append(p)
    p = write_json_atomic(out / "summary.json", summary_dict(rep, front_rows))
    rep.files.append(p)
    return rep


def markdown_report(rep: Report, paths: Sequence, front_rows: Sequence[tuple[str, Row]]) -> str:
    n_runs = sum(len(r.runs) for r in rep.rows)
    lines = [
        "# svdbench report",
        "",
        f"Sources: {', '.join(f'`{p}`' for p in paths)}. {n_runs} completed runs in {len(rep.rows)} "
        f"configurations; {len(rep.failed)} failed; {len(rep.skipped) - len(rep.failed)} other files skipped.",
        "",
        "top-1: mean ± sample std over seeds (final epoch of the deployed model). MACs: per sample, "
        "deployed model. Δ dense: against the dense configuration of the same task with the most seeds. "
        "front: `overall` = on the Pareto front of all methods of the task, `method` = on its method's "
        "front only (maximize top-1, minimize MACs; weak dominance, duplicates all kept).",
        "",
        "## All methods",
        "",
        markdown_table(rep.rows) if rep.rows else "No completed runs.\n",
    ]
    if any(f.name == "pareto.png" for f in rep.files):
        lines += ["![top-1 against MACs](pareto.png)", ""]
    for m in sorted({r.method for r in rep.rows}, key=_method_order):
        lines += [f"## {m}", "", markdown_table([r for r in rep.rows if r.method == m])]
    lines += ["## Pareto fronts", ""]
    if front_rows:
        lines += ["| scope | model | dataset | method | settings | top1 (%) | MACs (M) |"]
        lines += ["|---|---|---|---|---|--:|--:|"]
        lines += [
            f"| {s} | {r.model} | {r.dataset} | {r.method} | {r.settings or '-'} | {r.mean('top1'):.2f} | "
            f"{r.mean('macs') / 1e6:.2f} |"
            for s, r in front_rows
        ]
    else:
        lines.append("None.")
    lines += ["", "## Failed", ""]
    if rep.failed:
        lines += ["| method | model | dataset | seed | error | path |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {f.method} | {f.model} | {f.dataset} | {f.seed} | {f.error.replace('|', '/')} | `{f.path}` |"
            for f in rep.failed
        ]
    else:
        lines.append("None.")
    other = [(p, why) for p, why in rep.skipped if not why.startswith("failed run")]
    if other:
        lines += ["", "## Skipped files", ""] + [f"- `{p}`: {why}" for p, why in other]
    return "\n".join(lines) + "\n"


def row_dict(r: Row) -> dict:
    return dict(zip(CSV_COLUMNS, csv_cells(r), strict=True), settings_dict={k: r.flat[k] for k in sorted(r.flat)})


def summary_dict(rep: Report, front_rows: Sequence[tuple[str, Row]]) -> dict:
    return {
        "rows": [row_dict(r) for r in rep.rows],
        "fronts": [{"scope": s, **row_dict(r)} for s, r in front_rows],
        "failed": [{**f.__dict__, "path": str(f.path)} for f in rep.failed],
        "skipped": [{"path": str(p), "reason": why} for p, why in rep.skipped],
    }


# ---------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="run or multirun directories (searched recursively)")
    p.add_argument("--out", default=None, help="output directory (default: <first PATH>/report)")
    p.add_argument(
        "--split",
        nargs="+",
        default=[],
        metavar="KEY",
        help="config keys whose values make separate methods, e.g. --split method.decomposition",
    )
    p.add_argument("--wandb", action="store_true", help="also log the table and the Pareto scatter to W&B")
    p.add_argument("--project", default="svdbench", help="W&B project (with --wandb)")
    p.add_argument("--entity", default=None, help="W&B entity (with --wandb)")
    p.add_argument(
        "--mode",
        default=None,
        choices=("offline", "online", "disabled"),
        help="W&B mode (with --wandb; default: $WANDB_MODE, else offline)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        rep = build_report(args.paths, args.out, split=args.split)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not rep.rows and not rep.failed:
        print(f"error: no usable results.json under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    print(f"{sum(len(r.runs) for r in rep.rows)} runs in {len(rep.rows)} configurations, {len(rep.failed)} failed")
    print(f"report: {rep.out / 'report.md'}")
    if args.wandb:
        tracking.log_report(report_tables(rep), project=args.project, entity=args.entity, mode=args.mode)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="svdbench report", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
