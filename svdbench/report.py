"""Comparison tables, Pareto fronts and a plot from the results.json files of runs and sweeps.

``svdbench report PATH... [--out DIR] [--select val|test] [--wandb]`` (or ``python -m svdbench.report
PATH...``) reads every ``results.json`` below the given run or multirun directories, recursively
(energy-sweep points in ``energy_<e>/`` included), and writes to ``--out`` (default ``<first PATH>/report``):

- ``comparison.{md,csv,tex}``: every configuration, all methods; ``comparison_<method>.{md,csv,tex}``
  per method. A *configuration* is the resolved config minus the seed, the output and input
  paths and the bookkeeping keys (:data:`IGNORED_KEYS`); its runs over several seeds are one row
  with the mean and the sample standard deviation.
- ``pareto.csv`` and ``pareto.{png,svg}``: the Pareto fronts (maximize top-1, minimize MACs; see
  :mod:`svdbench.pareto` for dominance, ties and duplicates), per method and over all methods.
- ``hypervolume.{csv,tex}`` and ``verdicts.csv``: the quality of each method's front per seed
  (:func:`front_quality`) and the pairwise verdicts (:func:`verdict`).
- ``failed.csv`` and ``report.md`` (everything above, plus the failed and skipped files).
- ``summary.json``: the rows, fronts, selection, budget warnings, front quality and verdicts.

Rows are compared within a *task*: the same model, dataset and dense MAC count (the dense count
pins the input size and number of classes). The dense reference of a task is its ``dense``
configuration with the most seeds (then the highest mean top-1); ``delta`` is a row's mean top-1
minus the reference's.

Selection (``--select``, default ``val``): fronts and front quality use the mean *validation*
top-1 when every run has one (``val_top1``), else test top-1 (:func:`choose_selection`); the
tables show both. Within a task, compressing runs whose recorded budgets differ
(``epochs_after_start``), or runs of one seed that started from different checkpoints
(``dense_start``), get one warning (:func:`budget_warnings`).

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
from .axes import MACS, Axis, latency_axis
from .errors import one_line
from .methods import METHODS
from .methods.base import METHOD_GROUPS
from .results import RunRecord, comparable_config, comparable_key, find_results, write_json_atomic

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
            return tuple(comparable_key(k) for k in self.rec.headline)
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
    axis: Axis = MACS  # the cost axis its fronts are computed on (stats "x_*" and "xspeed_*")

    @property
    def seeds(self) -> list:
        return [r.rec.seed for r in self.runs]

    def mean(self, key: str) -> float:
        return self.stats[f"{key}_mean"]

    def point_on(self, key: str) -> tuple[float, float]:
        """(mean ``key``, mean cost on the axis): the point its fronts are computed on (``key``: top1 or
        val_top1; the cost: MACs, or measured latency with ``--x latency``)."""
        return (self.mean(key), self.mean("x"))

    def has(self, key: str) -> bool:
        return f"{key}_mean" in self.stats


@dataclass(frozen=True)
class Selection:
    """What the fronts and front quality are computed on."""

    requested: str  # val | test (--select)
    metric: str  # val | test: what was used
    reason: str  # one line for report.md

    @property
    def key(self) -> str:
        return "val_top1" if self.metric == "val" else "top1"


# ---------------------------------------------------------------- loading


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


def run_value(run: Run, key: str) -> float | None:
    """A run's ``top1`` or ``val_top1`` (%), None when absent or not a percentage."""
    v = getattr(run.rec, key)
    return float(v) if _number(v) and 0 <= v <= 100 else None


def epochs_after_start(run: Run) -> int | None:
    v = run.rec.epochs_after_start
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def dense_start(run: Run) -> str | None:
    v = run.rec.dense_start
    return v if isinstance(v, str) and v else None


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


