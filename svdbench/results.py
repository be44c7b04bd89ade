"""results.json: one typed record for every run (:class:`RunRecord`), written atomically.

The pipeline fills a record as the run goes, the command line writes one for a job that fails
before training, and the report and the trackers read them back through :meth:`RunRecord.from_dict`,
which refuses a file that is not a svdbench record in one line (wrong types, out-of-range numbers).

:func:`comparable_config` is the one rule for when two recorded configs describe the same
experiment: the resume check and the report both use it.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .data import DATASET_KEYS
from .held_dirs import check_in_place
from .jsonfile import UnreadableFile, read_json
from .macs import fvcore_version
from .methods import METHODS
from .methods.base import METHOD_GROUPS
from .models import MODELS, OPTIONS, family_options
from .paths import absolute

RESULTS_FILE = "results.json"
#: keys added with a non-null default after runs had been recorded without them: a recorded value
#: equal to that default is the same as the key absent (a method declares its own: ``Config.added``)
ADDED_DEFAULTS = {"model": dict(OPTIONS), "dataset": {"val_size": 0}}
SCHEMA_VERSION = 1
STATUSES = ("running", "completed", "failed", "preempted")
#: keys a completed record must have
REQUIRED = ("method", "model", "dataset", "config", "top1", "macs", "macs_dense", "params", "params_dense")
#: numbers a completed record must carry, with their lower bounds (and top-1 at most 100)
MEASURED = {"top1": 0.0, "macs": 1, "macs_dense": 1, "params": 1, "params_dense": 1}
_BIG = 2**63  # no count in a real record comes near it


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fvcore": fvcore_version(),
        "svdbench": __version__,
    }


@dataclass
class RunRecord:
    """The content of one ``results.json`` (keys in this order; unset optional keys are left out)."""

    status: str  # running | completed | failed | preempted
    method: str
    model: str
    dataset: str
    seed: int | None
    config: dict  # the resolved config (svdbench.pipeline.record_config)
    error: str | None = None  # failed or preempted: the reason
    stage: str | None = None  # a job that failed before training: "input" or "run"
    overrides: list[str] | None = None  # a failed multirun job: its command-line overrides
    job_dir: str | None = None  # a failure recorded beside a sweep's jobs (rundir.FAILED_JOBS): the job's directory
    init_from: str | None = None
    headline: list[str] | None = None  # config keys the report shows for this method
    macs_dense: int | None = None
    params_dense: int | None = None
    input_shape: list[int] | None = None
    samples: dict | None = None  # the samples each split really held: {"train": N, "val": N, "test": N}
    epochs_after_start: int | None = None  # training + fine-tuning epochs after the starting point
    # the weights the run started from, "tensors-sha256:<hex>" (svdbench.checkpoint.state_digest; "sha256:<hex>" of
    # the file in older runs); None: random init
    dense_start: str | None = None
    versions: dict | None = None
    device: str | None = None
    world_size: int | None = None
    accel: dict | None = None
    stage_top1: dict = field(default_factory=dict)
    wall_time: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    ranks: dict = field(default_factory=dict)
    top1: float | None = None  # test top-1 (%) of the deployed model
    val_top1: float | None = None  # the same on the held-out validation split (None: no validation split)
    # the last stage's epoch of the highest test top-1 ({"stage", "epoch", "top1"}), the number the SVD authors'
    # ImageNet code reports: for reproduction tables only, never used for selection, fronts or verdicts
    top1_best_epoch: dict | None = None
    macs: int | None = None
    macs_total: int | None = None
    params: int | None = None
    speedup: float | None = None
    compression: float | None = None
    mac_counter: dict | None = None
    # MACs in the SVD authors' convention (svdbench.paper_macs): {"macs", "dense", "speedup", "convention"};
    # for reproduction tables (svdbench report --x macs_paper), beside fvcore's count of the deployed model
    macs_paper: dict | None = None
    method_details: dict | None = None
    latency: dict | None = None
    model_path: str | None = None
    files: list | None = None  # the files the run wrote in its directory besides results.json (names)
    # the operating points made from this run's trained model: label, status, top1, macs, path and the
    # point's headline settings (``settings``: dotted key -> value)
    operating_points: list | None = None
    point_of: str | None = None  # an operating point: the run directory it was made from
    # its W&B run (logger=wandb): {"id", "dirs" (the offline folders of its legs), "steps"}; svdbench.tracked_runs
    tracking: dict | None = None
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as read

    #: kept in the file even when null
    ALWAYS = ("seed",)
    #: keys of files written before they were renamed: old name -> new name
    RENAMED = {"energy_sweep": "operating_points", "energy_sweep_parent": "point_of"}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name != "extra" and (v is not None or f.name in self.ALWAYS):
                out[f.name] = v
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    def made_points(self) -> list[str]:
        """The labels of the operating points this record lists as made (``status: completed``)."""
        return [str(p.get("label")) for p in self.operating_points or [] if p.get("status") == "completed"]

    def snapshot(self) -> dict[str, Any]:
        """What a checkpoint carries of the record: the progress so far."""
        return copy.deepcopy(
            {"history": self.history, "stage_top1": self.stage_top1, "wall_time": self.wall_time, "ranks": self.ranks}
        )

    def restore(self, snap: dict[str, Any]) -> None:
        """Back to a :meth:`snapshot`; ValueError (one line) for one whose keys or types are not a
        snapshot's (a checkpoint edited or of another version), before anything is changed."""
        check_snapshot(snap)
        for k, v in copy.deepcopy(snap).items():
            setattr(self, k, v)

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """A record read back, checked: ValueError (one line) for anything that is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise ValueError("not a svdbench results file (no status)")
        data = {cls.RENAMED[k] if k in cls.RENAMED and cls.RENAMED[k] not in data else k: v for k, v in data.items()}
        schema = data.get("schema", SCHEMA_VERSION)  # none: a record written by hand, read as this version's
        if type(schema) is not int or schema != SCHEMA_VERSION:
            raise ValueError(f"schema {_short(schema)}: this svdbench reads results of schema {SCHEMA_VERSION} "
                             "(another version of svdbench wrote it?)")  # fmt: skip
        if data["status"] not in STATUSES:
            raise ValueError(f"status {data['status']!r} is not one of {', '.join(STATUSES)}")
        missing = [k for k in REQUIRED if k not in data] if data["status"] == "completed" else []
        if missing:
            raise ValueError(f"missing keys: {', '.join(missing)}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("method", "model", "dataset"):
            values[key] = str(values.get(key, "?")) if isinstance(values.get(key, "?"), (str, int)) else "?"
        seed = values.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32):
            raise ValueError(f"seed is {_short(seed)}, not an integer in [0, 2**32)")
        values.setdefault("seed", None)
        if not isinstance(values.get("config", {}), dict):
            raise ValueError("config is not a mapping")
        if _depth(values.get("config", {})) > MAX_DEPTH:
            raise ValueError(f"config is nested more than {MAX_DEPTH} levels deep")
        values.setdefault("config", {})
        for key in ("stage_top1", "wall_time", "ranks"):
            if not isinstance(values.get(key, {}), dict):
                raise ValueError(f"{key} is not a mapping")
        for key in ("method_details", "latency", "samples", "top1_best_epoch", "macs_paper", "tracking"):
            if values.get(key) is not None and not isinstance(values[key], dict):
                raise ValueError(f"{key} is {_short(values[key])}, not a mapping")
        runs = (values.get("latency") or {}).get("runs")
        if runs is not None and not (isinstance(runs, dict) and all(isinstance(r, dict) for r in runs.values())):
            raise ValueError("latency.runs is not a mapping of runtimes")
        if not isinstance(values.get("history", []), list):
            raise ValueError("history is not a list")
        points = values.get("operating_points")
        if points is not None and (not isinstance(points, list) or not all(isinstance(x, dict) for x in points)):
            raise ValueError(f"operating_points is {_short(points)}, not a list of points")
        if values.get("point_of") is not None and not isinstance(values["point_of"], str):
            raise ValueError(f"point_of is {_short(values['point_of'])}, not a run directory")
        for key in ("headline", "files"):
            v = values.get(key)
            if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
                raise ValueError(f"{key} is {_short(v)}, not a list of names")
        rec = cls(**values, extra={k: v for k, v in data.items() if k not in names and k != "schema"})
        if rec.status == "completed":
            for key, low in MEASURED.items():
                v = getattr(rec, key)
                if not _finite(v) or not low <= v < _BIG or (key == "top1" and v > 100):
                    raise ValueError(f"{key} is {_short(v)}, not a number in range")
        return rec


#: the deepest config a results.json may hold (svdbench writes a few levels; deeper is not a run's)
MAX_DEPTH = 32


def _depth(node: Any) -> int:
    """How deeply ``node`` nests mappings and lists (iteratively: no recursion to overflow); stops counting
    past :data:`MAX_DEPTH`."""
    deepest, todo = 0, [(node, 0)]
    while todo:
        n, d = todo.pop()
        deepest = max(deepest, d)
        if d <= MAX_DEPTH:
            todo += [(c, d + 1) for c in (n.values() if isinstance(n, dict) else n if isinstance(n, list) else ())]
    return deepest


def check_snapshot(snap: Any) -> None:
    """ValueError (one line) unless ``snap`` is what :meth:`RunRecord.snapshot` makes: ``history`` a list
    of mappings, ``stage_top1`` and ``wall_time`` mappings of names to finite numbers, ``ranks`` a mapping."""
    keys = ("history", "stage_top1", "wall_time", "ranks")
    if not isinstance(snap, dict) or sorted(snap) != sorted(keys):
        raise ValueError(f"the record's snapshot does not hold exactly {', '.join(keys)}")
    if not isinstance(snap["history"], list) or not all(isinstance(h, dict) for h in snap["history"]):
        raise ValueError("history is not a list of epochs")
    for key in ("stage_top1", "wall_time", "ranks"):
        if not isinstance(snap[key], dict) or not all(isinstance(k, str) for k in snap[key]):
            raise ValueError(f"{key} is not a mapping of names")
    for key in ("stage_top1", "wall_time"):
        bad = [k for k, v in snap[key].items() if v is not None and not _finite(v)]
        if bad:
            raise ValueError(f"{key}[{bad[0]!r}] is {_short(snap[key][bad[0]])}, not a number")


def dotted(config: dict, key: str, default: Any = None) -> Any:
    """The value at a dotted key (``method.energy``) of a nested config, ``default`` where absent."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _finite(v: Any) -> bool:
    """A real number a float can hold (a 400-digit integer is not one)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return abs(v) < _BIG if isinstance(v, int) else math.isfinite(v)


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _drop_empty(d: Any) -> Any:
    """``d`` with every null or empty-mapping entry of its mappings dropped (recursively)."""
    if isinstance(d, dict):
        return {k: _drop_empty(v) for k, v in d.items() if v is not None and v != {}}
    return d


def comparable_config(config: dict, method: str) -> dict:
    """The part of a recorded config that says which experiment it is, across svdbench versions:

    - an optional key left at null, or an empty mapping, is the same as the key absent (a run made
      before the key existed), and so is a key of :data:`ADDED_DEFAULTS` or of the method's
      ``Config.added`` at its default (``model.shortcut=A``, ``model.block=basic``,
      ``method.orthogonal_epochs=0``, ``method.round_to=1``, ``method.rounding=kept``);
    - ``method._target_`` is left out (the method's registered name identifies it; a module that
      moves does not make another experiment);
    - keys a method renamed are read under their new names;
    - a method's groups (``regularizer``, :data:`~svdbench.methods.base.METHOD_GROUPS`) are read inside
      the method (``method.regularizer``): older runs recorded them at the top level, for every method;
    - the model and dataset settings that the run's model and dataset do not read are left out
      (:func:`relevant`: older runs recorded every built-in key).
    """
    out = relevant(config)
    m = out.get("method")
    cls = METHODS.find(method)
    if isinstance(m, dict):
        m.pop("_target_", None)
        if cls is not None:
            for old, new in cls.Config.renamed.items():
                if old in m and new not in m:
                    m[new] = m.pop(old)
    for group in METHOD_GROUPS:
        node = out.pop(group, None)
        if isinstance(node, dict) and isinstance(m, dict) and cls is not None and group in cls.Config.groups():
            m.setdefault(group, {k: v for k, v in node.items() if k != "_target_"})
    added = {**ADDED_DEFAULTS, "method": cls.Config.added if cls is not None else {}}
    for section, defaults in added.items():
        node = out.get(section)
        if isinstance(node, dict):
            for key, default in defaults.items():
                if key in node and node[key] == default:
                    del node[key]
    return _drop_empty(out)


def relevant(config: dict) -> dict:
    """A copy of a recorded config without the model and dataset settings its model and dataset do not
    read: a ``_target_`` model has no ``family``, ``shortcut`` or ``block``, a family only the options
    its build function takes (:func:`svdbench.models.family_options`); a dataset keeps only its own
    keys of :data:`svdbench.data.DATASET_KEYS` (a ``_target_`` dataset none); an unset ``_target_``
    and empty ``kwargs`` go. What ``--cfg job`` prints and results.json records."""
    out = copy.deepcopy(config)
    model, data = out.get("model"), out.get("dataset")
    if isinstance(model, dict):
        if model.get("_target_"):
            for key in ("family", *OPTIONS):
                model.pop(key, None)
        elif model.get("family") in MODELS:
            for key in set(OPTIONS) - set(family_options(model["family"])):
                model.pop(key, None)
    if isinstance(data, dict):
        own = () if data.get("_target_") else DATASET_KEYS.get(data.get("name"), ())
        for key in {k for keys in DATASET_KEYS.values() for k in keys} - set(own):
            data.pop(key, None)
    for node in (model, data):
        if isinstance(node, dict):
            if node.get("_target_", "") is None:
                del node["_target_"]
            if node.get("kwargs", None) == {}:
                del node["kwargs"]
    return out


def comparable_key(key: str) -> str:
    """A dotted config key where :func:`comparable_config` puts it: a method group's key recorded at the
    top level by older runs (``regularizer.weight``) inside the method (``method.regularizer.weight``)."""
    return f"method.{key}" if key.split(".", 1)[0] in METHOD_GROUPS else key


def _umask_mode(fd: int) -> None:
    """Give a temporary file (``mkstemp`` makes it 0600) the mode a plain ``open`` would: 0666
    less the umask, so a group that may read the run directory can read the results."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` so a crash leaves the old file or none, never half a file; never into a
    locked directory moved or removed meanwhile (DirectoryGone)."""
    path = Path(path)
    check_in_place(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    beside = absolute(path.parent)  # as the system finds it (a '..' after a link is not dropped as text)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=beside)
    try:
        _umask_mode(fd)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        _name(err, path, tmp)
        raise
    return path


def _name(err: BaseException, path: Path, tmp: str) -> None:
    """An OSError while writing ``path`` (through its temporary file ``tmp``) that names no file, or only
    the temporary one (a full disk: "[Errno 28] No space left on device"), raised again naming ``path``."""
    if isinstance(err, OSError) and err.errno is not None and err.filename in (None, "", tmp):
        raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) from None  # the file, in one line


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file, then rename: never a half-written file. The object is
    serialised in memory first and written with plain file I/O, so that a full disk is the OSError
    naming ``path`` (torch's own writer turns it into a RuntimeError and keeps the file open, its space
    taken, until that exception is collected). Never into a locked directory moved or removed meanwhile
    (DirectoryGone)."""
    path = Path(path)
    check_in_place(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    try:
        torch.save(obj, buffer)
    except OSError as err:
        _name(err, path, "")
        raise
    beside = absolute(path.parent)  # as the system finds it (a '..' after a link is not dropped as text)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=beside)
    try:
        _umask_mode(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        _name(err, path, tmp)
        raise
    return path


def write_results(run_dir: str | os.PathLike, record: RunRecord | dict) -> Path:
    data = record.to_dict() if isinstance(record, RunRecord) else {"schema": SCHEMA_VERSION, **record}
    return write_json_atomic(Path(run_dir) / RESULTS_FILE, data)


def read_results(path: str | os.PathLike) -> dict:
    """The dict of a results.json, checked as a :class:`RunRecord` (ValueError otherwise; only a regular file of
    bounded size is read, :func:`svdbench.jsonfile.read_json`)."""
    try:
        data = read_json(path)
    except UnreadableFile as err:  # a FIFO or a runaway file (never read), JSON nested too deeply
        raise ValueError(f"{path}: {err}") from None
    try:
        RunRecord.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return data


def find_results(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every results.json at or below ``paths`` (a file is taken as it is; linked directories below a path are
    followed, each real directory once), sorted, each once; a
    path that does not exist, and a results.json that is not a regular file (a FIFO would hang the
    reader), is a warning on stderr."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(_walk(p)))
        elif p.exists():
            print(f"warning: {p}: not a regular file, skipped", file=sys.stderr)
        else:
            print(f"warning: {p}: no such file or directory", file=sys.stderr)
    irregular = [f for f in found if not f.is_file()]  # a FIFO or device would block the reader: never opened
    for f in irregular:
        print(f"warning: {f}: not a regular file, skipped", file=sys.stderr)
    found = [f for f in found if f.is_file()]
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def _walk(top: Path) -> list[Path]:
    """Every entry named results.json at or below the directory ``top``, going into linked directories too (a
    study gathered as links to its runs), each real directory once: a link to a directory already seen, or to
    one above it (a loop), is not entered again; a directory itself comes before a link to it beside it."""
    found: list[Path] = []
    seen = {os.path.realpath(top)}
    for root, dirs, files in os.walk(top, followlinks=True):
        found.extend(Path(root, n) for n in (*files, *dirs) if n == RESULTS_FILE)
        kept = []
        for d in sorted(dirs, key=lambda d: os.path.islink(os.path.join(root, d))):  # real ones first
            real = os.path.realpath(os.path.join(root, d))
            if real not in seen:
                seen.add(real)
                kept.append(d)
        dirs[:] = kept
    return found


def best_epoch(history: list[dict]) -> dict | None:
    """The epoch of the last stage in ``history`` with the highest test top-1 (the first of equals), as
    ``{"stage", "epoch", "top1"}``; None without a test top-1 per epoch."""
    if not history:
        return None
    last = history[-1].get("stage")
    tested = [h for h in history if h.get("stage") == last and _finite(h.get("test_top1"))]
    if not tested:
        return None
    best = max(tested, key=lambda h: (h["test_top1"], -h["epoch"]))
    return {"stage": last, "epoch": best["epoch"], "top1": best["test_top1"]}
