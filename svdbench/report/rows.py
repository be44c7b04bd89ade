"""Rows and fronts: one row per configuration (its runs over seeds and their statistics), the dense
reference of each task, the deltas, the selection, and the Pareto fronts.

Rows are compared within a *task*: the same model, dataset and dense MAC count (the dense count
pins the input size and number of classes). The dense reference of a task is its ``dense``
configuration with the most seeds (then the highest mean top-1); ``delta`` is a row's mean top-1
minus the reference's.

Selection (``--select``, default ``val``): fronts and front quality use the mean *validation*
top-1 when every run has one (``val_top1``), else test top-1 (:func:`choose_selection`). Fronts
maximize top-1 and minimize the cost on the report's axis (MACs or measured latency; see
:mod:`svdbench.pareto` for dominance, ties and duplicates), per method and over all methods.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .. import pareto
from ..axes import MACS, Axis
from ..config import Config
from ..methods import METHODS
from ..methods.base import METHOD_GROUPS
from ..results import dotted
from .load import IGNORED_KEYS, LoadedRun, flatten, is_number, run_value, warn

DENSE = "dense"
#: how a config key's prefix is shortened in a row's settings
SHORT = (("method.", ""), ("regularizer.", "reg."), ("trainer.", "tr."), ("dataset.", "ds."), ("model.", "model."))


@dataclass
class Row:
    """One configuration: its runs over seeds and their statistics (``<key>_mean`` and ``<key>_std``
    for top1, val_top1 (when every run has one), macs, params, speedup, compression, and x and xspeed:
    the cost on the axis and the speed-up on it)."""

    method: str
    model: str
    dataset: str
    task: tuple[str, str, int]
    flat: dict
    runs: list[LoadedRun]
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

    @property
    def front_mark(self) -> str:
        """``overall`` (on its task's front of all methods), ``method`` (on its method's only) or ``""``."""
        return "overall" if self.on_overall_front else ("method" if self.on_method_front else "")


class Member(NamedTuple):
    """A row on a front: ``scope`` is ``overall`` or the name of the method whose front it is on."""

    scope: str
    row: Row


@dataclass(frozen=True)
class Selection:
    """What the fronts and front quality are computed on."""

    requested: str  # val | test (--select)
    metric: str  # val | test: what was used
    reason: str  # one line for report.md

    @property
    def key(self) -> str:
        return "val_top1" if self.metric == "val" else "top1"


def std(xs: Sequence[float]) -> float:
    """The sample standard deviation, 0 for a single value."""
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def method_order(m: str) -> tuple[int, str]:
    """Dense first, then by name."""
    return (0 if m == DENSE else 1, m)


def task_name(task: tuple) -> str:
    return f"{task[0]}/{task[1]}"


def group_rows(runs: Sequence[LoadedRun], axis: Axis = MACS) -> list[Row]:
    """One row per (method, task, configuration); fronts are marked later (:func:`mark_fronts`). Two
    runs of one configuration with the same seed are the same run found twice (a copied directory, or
    an energy-sweep point equal to its parent): the first by path is kept, the other skipped with a warning."""
    groups: dict[tuple, list[LoadedRun]] = {}
    for r in runs:
        key = (r.method, r.task, tuple(sorted((k, repr(v)) for k, v in r.flat.items())))
        groups.setdefault(key, []).append(r)
    rows = []
    for (method, task, _), members in groups.items():
        kept: dict[Any, LoadedRun] = {}
        for r in sorted(members, key=lambda r: str(r.path)):
            seed = r.rec.seed
            if seed in kept:
                warn(f"skipping {r.path}: same configuration and seed {seed} as {kept[seed].path}")
                continue
            kept[seed] = r
        rs = list(kept.values())
        row = Row(method, task[0], task[1], task, rs[0].flat, rs, axis=axis)
        for key in ("top1", "macs", "params", "speedup", "compression"):
            vals = [float(getattr(r.rec, key)) for r in rs if is_number(getattr(r.rec, key))]
            if key == "speedup":  # from the counts the record was checked for, never a ratio recorded beside them
                vals = [r.rec.macs_dense / max(r.rec.macs, 1) for r in rs]
            if key == "compression":
                vals = [r.rec.params_dense / max(r.rec.params, 1) for r in rs]
            row.stats[f"{key}_mean"] = statistics.fmean(vals)
            row.stats[f"{key}_std"] = std(vals)
        for key, vals in (
            ("x", [axis.value(r.rec) for r in rs]),
            ("xspeed", [axis.dense(r.rec) / axis.value(r.rec) for r in rs]),
        ):
            row.stats[f"{key}_mean"], row.stats[f"{key}_std"] = statistics.fmean(vals), std(vals)
        vals = [run_value(r, "val_top1") for r in rs]
        if None not in vals:  # a row without a validation top-1 for every seed shows none
            row.stats["val_top1_mean"] = statistics.fmean(vals)
            row.stats["val_top1_std"] = std(vals)
        rows.append(row)
    _settings(rows)
    _deltas(rows)
    rows.sort(key=lambda r: (r.task, method_order(r.method), -r.mean("macs"), -r.mean("top1"), r.settings))
    return rows


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
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
    configurations of the same method, where the row has it set to other than the schema's default (a headline
    key that varies is shown at its default too: ``speedup=2``, ``decomposition=channel``)."""
    by_method: dict[str, list[Row]] = {}
    for r in rows:
        by_method.setdefault(r.method, []).append(r)
    for rs in by_method.values():
        keys = sorted({k for r in rs for k in r.flat})
        varying = [k for k in keys if len({repr(r.flat.get(k)) for r in rs}) > 1 and not k.endswith("_target_")]
        headline = rs[0].runs[0].headline
        head = [k for k in headline if k not in varying]
        defaults = schema_defaults(rs[0].runs[0].rec.method)
        for r in rs:  # a varying key where the row has it unset or at its default (but a headline one): not shown
            parts = [f"{short_key(k)}={fmt_value(r.flat[k])}" for k in head if r.flat.get(k) is not None]
            shown = [k for k in varying if r.flat.get(k) is not None
                     and (k in headline or r.flat.get(k) != defaults.get(k, MISSING))]  # fmt: skip
            parts += [f"{short_key(k)}={fmt_value(r.flat[k])}" for k in shown]
            r.settings = ", ".join(parts)


