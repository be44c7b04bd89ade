"""Matched targets and paired verdicts: methods driven to the same target speed-ups, compared seed by seed.

A run's *target* is ``config.method.speedup`` when it is set, else ``method_details.speedup_target``
(:func:`target_of`); runs without one are not matched. Within a task, a method's runs at one target
are a :class:`Cell` (one run per seed); a method's cells are a :class:`Matched` row of the matched
table. Where one method has several configurations at one target, each is its own row, named after
the settings that tell them apart (``svd (decomposition=channel)``).

Every seed has its own dense start, shared by all methods of that seed: two methods at one target are
compared over the seeds both have (:class:`Paired`), on the per-seed differences of test top-1
d_s = top1_A,s - top1_B,s. Their mean, sample std and n give the 95 % Student-t interval
mean ± t_{0.975, n-1} · std / sqrt(n) (:func:`interval`): ``A above B`` when it lies above zero,
``B above A`` when below, else ``level``; one shared seed has no interval (``single seed, no verdict``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..results import RunRecord
from .load import LoadedRun, is_number, run_value, warn
from .rows import Row, fmt_value, method_order, short_key, std

#: the level of the paired interval
CONFIDENCE = 0.95
#: the reached MAC speed-up is shown where it is further than this (relative) from the target
TARGET_TOLERANCE = 0.02


def target_of(rec: RunRecord) -> float | None:
    """The run's target speed-up: ``config.method.speedup`` when set, else ``method_details.speedup_target``
    (None: no target, or not a positive number)."""
    method = rec.config.get("method") if isinstance(rec.config, dict) else None
    t = method.get("speedup") if isinstance(method, dict) else None
    if t is None and isinstance(rec.method_details, dict):
        t = rec.method_details.get("speedup_target")
    return float(t) if is_number(t) and t > 0 else None


def realized_of(rec: RunRecord, runtime: str, batch: int) -> float | None:
    """The run's realized speed-up, ``latency.runs[runtime].speedup[batch]`` (None: not measured)."""
    try:
        v = rec.latency["runs"][runtime]["speedup"][str(batch)]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return float(v) if is_number(v) and v > 0 else None


def noisy_of(rec: RunRecord, runtime: str, batch: int) -> bool:
    """Whether the run flagged that speed-up as noisy (``latency.runs[runtime].noisy``: its rounds disagreed)."""
    try:
        return str(batch) in rec.latency["runs"][runtime]["noisy"]  # type: ignore[index]
    except (KeyError, TypeError):
        return False


def mac_speedup(rec: RunRecord) -> float:
    """The reached MAC speed-up: dense MACs / MACs (the counts a record is checked for; the ``speedup`` recorded
    beside them is their ratio, and an edited one is not taken)."""
    return rec.macs_dense / max(rec.macs, 1)


def seed_order(s: Any) -> tuple:
    return (s is None, s if isinstance(s, int) else 0, str(s))


def target_name(t: float) -> str:
    """``2x``, ``1.5x``."""
    return f"{t:g}x"


@dataclass
class Cell:
    """One method's runs at one target speed-up in one task: seed -> run."""

    target: float
    runs: dict[Any, LoadedRun] = field(default_factory=dict)

    @property
    def seeds(self) -> list:
        return sorted(self.runs, key=seed_order)

    def top1(self, seed: Any) -> float:
        return self.runs[seed].rec.top1  # type: ignore[return-value]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.top1(s) for s in self.runs)

    @property
    def std(self) -> float:
        return std([self.top1(s) for s in self.runs])

    @property
    def reached(self) -> float:
        """The mean reached MAC speed-up."""
        return statistics.fmean(mac_speedup(x.rec) for x in self.runs.values())

    @property
    def off_target(self) -> bool:
        """The reached MAC speed-up is more than :data:`TARGET_TOLERANCE` from the target."""
        return abs(self.reached / self.target - 1) > TARGET_TOLERANCE

    def realized(self, runtime: str, batch: int) -> float | None:
        """The mean realized speed-up over the seeds that measured it (None: none did)."""
        vals = [v for x in self.runs.values() if (v := realized_of(x.rec, runtime, batch)) is not None]
        return statistics.fmean(vals) if vals else None

    def noisy(self, runtime: str, batch: int) -> bool:
        """Whether a seed's realized speed-up is flagged as noisy (:func:`noisy_of`)."""
        return any(noisy_of(x.rec, runtime, batch) for x in self.runs.values())