def group_rows(runs: Sequence[Run], axis: Axis = MACS) -> list[Row]:
    """One row per (method, task, configuration); fronts are marked later (:func:`mark_fronts`). Two
    runs of one configuration with the same seed are the same run found twice (a copied directory, or
    an energy-sweep point equal to its parent): the first by path is kept, the other skipped with a warning."""
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
        row = Row(method, task[0], task[1], task, rs[0].flat, rs, axis=axis)
        for key in ("top1", "macs", "params", "speedup", "compression"):
            vals = [float(getattr(r.rec, key)) for r in rs if _number(getattr(r.rec, key))]
            if key == "speedup" and not vals:
                vals = [r.rec.macs_dense / max(r.rec.macs, 1) for r in rs]
            if key == "compression" and not vals:
                vals = [r.rec.params_dense / max(r.rec.params, 1) for r in rs]
            row.stats[f"{key}_mean"] = statistics.fmean(vals)
            row.stats[f"{key}_std"] = _std(vals)
        for key, vals in (("x", [axis.value(r.rec) for r in rs]),
                          ("xspeed", [axis.dense(r.rec) / axis.value(r.rec) for r in rs])):  # fmt: skip
            row.stats[f"{key}_mean"], row.stats[f"{key}_std"] = statistics.fmean(vals), _std(vals)
        vals = [run_value(r, "val_top1") for r in rs]
        if None not in vals:  # a row without a validation top-1 for every seed shows none
            row.stats["val_top1_mean"] = statistics.fmean(vals)
            row.stats["val_top1_std"] = _std(vals)
        rows.append(row)
    _settings(rows)
    _deltas(rows)
    rows.sort(key=lambda r: (r.task, _method_order(r.method), -r.mean("macs"), -r.mean("top1"), r.settings))
    return rows


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "[" + ",".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def short_key(k: str) -> str:
    """``k`` as the settings column shows it: ``method.energy`` as ``energy``, ``trainer.lr`` as ``tr.lr``, a
    method's group as the group (``method.regularizer.weight`` as ``reg.weight``)."""
    for group in METHOD_GROUPS:
        if k.startswith(f"method.{group}."):
            k = k[len("method.") :]
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


def by_task(rows: Sequence[Row]) -> dict[tuple, list[Row]]:
    tasks: dict[tuple, list[Row]] = {}
    for r in rows:
        tasks.setdefault(r.task, []).append(r)
    return tasks


def choose_selection(rows: Sequence[Row], requested: str = "val") -> Selection:
    """Validation top-1 when ``requested`` is ``val`` and every row has it (every run of it), else test."""
    if requested == "test":
        return Selection(requested, "test", "fronts selected on test top-1 (--select test)")
    if rows and all(r.has("val_top1") for r in rows):
        return Selection(requested, "val", "fronts selected on validation top-1 (test top-1 shown)")
    return Selection(requested, "test", "fronts selected on test top-1: no validation split recorded"
                     + (" for every run" if any(r.has("val_top1") for r in rows) else ""))  # fmt: skip


def mark_fronts(rows: Sequence[Row], key: str = "top1") -> None:
    """Mark each row on its method's front and on its task's overall front, computed on mean ``key``."""
    for rs in by_task(rows).values():
        pts = [r.point_on(key) for r in rs]
        for r in rs:
            r.on_overall_front = r.on_method_front = False
        for i in pareto.front_indices(pts):
            rs[i].on_overall_front = True
        for idx in pareto.fronts_by(pts, [r.method for r in rs]).values():
            for i in idx:
                rs[i].on_method_front = True


def fronts(rows: Sequence[Row]) -> list[tuple[str, Row]]:
    """(scope, row) for every front member: scope ``overall`` or the method's name; by task and MACs."""
    out = [("overall", r) for r in rows if r.on_overall_front]
    out += [(r.method, r) for r in rows if r.on_method_front]
    return sorted(out, key=lambda sr: (sr[1].task, sr[0] != "overall", sr[0], sr[1].mean("x")))


# ---------------------------------------------------------------- budgets


def task_name(task: tuple) -> str:
    return f"{task[0]}/{task[1]}"


def _short_hash(h: str) -> str:
    algo, _, hexd = h.partition(":")
    return f"{algo}:{hexd[:12]}" if hexd and len(hexd) > 12 else h


def budget_warnings(rows: Sequence[Row]) -> list[str]:
    """One sentence per task whose compressing runs (every non-dense row: dense runs are the starts)
    spent different ``epochs_after_start``, or whose runs of one seed started from different
    ``dense_start`` checkpoints (each seed has its own dense start; a study compares them per seed).
    Runs that did not record a field are not compared on it."""
    out = []
    for task, rs in by_task(rows).items():
        runs = [x for r in rs if r.method != DENSE for x in r.runs]
        epochs = sorted({e for x in runs if (e := epochs_after_start(x)) is not None})
        starts: dict[Any, set[str]] = {}
        for x in runs:
            if (h := dense_start(x)) is not None:
                starts.setdefault(x.rec.seed, set()).add(h)
        mixed = {seed: hs for seed, hs in starts.items() if len(hs) > 1}
        parts = []
        if len(epochs) > 1:
            parts.append(f"with different budgets: epochs after the start {', '.join(map(str, epochs))}")
        if mixed:
            per_seed = "; ".join(f"seed {s}: {', '.join(map(_short_hash, sorted(hs)))}" for s, hs in mixed.items())
            parts.append(f"from different dense starts ({per_seed})")
        if parts:
            out.append(f"{task_name(task)} compares runs {'; and '.join(parts)}")
    return out


# ---------------------------------------------------------------- front quality