MISSING = object()


@functools.cache
def schema_defaults(method: str) -> dict:
    """The defaults of the config schema for a run of ``method`` (registered in this process), flattened as a
    run's configuration is (``dataset.test_subset``, ``method.energy``, ...); empty where unknown."""
    cls = METHODS.find(method)
    try:
        top = dataclasses.asdict(Config())
        top["method"] = dataclasses.asdict(cls.Config()) if cls is not None else {}
    except Exception:  # a method of one's own whose config needs arguments: no defaults to leave out
        return {}
    return flatten(top)


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
    return Selection(
        requested,
        "test",
        "fronts selected on test top-1: no validation split recorded"
        + (" for every run" if any(r.has("val_top1") for r in rows) else ""),
    )


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


def front_members(rows: Sequence[Row]) -> list[Member]:
    """Every front member, in the rows' order: the overall fronts' first, then the methods' fronts'."""
    overall = [Member("overall", r) for r in rows if r.on_overall_front]
    return overall + [Member(r.method, r) for r in rows if r.on_method_front]


def fronts(rows: Sequence[Row]) -> list[Member]:
    """Every front member by task, overall first, then by method and cost."""
    return sorted(front_members(rows), key=lambda m: (m.row.task, m.scope != "overall", m.scope, m.row.mean("x")))


_ABSENT = object()