@dataclass
class Matched:
    """One method (a row of the matched table) in one task: its cells by target."""

    task: tuple[str, str, int]
    method: str  # as the report shows it, with the settings that tell its configurations at a target apart
    cells: dict[float, Cell] = field(default_factory=dict)
    task_seeds: tuple = ()  # every seed of the task's matched runs: a cell with fewer shows its n


def _labels(members: Sequence[tuple[Row, float]]) -> dict[int, str]:
    """id(row) -> its name in the matched table: the method, with the settings that vary among its
    configurations at one target (in one task) where there are several."""
    by_target: dict[float, list[Row]] = {}
    for row, t in members:
        if all(r is not row for r in by_target.setdefault(t, [])):
            by_target[t].append(row)
    keys: set[str] = set()
    for rows in by_target.values():
        for k in {k for r in rows for k in r.flat}:
            if len({repr(r.flat.get(k)) for r in rows}) > 1 and not k.endswith("_target_"):
                keys.add(k)
    out = {}
    for row, _ in members:
        parts = [f"{short_key(k)}={fmt_value(row.flat.get(k))}" for k in sorted(keys)]
        out[id(row)] = f"{row.method} ({', '.join(parts)})" if parts else row.method
    return out


def matched_rows(rows: Sequence[Row]) -> list[Matched]:
    """The matched table: per task, each method's runs with a target, by target and seed."""
    groups: dict[tuple, list[tuple[Row, float]]] = {}
    for r in rows:
        targets = {round(t, 9) for x in r.runs if (t := target_of(x.rec)) is not None}
        for t in sorted(targets):
            groups.setdefault((r.task, r.method), []).append((r, t))
    out: dict[tuple, Matched] = {}
    for (task, _), members in groups.items():
        labels = _labels(members)
        for row, t in members:
            m = out.setdefault((task, labels[id(row)]), Matched(task, labels[id(row)]))
            cell = m.cells.setdefault(t, Cell(t))
            for x in row.runs:
                if target_of(x.rec) is None or round(target_of(x.rec), 9) != t or run_value(x, "top1") is None:
                    continue
                if x.rec.seed in cell.runs:
                    warn(f"skipping {x.path} in the matched table: {m.method} has seed {x.rec.seed} at {t:g}x already")
                    continue
                cell.runs[x.rec.seed] = x
    matched = sorted(out.values(), key=lambda m: (m.task, method_order(m.method)))
    for m in matched:
        seeds = {s for o in matched if o.task == m.task for c in o.cells.values() for s in c.runs}
        m.task_seeds = tuple(sorted(seeds, key=seed_order))
        m.cells = dict(sorted(m.cells.items()))
    return matched


def targets(matched: Sequence[Matched]) -> list[float]:
    """Every target speed-up found, sorted."""
    return sorted({t for m in matched for t in m.cells})


# ---------------------------------------------------------------- paired verdicts


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """t_{(1 + confidence) / 2, n - 1}: Student's t quantile for a two-sided interval over ``n`` values."""
    from scipy.stats import t  # scipy.stats takes seconds to import: only when a report needs it

    return float(t.ppf((1 + confidence) / 2, n - 1))


def interval(diffs: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float | None]:
    """(mean, sample std, half-width t_{(1+c)/2, n-1} · std / sqrt(n)) of ``diffs``; the half-width is
    None for fewer than two values."""
    n = len(diffs)
    mean, s = statistics.fmean(diffs), std(diffs)
    return mean, s, (t_quantile(n, confidence) * s / math.sqrt(n) if n > 1 else None)