#: the reference point's top-1 is the dense reference's mean minus this (percentage points) ...
DENSE_MARGIN = 5.0
#: ... or, in a task without a dense reference, the lowest row's mean minus this
LOWEST_MARGIN = 1.0


@dataclass
class Quality:
    """The hypervolume of one method's front in one task, per seed."""

    task: tuple[str, str, int]
    method: str
    per_seed: dict[Any, float]  # seed -> hypervolume of the front of that seed's runs
    y_ref: float
    reference: str  # how y_ref was set, in words

    @property
    def n(self) -> int:
        return len(self.per_seed)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_seed.values())

    @property
    def std(self) -> float:
        return _std(list(self.per_seed.values()))

    @property
    def seeds(self) -> list:
        return sorted(self.per_seed, key=lambda s: (s is None, s if isinstance(s, int) else 0))


def reference_top1(rs: Sequence[Row], ref: Row | None, key: str) -> tuple[float, str]:
    """(y_ref, how it was set): the dense reference's mean ``key`` minus 5 points, else the lowest
    row's mean minus 1 point."""
    if ref is not None:
        return ref.mean(key) - DENSE_MARGIN, f"dense reference {ref.mean(key):.2f} - {DENSE_MARGIN:g}"
    low = min(r.mean(key) for r in rs)
    return low - LOWEST_MARGIN, f"no dense reference: lowest top-1 {low:.2f} - {LOWEST_MARGIN:g}"


def seed_points(rows: Sequence[Row], key: str) -> dict[Any, list[tuple[float, float]]]:
    """Per seed, the (log2 speed-up on the rows' axis, ``key``) point of every run of ``rows`` with that
    seed: MACs (dense MACs / MACs) or realized (dense / deployed latency)."""
    out: dict[Any, list[tuple[float, float]]] = {}
    for r in rows:
        for x in r.runs:
            y = run_value(x, key)
            if y is not None:
                speedup = r.axis.dense(x.rec) / max(r.axis.value(x.rec), 1e-12)
                out.setdefault(x.rec.seed, []).append((math.log2(speedup), y))
    return out


def front_quality(rows: Sequence[Row], key: str) -> list[Quality]:
    """Per task and non-dense method (dense sits at x = 0: its area is 0), the hypervolume
    (:func:`svdbench.pareto.hypervolume`) of each seed's front above (x = 0, y_ref)."""
    refs = dense_references(rows)
    out = []
    for task, rs in by_task(rows).items():
        y_ref, how = reference_top1(rs, refs.get(task), key)
        for m in sorted({r.method for r in rs if r.method != DENSE}, key=_method_order):
            pts = seed_points([r for r in rs if r.method == m], key)
            hv = {seed: pareto.hypervolume(p, (0.0, y_ref)) for seed, p in pts.items()}
            if hv:
                out.append(Quality(task, m, hv, y_ref, how))
    return out


@dataclass
class Verdict:
    a: Quality
    b: Quality
    text: str  # "A > B", "B > A" or "level", with " (single seed)" when neither has a spread
    note: str  # "single seed: no spread", "<method>: single seed", or ""

    @property
    def gap(self) -> float:
        return self.a.mean - self.b.mean

    @property
    def spread(self) -> float:
        return self.a.std + self.b.std


def verdict(a: Quality, b: Quality) -> Verdict:
    """``A > B`` when mean_A - mean_B > std_A + std_B (and the reverse), else ``level``. With one
    seed each there is no spread: any difference is a verdict, marked ``(single seed)``."""
    v = Verdict(a, b, "level", "")
    if v.gap > v.spread:
        v.text = f"{a.method} > {b.method}"
    elif -v.gap > v.spread:
        v.text = f"{b.method} > {a.method}"
    if a.n == 1 and b.n == 1:
        v.note = "single seed: no spread"
        v.text += " (single seed)" if v.text != "level" else ""
    elif a.n == 1 or b.n == 1:
        v.note = f"{(a if a.n == 1 else b).method}: single seed"
    return v


def verdicts(quality: Sequence[Quality]) -> list[Verdict]:
    """Every pair of methods within a task, in method order."""
    out = []
    for i, a in enumerate(quality):
        out += [verdict(a, b) for b in quality[i + 1 :] if b.task == a.task]
    return out


# ---------------------------------------------------------------- tables


COLUMNS = ("method", "model", "dataset", "settings", "top1 (%)", "val top1 (%)", "Δ dense", "MACs (M)", "speed-up",
           "params (k)", "compression", "seeds", "front")  # fmt: skip
CSV_COLUMNS = ("method", "model", "dataset", "settings", "top1_mean", "top1_std", "val_top1_mean", "val_top1_std",
               "delta_top1", "macs_mean",
               "macs_std", "speedup", "params_mean", "compression", "n_seeds", "seeds", "on_method_front",
               "on_overall_front", "macs_dense", "paths")  # fmt: skip


