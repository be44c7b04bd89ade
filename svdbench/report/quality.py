"""The checks and measures over rows: budget warnings, the hypervolume of each method's front per seed
(:class:`Quality`) and the pairwise verdicts between methods (:class:`Verdict`).

Budget: within a task, compressing runs whose recorded budgets differ (``epochs_after_start``), or
runs of one seed that started from different checkpoints (``dense_start``), get one warning
(:func:`budget_warnings`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import pareto
from .load import dense_start, epochs_after_start, run_value
from .rows import DENSE, Row, by_task, dense_references, method_order, std, task_name


def _short_hash(h: str) -> str:
    algo, _, hexd = h.partition(":")
    return f"{algo}:{hexd[:12]}" if hexd and len(hexd) > 12 else h


def _differ(digests: set[str]) -> bool:
    """Two digests of one kind differ (digests of different kinds cannot be compared)."""
    kinds: dict[str, set[str]] = {}
    for h in digests:
        kinds.setdefault(h.partition(":")[0], set()).add(h)
    return any(len(hs) > 1 for hs in kinds.values())


def budget_warnings(rows: Sequence[Row]) -> list[str]:
    """One sentence per task whose compressing runs (every non-dense row: dense runs are the starts)
    spent different ``epochs_after_start``, or whose runs of one seed started from different
    ``dense_start`` checkpoints (each seed has its own dense start; a study compares them per seed).
    Runs that did not record a field are not compared on it, nor are digests of different kinds (a
    file's ``sha256:`` by older versions, the tensors' ``tensors-sha256:`` now). Runs whose epochs follow
    a declared rule of their own (``method_details.epochs_rule``: scratch, as many epochs as its
    source took in all) are not compared on the budget either: theirs differs by design."""
    out = []
    for task, rs in by_task(rows).items():
        runs = [x for r in rs if r.method != DENSE for x in r.runs]
        budgeted = [x for x in runs if not (x.rec.method_details or {}).get("epochs_rule")]
        epochs = sorted({e for x in budgeted if (e := epochs_after_start(x)) is not None})
        starts: dict[Any, set[str]] = {}
        for x in runs:
            if (h := dense_start(x)) is not None:
                starts.setdefault(x.rec.seed, set()).add(h)
        mixed = {seed: hs for seed, hs in starts.items() if _differ(hs)}
        parts = []
        if len(epochs) > 1:
            parts.append(f"with different budgets: epochs after the start {', '.join(map(str, epochs))}")
        if mixed:
            per_seed = "; ".join(f"seed {s}: {', '.join(map(_short_hash, sorted(hs)))}" for s, hs in mixed.items())
            parts.append(f"from different dense starts ({per_seed})")
        if parts:
            out.append(f"{task_name(task)} compares runs {'; and '.join(parts)}")
    return out


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
    metric: str = "test"  # val | test: the top-1 it is computed on

    @property
    def n(self) -> int:
        return len(self.per_seed)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_seed.values())

    @property
    def std(self) -> float:
        return std(list(self.per_seed.values()))

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
    (:func:`svdbench.pareto.hypervolume`) of each seed's front above (x = 0, y_ref), on ``key``
    (``top1`` or ``val_top1``)."""
    refs = dense_references(rows)
    metric = "val" if key == "val_top1" else "test"
    out = []
    for task, rs in by_task(rows).items():
        y_ref, how = reference_top1(rs, refs.get(task), key)
        for m in sorted({r.method for r in rs if r.method != DENSE}, key=method_order):
            pts = seed_points([r for r in rs if r.method == m], key)
            hv = {seed: pareto.hypervolume(p, (0.0, y_ref)) for seed, p in pts.items()}
            if hv:
                out.append(Quality(task, m, hv, y_ref, how, metric))
    return out


@dataclass
class Verdict:
    a: Quality
    b: Quality
    text: str  # "A > B", "B > A", "level", or "single seed, no verdict" when one has a single seed
    note: str  # "single seed: no spread", "<method>: single seed", or ""

    @property
    def gap(self) -> float:
        return self.a.mean - self.b.mean

    @property
    def spread(self) -> float:
        return self.a.std + self.b.std


def verdict(a: Quality, b: Quality) -> Verdict:
    """``A > B`` when mean_A - mean_B > std_A + std_B (and the reverse), else ``level``. A method of one seed
    has no spread to back a ranking: ``single seed, no verdict``."""
    v = Verdict(a, b, "level", "")
    if a.n == 1 or b.n == 1:
        v.text = NO_VERDICT
        v.note = "single seed: no spread" if a.n == b.n == 1 else f"{(a if a.n == 1 else b).method}: single seed"
    elif v.gap > v.spread:
        v.text = f"{a.method} > {b.method}"
    elif -v.gap > v.spread:
        v.text = f"{b.method} > {a.method}"
    return v


#: the verdict between two methods where one has a single seed: no spread, so no ranking
NO_VERDICT = "single seed, no verdict"


def verdicts(quality: Sequence[Quality]) -> list[Verdict]:
    """Every pair of methods within a task, in method order."""
    out = []
    for i, a in enumerate(quality):
        out += [verdict(a, b) for b in quality[i + 1 :] if b.task == a.task]
    return out