@dataclass
class Paired:
    """Method ``a`` against method ``b`` at one target in one task, over the seeds both have."""

    task: tuple[str, str, int]
    target: float
    a: str
    b: str
    seeds_a: list
    seeds_b: list
    diffs: dict[Any, float]  # shared seed -> top1_a - top1_b
    mean: float | None = None
    std: float | None = None
    half: float | None = None  # the interval's half-width (None: fewer than two shared seeds)
    t: float | None = None  # the t quantile used

    def __post_init__(self) -> None:
        if self.diffs:
            self.mean, self.std, self.half = interval(list(self.diffs.values()))
            self.t = t_quantile(self.n) if self.n > 1 else None

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def seeds(self) -> list:
        return sorted(self.diffs, key=seed_order)

    @property
    def low(self) -> float | None:
        return None if self.half is None else self.mean - self.half  # type: ignore[operator]

    @property
    def high(self) -> float | None:
        return None if self.half is None else self.mean + self.half  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        at = target_name(self.target)
        if not self.diffs:
            return "not compared (no shared seeds)"
        if self.half is None:
            return "single seed, no verdict"
        if self.low > 0:  # type: ignore[operator]
            return f"{self.a} above {self.b} at {at}"
        if self.high < 0:  # type: ignore[operator]
            return f"{self.b} above {self.a} at {at}"
        return "level"

    @property
    def note(self) -> str:
        """Says which seeds were left out, where either method has seeds the other lacks."""
        extra = [(m, s) for m, s in ((self.a, self.seeds_a), (self.b, self.seeds_b)) if len(s) > self.n]
        if not extra:
            return ""
        has = "; ".join(f"{m} has {' '.join(map(str, s))}" for m, s in extra)
        return f"shared seeds {' '.join(map(str, self.seeds))} ({has})" if self.diffs else has


def pair(a: Matched, b: Matched, t: float) -> Paired:
    ca, cb = a.cells[t], b.cells[t]
    shared = [s for s in ca.seeds if s in cb.runs]
    return Paired(a.task, t, a.method, b.method, ca.seeds, cb.seeds, {s: ca.top1(s) - cb.top1(s) for s in shared})


def paired_verdicts(matched: Sequence[Matched], reference: str | None = None) -> list[Paired]:
    """Per task and target: every pair of methods with runs there (in method order), or with
    ``reference`` each method against it (where the reference has runs at that target)."""
    out = []
    for task in sorted({m.task for m in matched}):
        ms = [m for m in matched if m.task == task]
        for t in targets(ms):
            at = [m for m in ms if t in m.cells]
            if reference is None:
                out += [pair(a, b, t) for i, a in enumerate(at) for b in at[i + 1 :]]
            else:
                ref = next((m for m in at if m.method == reference), None)
                out += [pair(m, ref, t) for m in at if ref is not None and m is not ref]
    return out


def check_reference(reference: str | None, matched: Sequence[Matched]) -> None:
    """ValueError (one line, naming the choices) unless ``reference`` is None or a method of the matched table."""
    names = sorted({m.method for m in matched}, key=method_order)
    if reference is None or reference in names:
        return
    if not names:
        raise ValueError(
            f"--reference {reference!r}: no run has a target speed-up "
            "(config.method.speedup or method_details.speedup_target)"
        )
    choices = ", ".join(names)
    raise ValueError(f"--reference {reference!r}: not a method with runs at a target speed-up; one of: {choices}")


@dataclass
class Targets:
    """A report's matched table and paired verdicts, and what they were read with."""

    matched: list[Matched] = field(default_factory=list)
    paired: list[Paired] = field(default_factory=list)
    reference: str | None = None  # --reference: each method against it (None: every pair)
    runtime: str = "onnxruntime/cpu"  # the realized speed-up's runtime/device ...
    batch: int = 64  # ... and batch size


def matched_targets(
    rows: Sequence[Row], reference: str | None = None, runtime: str = "onnxruntime/cpu", batch: int = 64
) -> Targets:
    """The matched table of ``rows`` and its paired verdicts; ValueError for an unknown ``reference``."""
    matched = matched_rows(rows)
    check_reference(reference, matched)
    return Targets(matched, paired_verdicts(matched, reference), reference, runtime, batch)
