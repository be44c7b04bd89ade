"""Loading results.json files: the completed runs (:class:`LoadedRun`), the failed ones and the files left out.

A run's *configuration* is its resolved config minus the seed, the output and input paths and the
bookkeeping keys (:data:`IGNORED_KEYS`): runs of one configuration over several seeds are one row of
the report. :func:`configuration` and the headline lookup (:attr:`LoadedRun.headline`) are kept here,
and only here, so that how a method declares them can change in one place.

A file that is not valid JSON, lacks a required key, or is not ``completed`` is skipped with a
one-line warning on stderr (:func:`warn`); failed runs are also returned as :class:`Failed`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import one_line, printable
from ..jsonfile import UnreadableFile, read_json, read_text
from ..methods import METHODS
from ..results import RESULTS_FILE, RunRecord, comparable_config, comparable_key, find_results
from ..rundir import superseded_failure

#: config keys (dotted, prefixes included) that do not define a configuration: the seed, where data,
#: outputs and checkpoints live, logging, and evaluation-only settings. ``init_from`` is replaced
#: by whether it is set. A method's ``Config.point_keys`` (SVD training's ``energies``) are left out
#: too: they only ask for operating points, each a result at its own settings.
IGNORED_KEYS = (
    "seed", "hydra", "logger", "resume", "checkpoint", "keep_checkpoints", "save_model", "init_from",
    "dataset.root", "dataset.download", "trainer.progress", "trainer.num_workers", "trainer.eval_batch_size",
    "trainer.epoch_eval",
)  # fmt: skip


def warn(msg: str) -> None:
    print(f"warning: {printable(msg)}", file=sys.stderr)


@dataclass
class LoadedRun:
    """One completed run as the report reads it: where its results.json is, its record, its configuration."""

    path: Path
    rec: RunRecord
    flat: dict  # the configuration: dotted config keys -> values, IGNORED_KEYS removed

    @property
    def method(self) -> str:
        return self.rec.method

    @property
    def task(self) -> tuple[str, str, int]:
        """(model, dataset, dense MACs): rows are compared within a task."""
        return (self.rec.model, self.rec.dataset, int(self.rec.macs_dense))

    @property
    def headline(self) -> tuple[str, ...]:
        """The settings the method shows first: as recorded (keys where the comparable config puts them),
        else its registered config's (older files)."""
        if self.rec.headline is not None:
            return tuple(comparable_key(k) for k in self.rec.headline)
        cls = METHODS.find(self.rec.method)
        return cls.Config.headline if cls is not None else ()


@dataclass
class Failed:
    """A run recorded as failed: the report lists it with its error."""

    path: Path
    method: str
    model: str
    dataset: str
    seed: Any
    error: str


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
    (:func:`svdbench.results.comparable_config`) without :data:`IGNORED_KEYS` and the method's
    ``point_keys``, its ``path_keys`` as set or not (where the method is registered in this process)."""
    cls = METHODS.find(method)
    ignored = (*IGNORED_KEYS, *(f"method.{k}" for k in (cls.Config.point_keys if cls is not None else ())))
    flat = flatten(comparable_config(config, method))
    out = {k: v for k, v in flat.items() if not any(k == i or k.startswith(i + ".") for i in ignored)}
    for key in cls.Config.path_keys if cls is not None else ():  # a path that differs per seed: set or not
        if f"method.{key}" in out:
            out[f"method.{key}"] = bool(out[f"method.{key}"])
    out["init_from"] = bool(config.get("init_from"))
    return out


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def run_value(run: LoadedRun, key: str) -> float | None:
    """A run's ``top1`` or ``val_top1`` (%), None when absent or not a percentage."""
    v = getattr(run.rec, key)
    return float(v) if is_number(v) and 0 <= v <= 100 else None


def epochs_after_start(run: LoadedRun) -> int | None:
    v = run.rec.epochs_after_start
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def dense_start(run: LoadedRun) -> str | None:
    v = run.rec.dense_start
    return v if isinstance(v, str) and v else None