def _pm(mean: float, std: float, n: int, digits: int, pm: str) -> str:
    return f"{mean:.{digits}f}" + (f" {pm} {std:.{digits}f}" if n > 1 else "")


def _val_cell(r: Row, pm: str = "±") -> str:
    return _pm(r.mean("val_top1"), r.stats["val_top1_std"], len(r.runs), 2, pm) if r.has("val_top1") else "-"


def _front_mark(r: Row) -> str:
    return "overall" if r.on_overall_front else ("method" if r.on_method_front else "")


LATENCY_COLUMNS = ("latency (ms)", "realized speed-up")
LATENCY_CSV_COLUMNS = ("latency_ms_mean", "latency_ms_std", "realized_speedup")
LATENCY_REPORT_COLUMNS = ("latency_ms", "realized_speedup")  # the typed (W&B) table


def columns(rows: Sequence[Row], base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``base``, and ``extra`` when the rows are on the latency axis."""
    return [*base, *(extra if rows and rows[0].axis.is_latency else ())]


def latency_cells(r: Row, pm: str = "±") -> list[str]:
    if not r.axis.is_latency:
        return []
    return [_pm(r.mean("x"), r.stats["x_std"], len(r.runs), 3, pm), f"{r.mean('xspeed'):.2f}x"]


def display_cells(r: Row, pm: str = "±") -> list[str]:
    n = len(r.runs)
    return [
        r.method,
        r.model,
        r.dataset,
        r.settings or "-",
        _pm(r.mean("top1"), r.stats["top1_std"], n, 2, pm),
        _val_cell(r, pm),
        "-" if r.delta is None else f"{r.delta:+.2f}",
        _pm(r.mean("macs") / 1e6, r.stats["macs_std"] / 1e6, n, 2, pm),
        f"{r.mean('speedup'):.2f}x",
        f"{r.mean('params') / 1e3:.1f}",
        f"{r.mean('compression'):.2f}x",
        str(n),
        _front_mark(r),
        *latency_cells(r, pm),
    ]


def csv_cells(r: Row) -> list:
    return [
        r.method, r.model, r.dataset, r.settings, f"{r.mean('top1'):.4f}", f"{r.stats['top1_std']:.4f}",
        *((f"{r.mean('val_top1'):.4f}", f"{r.stats['val_top1_std']:.4f}") if r.has("val_top1") else ("", "")),
        "" if r.delta is None else f"{r.delta:.4f}", f"{r.mean('macs'):.0f}", f"{r.stats['macs_std']:.1f}",
        f"{r.mean('speedup'):.4f}", f"{r.mean('params'):.0f}", f"{r.mean('compression'):.4f}", len(r.runs),
        " ".join(map(str, r.seeds)), int(r.on_method_front), int(r.on_overall_front), r.task[2],
        ";".join(str(x.path.parent) for x in r.runs),
        *((f"{r.mean('x'):.6f}", f"{r.stats['x_std']:.6f}", f"{r.mean('xspeed'):.4f}") if r.axis.is_latency else ()),
    ]  # fmt: skip


REPORT_COLUMNS = ["method", "model", "dataset", "settings", "top1", "top1_std", "val_top1", "val_top1_std",
                  "delta_top1", "macs", "speedup", "params", "compression", "n_seeds", "front"]  # fmt: skip


def _typed_row(r: Row) -> list:
    """The cells of :data:`REPORT_COLUMNS`, as numbers where they are numbers (W&B tables)."""
    return [
        r.method, r.model, r.dataset, r.settings, r.mean("top1"), r.stats["top1_std"], r.stats.get("val_top1_mean"),
        r.stats.get("val_top1_std"), r.delta, r.mean("macs"),
        r.mean("speedup"), r.mean("params"), r.mean("compression"), len(r.runs), _front_mark(r),
        *((r.mean("x"), r.mean("xspeed")) if r.axis.is_latency else ()),
    ]  # fmt: skip


def markdown_table(rows: Sequence[Row]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    cols = columns(rows, COLUMNS, LATENCY_COLUMNS)
    align = ["---" if i < 4 or i == len(COLUMNS) - 1 else "--:" for i in range(len(cols))]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in display_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def latex_escape(s: str) -> str:
    return "".join(LATEX_SPECIALS.get(c, c) for c in s)


def latex_table(rows: Sequence[Row], caption: str = "") -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``); mean $\\pm$ std over seeds."""
    head = ["method", "model", "dataset", "settings", "top-1 (\\%)", "val top-1 (\\%)", "$\\Delta$ dense",
            "MACs (M)", "speed-up", "params (k)", "compression", "seeds", "front"]  # fmt: skip
    head = columns(rows, head, LATENCY_COLUMNS)
    spec = "llll" + "r" * 8 + "l" + "r" * (len(head) - 13)
    return booktabs(head, spec, [display_cells(r, pm="PLUSMINUS") for r in rows], caption)


def booktabs(head: Sequence[str], spec: str, rows: Iterable[Sequence[str]], caption: str = "") -> str:
    """A booktabs ``table``: ``head`` as LaTeX, ``rows`` as text (escaped; ``PLUSMINUS`` becomes $\\pm$)."""
    out = ["\\begin{table}[t]", "\\centering", "\\small", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
           " & ".join(head) + " \\\\", "\\midrule"]  # fmt: skip
    for row in rows:
        cells = [latex_escape(c).replace("PLUSMINUS", "$\\pm$") for c in row]
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
    write_csv(paths[1], columns(rows, CSV_COLUMNS, LATENCY_CSV_COLUMNS), (csv_cells(r) for r in rows))
    paths[2].write_text(latex_table(rows, caption))
    return paths


QUALITY_COLUMNS = ("model", "dataset", "macs_dense", "method", "n_seeds", "seeds", "hv_mean", "hv_std",
                   "hv_per_seed", "y_ref", "reference", "selection")  # fmt: skip
VERDICT_COLUMNS = ("model", "dataset", "macs_dense", "method_a", "method_b", "hv_a_mean", "hv_a_std", "n_seeds_a",
                   "hv_b_mean", "hv_b_std", "n_seeds_b", "gap", "spread", "verdict", "note")  # fmt: skip
#: the hypervolume table as W&B logs it
HV_REPORT_COLUMNS = ["model", "dataset", "method", "n_seeds", "hv_mean", "hv_std", "y_ref", "selection"]


def _hv(q: Quality, pm: str = "±") -> str:
    return _pm(q.mean, q.std, q.n, 3, pm)


def quality_csv_cells(q: Quality, metric: str) -> list:
    return [q.task[0], q.task[1], q.task[2], q.method, q.n, " ".join(map(str, q.seeds)), f"{q.mean:.6f}",
            f"{q.std:.6f}", " ".join(f"{s}:{q.per_seed[s]:.6f}" for s in q.seeds), f"{q.y_ref:.4f}", q.reference,
            metric]  # fmt: skip


def verdict_csv_cells(v: Verdict) -> list:
    a, b = v.a, v.b
    return [a.task[0], a.task[1], a.task[2], a.method, b.method, f"{a.mean:.6f}", f"{a.std:.6f}", a.n,
            f"{b.mean:.6f}", f"{b.std:.6f}", b.n, f"{v.gap:.6f}", f"{v.spread:.6f}", v.text, v.note]  # fmt: skip


def quality_markdown(quality: Sequence[Quality]) -> str:
    lines = ["| model | dataset | method | seeds | hypervolume | y_ref (top-1 %) |", "|---|---|---|--:|--:|---|"]
    lines += [f"| {q.task[0]} | {q.task[1]} | {q.method} | {q.n} | {_hv(q)} | {q.y_ref:.2f} ({q.reference}) |"
              for q in quality]  # fmt: skip
    return "\n".join(lines) + "\n"


def verdict_line(v: Verdict) -> str:
    """One Markdown list item, the better front first (``a`` first when level)."""
    a, b = (v.b, v.a) if v.gap < -v.spread else (v.a, v.b)
    cmp = ">" if abs(v.gap) > v.spread else "≤"
    return (f"- {task_name(a.task)}: **{v.text}**: {a.method} {_hv(a)} vs {b.method} {_hv(b)}; |gap| "
            f"{abs(v.gap):.3f} {cmp} spread {v.spread:.3f}" + (f"; {v.note}" if v.note else ""))  # fmt: skip


def write_quality(out: Path, quality: Sequence[Quality], vs: Sequence[Verdict], metric: str) -> list[Path]:
    """hypervolume.csv, hypervolume.tex and verdicts.csv."""
    paths = [out / "hypervolume.csv", out / "hypervolume.tex", out / "verdicts.csv"]
    write_csv(paths[0], QUALITY_COLUMNS, (quality_csv_cells(q, metric) for q in quality))
    head = ["model", "dataset", "method", "seeds", "hypervolume", "$y_\\mathrm{ref}$ (\\%)"]
    cells = [[q.task[0], q.task[1], q.method, str(q.n), _hv(q, "PLUSMINUS"), f"{q.y_ref:.2f}"] for q in quality]
    caption = (f"Front quality: hypervolume in (log2 MAC speed-up, {metric} top-1) above (0, y_ref); "
               "mean and standard deviation over seeds")  # fmt: skip
    paths[1].write_text(booktabs(head, "lllrrr", cells, caption))
    write_csv(paths[2], VERDICT_COLUMNS, (verdict_csv_cells(v) for v in vs))
    return paths


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


# ---------------------------------------------------------------- plot


def front_xy(rows: Sequence[Row], key: str = "top1") -> tuple[list[float], list[float]]:
    """(cost, test top-1) of the rows on the front computed on mean ``key``, by cost, duplicates once."""
    return pareto.front_line([r.point_on(key) for r in rows], shown=[r.point_on("top1") for r in rows])


def plot(rows: Sequence[Row], out: Path, key: str = "top1") -> list[Path]:
    """pareto.png and pareto.svg: test top-1 against MACs (log x), one panel per task, one series per
    method (mean over seeds, bars: std of top-1), each method's front as a line, the overall
    front dashed, the dense reference as a star and a dotted horizontal line. The fronts are
    selected on mean ``key`` (val_top1: their lines join the members' test top-1)."""
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
            x = [r.mean("x") for r in mr]
            y = [r.mean("top1") for r in mr]
            yerr = [r.stats["top1_std"] for r in mr]
            ax.errorbar(x, y, yerr=yerr if any(yerr) else None, fmt="o", ms=5, alpha=0.75, color=colors[m], label=m)
            fx, fy = front_xy(mr, key)
            if len(fx) > 1:
                ax.plot(fx, fy, "-", color=colors[m], lw=1.5)
        ox, oy = front_xy(rs, key)
        if len(ox) > 1:
            on = " on validation" if key == "val_top1" else ""
            ax.plot(ox, oy, "--", color="black", lw=1, alpha=0.6, label=f"front (all methods{on})")
        ref = refs.get(task)
        if ref is not None:
            ax.plot([ref.mean("x")], [ref.mean("top1")], "*", ms=16, color="gold", mec="black", zorder=5,
                    label=f"dense reference ({ref.mean('top1'):.2f}%)")  # fmt: skip
            ax.axhline(ref.mean("top1"), color="gray", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(rs[0].axis.plot_label)
        ax.set_ylabel("test top-1 (%)")
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
    selection: Selection = Selection("test", "test", "fronts selected on test top-1")
    budget: list[str] = field(default_factory=list)  # budget warnings, one sentence per task
    quality: list[Quality] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)


def report_tables(rep: Report) -> tracking.ReportTables:
    """``rep`` as the plain tables :func:`svdbench.tracking.log_report` logs."""
    png = rep.out / "pareto.png"
    return tracking.ReportTables(
        columns=columns(rep.rows, REPORT_COLUMNS, LATENCY_REPORT_COLUMNS),
        rows=[_typed_row(r) for r in rep.rows],
        front_rows=[["overall", *_typed_row(r)] for r in rep.rows if r.on_overall_front]
        + [[r.method, *_typed_row(r)] for r in rep.rows if r.on_method_front],
        failed_columns=["method", "model", "dataset", "seed", "error", "path"],
        failed_rows=[[f.method, f.model, f.dataset, str(f.seed), f.error, str(f.path)] for f in rep.failed],
        markdown=markdown_table(rep.rows),
        png=png if png.is_file() else None,
        out=rep.out,
        sources=sorted({str(x.path.parent) for r in rep.rows for x in r.runs}),
        hypervolume_columns=HV_REPORT_COLUMNS,
        hypervolume_rows=[
            [*q.task[:2], q.method, q.n, q.mean, q.std, q.y_ref, rep.selection.metric] for q in rep.quality
        ],  # fmt: skip
        quality_markdown=quality_section(rep),
    )


def split_methods(runs: Sequence[Run], keys: Sequence[str]) -> None:
    """Name each run's method after the values of ``keys`` too (dotted config keys, e.g.
    ``method.decomposition``: ``svd`` becomes ``svd (channel)`` and ``svd (spatial)``; a number is shown
    with its key, ``svd (channel, round_to=8)``), so they are
    separate methods in tables, fronts and plot. Runs without the key keep their name."""
    for r in runs:  # a word as it is (channel), a number with its key's last part (round_to=8)
        values = [v if isinstance(v, str) else f"{k.rsplit('.', 1)[-1]}={v}" for k in keys if k in r.flat
                  for v in [r.flat[k]]]  # fmt: skip
        if values:
            r.rec = dataclasses.replace(r.rec, method=f"{r.rec.method} ({', '.join(values)})")


def build_report(
    paths: Sequence[str | Path], out: str | Path | None = None, split: Sequence[str] = (), select: str = "val",
    axis: Axis = MACS,
) -> Report:  # fmt: skip
    """Read every results.json under ``paths`` and write the report files into ``out``; ``split``:
    config keys whose values tell methods apart (:func:`split_methods`); ``select``: ``val`` or
    ``test``, what the fronts are computed on (:func:`choose_selection`); ``axis``: their cost, MACs or
    measured latency (:mod:`svdbench.axes`; runs without that figure are left out with one warning).
    Budget warnings go to stderr."""
    if select not in ("val", "test"):
        raise ValueError(f"--select {select!r}: expected val or test")
    if not paths:
        raise ValueError("no PATH given")
    out = Path(out) if out is not None else Path(paths[0]) / "report"
    if Path(paths[0]).is_file() and out == Path(paths[0]) / "report":
        out = Path(paths[0]).parent / "report"
    runs, failed, skipped = load_runs(paths)
    runs = on_axis(runs, axis, skipped)
    split_methods(runs, split)
    rows = group_rows(runs, axis)
    sel = choose_selection(rows, select)
    mark_fronts(rows, sel.key)
    out.mkdir(parents=True, exist_ok=True)
    quality = front_quality(rows, sel.key)
    rep = Report(rows, failed, skipped, out, selection=sel, budget=budget_warnings(rows), quality=quality,
                 verdicts=verdicts(quality))  # fmt: skip
    for line in rep.budget:
        warn(line)
    rep.files += write_tables(out, "comparison", rows, "All methods: mean and standard deviation over seeds")
    for m in sorted({r.method for r in rows}, key=_method_order):
        rep.files += write_tables(out, f"comparison_{safe_name(m)}", [r for r in rows if r.method == m], m)
    front_rows = fronts(rows)
    p = out / "pareto.csv"
    write_csv(p, ("scope", "model", "dataset", "method", "settings", "top1_mean", "macs_mean", "n_seeds",
                  "val_top1_mean"),
              ((s, r.model, r.dataset, r.method, r.settings, f"{r.mean('top1'):.4f}", f"{r.mean('macs'):.0f}",
                len(r.runs), f"{r.mean('val_top1'):.4f}" if r.has("val_top1") else "")
               for s, r in front_rows))  # fmt: skip
    rep.files.append(p)
    rep.files += write_quality(out, rep.quality, rep.verdicts, sel.metric)
    p = out / "failed.csv"
    write_csv(p, ("method", "model", "dataset", "seed", "error", "path"),
              ((f.method, f.model, f.dataset, f.seed, f.error, str(f.path)) for f in failed))  # fmt: skip
    rep.files.append(p)
    rep.files += plot(rows, out, sel.key)
    p = out / "report.md"
    p.write_text(markdown_report(rep, paths, front_rows))
    rep.files.append(p)
    p = write_json_atomic(out / "summary.json", summary_dict(rep, front_rows))
    rep.files.append(p)
    return rep


def on_axis(runs: Sequence[Run], axis: Axis, skipped: list[tuple[Path, str]]) -> list[Run]:
    """The runs with a point on ``axis``; the others are recorded in ``skipped`` with one warning in all."""
    kept, left = [], []
    for r in runs:
        why = axis.missing(r.rec)
        (left if why else kept).append(r)
        if why:
            skipped.append((r.path, why))
    if left:
        warn(f"{len(left)} of {len(runs)} runs have no latency figure for {axis.runtime} at batch {axis.batch} and "
             f"are left out (first: {left[0].path}); time them with: svdbench latency DIR")  # fmt: skip
    return kept


def markdown_report(rep: Report, paths: Sequence, front_rows: Sequence[tuple[str, Row]]) -> str:
    n_runs = sum(len(r.runs) for r in rep.rows)
    axis = rep.rows[0].axis if rep.rows else MACS
    lines = [
        "# svdbench report",
        "",
        f"Sources: {', '.join(f'`{p}`' for p in paths)}. {n_runs} completed runs in {len(rep.rows)} "
        f"configurations; {len(rep.failed)} failed; {len(rep.skipped) - len(rep.failed)} other files skipped.",
        "",
        "top-1: mean ± sample std over seeds (final epoch of the deployed model). MACs: per sample, "
        "deployed model. Δ dense: against the dense configuration of the same task with the most seeds. "
        "front: `overall` = on the Pareto front of all methods of the task, `method` = on its method's "
        f"front only (maximize top-1, minimize {axis.what}; weak dominance, duplicates all kept).",
        *(
            [
                "",
                f"Cost axis: {axis.what}, the median over timed calls of the deployed model (latency (ms)); "
                "realized speed-up = the dense model's median / the deployed model's, measured in the same run. "
                "The MAC columns stay for comparison.",
            ]
            if axis.is_latency
            else []
        ),
        "",
        f"Selection: {rep.selection.reason}.",
        "",
        "## All methods",
        "",
        *[f"**Warning:** {w}." for w in rep.budget],
        *([""] if rep.budget else []),
        markdown_table(rep.rows) if rep.rows else "No completed runs.\n",
    ]
    if any(f.name == "pareto.png" for f in rep.files):
        lines += [f"![top-1 against {axis.what}](pareto.png)", ""]
    for m in sorted({r.method for r in rep.rows}, key=_method_order):
        lines += [f"## {m}", "", markdown_table([r for r in rep.rows if r.method == m])]
    lines += ["## Pareto fronts", ""]
    if front_rows:
        extra = columns(rep.rows, (), LATENCY_COLUMNS)
        lines += ["| scope | model | dataset | method | settings | top1 (%) | val top1 (%) | MACs (M) |"
                  + "".join(f" {c} |" for c in extra)]  # fmt: skip
        lines += ["|---|---|---|---|---|--:|--:|--:|" + "--:|" * len(extra)]
        lines += [
            f"| {s} | {r.model} | {r.dataset} | {r.method} | {r.settings or '-'} | {r.mean('top1'):.2f} | "
            f"{_val_cell(r)} | {r.mean('macs') / 1e6:.2f} |" + "".join(f" {c} |" for c in latency_cells(r))
            for s, r in front_rows
        ]
    else:
        lines.append("None.")
    lines += ["", "## Front quality", "", quality_section(rep)]
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


def quality_section(rep: Report) -> str:
    """The front-quality table and the verdicts, with how they are computed (Markdown)."""
    m = "validation" if rep.selection.metric == "val" else "test"
    axis = rep.rows[0].axis if rep.rows else MACS
    lines = [
        f"Hypervolume of each method's Pareto front, per seed: the area it dominates in the plane x = log2 of "
        f"{axis.speedup_words}, y = {m} top-1 (%), above the reference point x = 0 (1x), "
        f"y = y_ref = the dense reference's mean {m} top-1 minus {DENSE_MARGIN:g} points (in a task without "
        f"a dense reference: the lowest row's mean minus {LOWEST_MARGIN:g}). A seed's front holds that seed's "
        "runs only; hypervolume: mean ± sample std over seeds. Dense runs sit at x = 0 (area 0): not ranked.",
        "",
        quality_markdown(rep.quality) if rep.quality else "None (no compressed runs).\n",
        "Verdicts: A > B when mean_A - mean_B > std_A + std_B, else level. A single seed has no spread "
        "(std 0): between two single-seed methods any difference is a verdict, marked (single seed).",
        "",
    ]
    lines += [verdict_line(v) for v in rep.verdicts] or ["None (fewer than two compressed methods per task)."]
    return "\n".join(lines) + "\n"


def row_dict(r: Row) -> dict:
    cols = columns([r], CSV_COLUMNS, LATENCY_CSV_COLUMNS)
    return dict(zip(cols, csv_cells(r), strict=True), settings_dict={k: r.flat[k] for k in sorted(r.flat)})


def quality_dict(q: Quality) -> dict:
    return {"model": q.task[0], "dataset": q.task[1], "macs_dense": q.task[2], "method": q.method, "seeds": q.seeds,
            "hv_mean": q.mean, "hv_std": q.std, "per_seed": {str(s): q.per_seed[s] for s in q.seeds},
            "y_ref": q.y_ref, "reference": q.reference}  # fmt: skip


def verdict_dict(v: Verdict) -> dict:
    return {"model": v.a.task[0], "dataset": v.a.task[1], "macs_dense": v.a.task[2], "a": v.a.method,
            "b": v.b.method, "gap": v.gap, "spread": v.spread, "verdict": v.text, "note": v.note}  # fmt: skip


def summary_dict(rep: Report, front_rows: Sequence[tuple[str, Row]]) -> dict:
    return {
        "rows": [row_dict(r) for r in rep.rows],
        "fronts": [{"scope": s, **row_dict(r)} for s, r in front_rows],
        "selection": dataclasses.asdict(rep.selection),
        "budget_warnings": rep.budget,
        "hypervolume": [quality_dict(q) for q in rep.quality],
        "verdicts": [verdict_dict(v) for v in rep.verdicts],
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
    p.add_argument(
        "--select",
        default="val",
        choices=("val", "test"),
        help="compute fronts and front quality on validation top-1 (when every run has one; default) or test",
    )
    p.add_argument(
        "--x",
        default="macs",
        choices=("macs", "latency"),
        help="cost axis of fronts, tables and plot: counted MACs (default) or measured latency",
    )
    p.add_argument("--runtime", default="onnxruntime/cpu", help="with --x latency: the recorded runtime/device")
    p.add_argument("--batch", type=int, default=64, help="with --x latency: the batch size (default 64)")
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
        axis = latency_axis(args.runtime, args.batch) if args.x == "latency" else MACS
        rep = build_report(args.paths, args.out, split=args.split, select=args.select, axis=axis)
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