def split_methods(runs: Sequence[LoadedRun], keys: Sequence[str]) -> None:
    """Name each run's method after the values of ``keys`` too (dotted config keys, e.g.
    ``method.decomposition``: ``svd`` becomes ``svd (channel)`` and ``svd (spatial)``; a number is shown
    with its key, ``svd (channel, round_to=8)``), so they are separate methods in tables, fronts and
    plot. Runs without the key keep their name; a key no run has is a warning (a typo splits nothing); a
    bookkeeping key (:data:`~.load.IGNORED_KEYS`: the seed, paths, logging) is a ValueError. A key given twice
    counts once, and the dense runs keep their name: they are each task's reference (Δ dense, the fronts' y_ref),
    whatever the methods are split by."""
    keys = list(dict.fromkeys(keys))
    for k in keys:
        ignored = next((i for i in IGNORED_KEYS if k == i or k.startswith(i + ".")), None)
        if ignored is not None:
            raise ValueError(
                f"--split {k}: {ignored} is not part of a configuration (runs that differ only in it are one "
                "configuration; seeds are averaged), so it cannot split methods"
            )
        points = {f"method.{p}" for _, cls in METHODS.items() for p in cls.Config.point_keys}
        if k in points:
            raise ValueError(
                f"--split {k}: it asks a run for operating points, each a result of its own at its own settings "
                "(not part of a configuration), so it cannot split methods: the report shows them apart already"
            )
        inner = sorted({f for r in runs for f in r.flat if f.startswith(f"{k}.")})
        if runs and not any(k in r.flat for r in runs) and inner:
            raise ValueError(f"--split {k}: a group of keys, not a value; give one of its keys (e.g. {inner[0]})")
        if runs and not any(k in r.flat for r in runs):
            held = sorted({repr(v) for r in runs if (v := dotted(r.rec.config, k, _ABSENT)) is not _ABSENT})
            if held:  # recorded, but at its default in every run: the configurations leave it out
                warn(f"--split {k}: every run has it at its default ({', '.join(held)}); nothing is split by it")
            else:
                warn(f"--split {k}: no run's config has this key; nothing is split by it")
    for r in (r for r in runs if r.rec.method != DENSE):  # a word as it is (channel), a number: round_to=8
        found = [(k, r.flat[k]) for k in keys if k in r.flat]
        values = [v if isinstance(v, str) else f"{k.rsplit('.', 1)[-1]}={v}" for k, v in found]
        if values:
            r.rec = dataclasses.replace(r.rec, method=f"{r.rec.method} ({', '.join(values)})")


def _warn_paper(
    runs: Sequence[LoadedRun], left: list[LoadedRun], kept: list[LoadedRun], skipped: list[tuple[Path, str]]
) -> None:
    """One warning for each reason runs were left off the authors' MAC convention, and one for the kept
    runs that decompose Linear layers (``method.decompose_linear``), whose savings that convention misses."""
    why = dict(skipped)
    reasons: dict[str, list[LoadedRun]] = {}
    for r in left:
        reasons.setdefault(why[r.path], []).append(r)
    for reason, rs in reasons.items():
        warn(f"{len(rs)} of {len(runs)} runs are left out: {reason} (first: {rs[0].path})")
    linear = [r for r in kept if r.flat.get("method.decompose_linear") is True]
    if linear:
        warn(
            f"--x macs_paper counts convolutions only: {len(linear)} of {len(kept)} runs decompose Linear layers "
            f"too (method.decompose_linear), whose savings it does not count (first: {linear[0].path})"
        )


def on_axis(runs: Sequence[LoadedRun], axis: Axis, skipped: list[tuple[Path, str]]) -> list[LoadedRun]:
    """The runs with a point on ``axis``; the others are recorded in ``skipped`` with one warning in all."""
    kept, left = [], []
    for r in runs:
        why = axis.missing(r.rec)
        (left if why else kept).append(r)
        if why:
            skipped.append((r.path, why))
    if axis.is_paper:
        _warn_paper(runs, left, kept, skipped)
    elif left:
        warn(
            f"{len(left)} of {len(runs)} runs have no latency figure for {axis.runtime} at batch {axis.batch} and "
            f"are left out (first: {left[0].path}); {_timing_remedy(left, axis)}"
        )
    return kept


def _dict(v: object) -> dict:
    return v if isinstance(v, dict) else {}


def _timing_remedy(left: Sequence[LoadedRun], axis: Axis) -> str:
    """How to give runs without a figure on the latency ``axis`` one: the figures they have (``--runtime``,
    ``--batch``), or the ``svdbench latency`` command that times what the axis asks (``--force`` for runs timed
    already, ``--onnx`` for onnxruntime)."""
    have: set[str] = set()
    for r in left:  # a record of any form (an edited one too): only the figures the axis could read count
        for runtime in _dict(_dict(r.rec.latency).get("runs")):
            for b in _dict(_dict(r.rec.latency["runs"][runtime]).get("deployed")):
                probe = Axis(axis.name, runtime=str(runtime), batch=int(b)) if str(b).isdigit() else None
                if probe is not None and probe.value(r.rec) is not None and len(str(runtime)) <= 60:
                    have.add(f"--runtime {runtime} --batch {b}")
    onnx = " --onnx" if axis.runtime.startswith("onnxruntime") else ""
    timed = any(_dict(r.rec.latency) for r in left)  # latency skips a run timed already, without --force
    command = f"svdbench latency DIR{' --force' if timed else ''}{onnx} --batch-sizes {axis.batch}"
    figures = f"they have figures for {', '.join(sorted(have)[:4])}; or " if have else ""
    return f"{figures}time them with: {command}"