def load_runs(paths: Iterable[str | Path]) -> tuple[list[LoadedRun], list[Failed], list[tuple[Path, str]]]:
    """(completed runs, failed runs, skipped files with the reason), warning once per file left out."""
    runs: list[LoadedRun] = []
    failed: list[Failed] = []
    skipped: list[tuple[Path, str]] = []
    cut: set[Path] = set()  # the directories of completed runs whose operating points are not all made

    def skip(path: Path, why: str) -> None:
        skipped.append((path, why))
        warn(f"skipping {path}: {why}")

    stamps: dict[Path, tuple | None] = {}
    for path in find_results(paths):
        stamps[path] = _stamp(path)
        try:
            data = json.loads(read_text(path))
        except UnreadableFile as err:  # a file that grew past any record's size (a FIFO is left out before)
            skip(path, str(err))
            continue
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            skip(path, f"not valid JSON ({one_line(err, with_type=True)})")
            continue
        try:
            rec = RunRecord.from_dict(data)
        except (ValueError, TypeError) as err:
            skip(path, one_line(err))
            continue
        if rec.status == "failed":
            if superseded_failure(path, data):  # the job's own completed run is there now: no longer a failure
                continue
            error = " ".join(str(rec.error or "no reason recorded").split())
            failed.append(Failed(path, rec.method, rec.model, rec.dataset, rec.seed, error))
            skip(path, f"failed run ({error[:200]})")
            continue
        if rec.status != "completed":
            skip(path, f"status {rec.status!r}, not completed (partial run)")
            continue
        missing = pending_points(rec, path.parent)
        if missing:
            total = len(rec.operating_points or [])
            skip(path, f"{len(missing)} of {total} operating points pending ({', '.join(missing)}): the run was cut "
                       "during its points (or is still making them); rerun it to finish them")  # fmt: skip
            cut.add(path.parent)
            continue
        gone = gone_points(rec, path.parent)
        if gone:
            skip(path, f"operating point {gone[0]} is recorded as made, but its results.json is gone (moved or "
                       "removed): the run is counted whole or not at all; rerun it to make it again")  # fmt: skip
            cut.add(path.parent)
            continue
        runs.append(LoadedRun(path, rec, configuration(rec.config, rec.method)))
    for run in [r for r in runs if r.rec.point_of is not None and r.path.parent.parent in cut]:
        runs.remove(run)  # a point of a run whose other points are missing: the run is counted whole or not at all
        skip(run.path, f"an operating point of {run.path.parent.parent}, whose other points are pending or gone")
    mains = {r.path.parent for r in runs if r.rec.point_of is None}
    for run in [r for r in runs if r.rec.point_of is not None and r.path.parent.parent not in mains]:
        why = _without_main(run, stamps)
        if why:  # its run's main result is gone or left out: the run is counted whole or not at all
            runs.remove(run)
            skip(run.path, why)
    for run in _changed_while_read(runs, stamps):
        runs.remove(run)
        skip(run.path, CHANGED)
    return runs, failed, skipped


def _without_main(point: LoadedRun, read: dict[Path, tuple | None]) -> str | None:
    """Why the operating point ``point`` is left out when the main result of its run was not loaded: that main
    result was read and left out (``read``: the files read), is gone, or is not a completed run listing the point
    as made. None: its run is whole, only outside the paths reported (a point's own directory was given)."""
    run_dir = point.path.parent.parent
    main = run_dir / RESULTS_FILE
    whole = "the run is counted whole or not at all"
    if main in read:
        return f"an operating point of {run_dir}, whose main result was left out (see its warning): {whole}"
    if not os.path.lexists(main):
        return f"an operating point of {run_dir}, whose main result {main} is gone (moved or removed): {whole}"
    try:
        rec = RunRecord.from_dict(read_json(main))
    except (OSError, ValueError, TypeError, AttributeError) as err:
        return f"an operating point of {run_dir}, whose main result cannot be read ({one_line(err)}): {whole}"
    if rec.status != "completed" or point.path.parent.name not in rec.made_points():
        return f"an operating point of {run_dir}, whose main result does not list it as made: {whole}"
    return None


CHANGED = (
    "it or another result of its run (main result, operating points) changed or went while read (a run "
    "replaced or resumed meanwhile): the run is counted whole or not at all"
)


def _stamp(path: Path) -> tuple | None:
    """What identifies the file at ``path`` and its content's version: device, inode, size, modification time."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _changed_while_read(runs: list[LoadedRun], stamps: dict[Path, tuple | None]) -> list[LoadedRun]:
    """The runs of every run directory (a main result with its operating points) of which a file is not as it was
    when read (a run replaced with ``resume=false`` removes its points, then its results), or one of whose
    completed points, found among the files to read, was not loaded (gone before it was read): they were not read
    as one run."""
    family = {r.path: (r.path.parent.parent if r.rec.point_of is not None else r.path.parent) for r in runs}
    broken = {family[r.path] for r in runs if _stamp(r.path) != stamps.get(r.path)}
    loaded = {r.path for r in runs}
    for r in runs:
        made = [r.path.parent / label / RESULTS_FILE for label in r.rec.made_points()]
        if r.rec.point_of is None and any(p in stamps and p not in loaded for p in made):
            broken.add(r.path.parent)
    return [r for r in runs if family[r.path] in broken]


def gone_points(rec: RunRecord, run_dir: Path) -> list[str]:
    """The labels of the operating points ``rec`` (a completed main result in ``run_dir``) records as completed
    whose results.json is no longer there (its directory moved or removed since)."""
    return [label for label in rec.made_points() if not os.path.lexists(run_dir / label / RESULTS_FILE)]


def pending_points(rec: RunRecord, run_dir: Path) -> list[str]:
    """The labels of the operating points ``rec`` (a completed main result in ``run_dir``) lists as not made yet
    (``pending``: a run cut during its points, or still making them) and whose directory holds no completed result
    either; a failed point is a failed run."""
    missing = []
    for point in rec.operating_points or []:
        if not isinstance(point, dict) or point.get("status") in ("completed", "failed"):
            continue
        label = str(point.get("label"))
        try:
            made = read_json(run_dir / label / RESULTS_FILE)  # a FIFO or a device: not made
            done = made.get("status")
            whose = made.get("point_of")  # a run of its own put there (moved, copied) is not this run's point
            mine = isinstance(whose, str) and os.path.realpath(whose) == os.path.realpath(run_dir)
        except (OSError, ValueError, AttributeError, TypeError):
            done, mine = None, False
        if done not in ("completed", "failed") or not mine:
            missing.append(label)
    return missing
