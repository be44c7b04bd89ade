"""Checkpoints, preemption and the resume policy: nothing finished is lost, a cut run resumes exactly.

A checkpoint is a plain dict of tensors and Python scalars, loadable with
``torch.load(weights_only=True)``, written atomically (temporary file, then rename).
:class:`PreemptionGuard` turns SIGTERM / SIGUSR1 / SIGUSR2 (SLURM preemption) into a flag the training
loop polls; the loop then saves a mid-epoch checkpoint and raises :class:`Preempted`.

The dense checkpoint (``dense.pt``, the starting point ``init_from`` reads) is written and read here
too, and identified by the digest of its tensors (:func:`state_digest`).

Resume policy (:class:`RunCheckpoints`): a run directory holding a completed ``results.json`` of
the same experiment is returned as it is; one holding ``checkpoint.pt`` continues from it, after
the stages whose ``stage_<name>.pt`` it finds; checkpoints of another experiment are refused. "The
same experiment" is :func:`resume_key`: the comparable config without how the run is executed
and measured (:data:`RESUME_IGNORED`).
"""

from __future__ import annotations

import math
import os
import pickle
import signal
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed
from .dense_start import DENSE_CHECKPOINT, dense_checkpoint_path, dense_digest, read_dense_state, state_digest
from .deployed import ARCHITECTURE_FILE, LEGACY_FILE, WEIGHTS_FILE
from .errors import STOP_SIGNALS, CheckpointError, InputError, Preempted, load_failure, one_line, raise_terminated
from .jsonfile import open_regular
from .methods import METHODS
from .results import RESULTS_FILE, RunRecord, atomic_torch_save, check_snapshot, comparable_config, read_results
from .seeding import rng_state, set_rng_state

__all__ = [
    "DENSE_CHECKPOINT",
    "CheckpointError",
    "Preempted",
    "PreemptionGuard",
    "RunCheckpoints",
    "dense_checkpoint_path",
    "architecture",
    "dense_digest",
    "load_checkpoint",
    "load_dense_checkpoint",
    "resume_key",
    "save_checkpoint",
    "save_dense_checkpoint",
    "state_digest",
]

CHECKPOINT = "checkpoint.pt"
#: the trained dense weights of a run (a plain state_dict): the starting point ``init_from`` reads
#: the deployed model as data (svdbench.deployed), and the pickled model of older versions
DEPLOYED_FILES = (ARCHITECTURE_FILE, WEIGHTS_FILE, LEGACY_FILE)
#: the training stages of a run; stage files exist for those a later stage follows
STAGES = ("pretrain", "orthogonal", "train", "finetune")
#: the stages a compressed model (an operating point) starts after
BEFORE_COMPRESS = STAGES[:3]
#: top-level config keys that say how a run is executed and measured, not what it is
RESUME_IGNORED = ("resume", "keep_checkpoints", "checkpoint", "measure", "logger", "trainer.progress",
                  "trainer.num_workers", "trainer.eval_batch_size", "trainer.epoch_eval", "dataset.root",
                  "dataset.download")  # fmt: skip


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    return atomic_torch_save(state, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True``; any failure is one :class:`CheckpointError` naming the file."""
    path = Path(path)
    try:
        with open_regular(path) as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({load_failure(err, path)})") from None
    if not isinstance(state, dict) or "version" not in state:
        raise CheckpointError(f"checkpoint {path} is not a svdbench checkpoint")
    return state


def _check_progress(state: dict, path: Path) -> None:
    """A checkpoint's record snapshot and training position are of the right types, checked when it is
    read (before any work): CheckpointError in one line naming the file."""
    try:
        check_snapshot(state.get("results"))
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path} does not fit this run ({one_line(err)})") from None
    train = state.get("train")
    if isinstance(train, dict) and not all(_count(train.get(k)) for k in ("epoch", "step_in_epoch")):
        raise CheckpointError(
            f"checkpoint {path} is at epoch {train.get('epoch')!r}, step {train.get('step_in_epoch')!r}: not a position"
        )
    if isinstance(train, dict) and not _count(train.get("step")):
        raise CheckpointError(f"checkpoint {path} is at step {train.get('step')!r} in all: not a position")
    history = train.get("history") if isinstance(train, dict) else []
    if not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
        raise CheckpointError(f"checkpoint {path} does not fit this run (its history is not a list of epochs)")
    if isinstance(train, dict):
        why = _train_state_problem(train)
        if why:
            raise CheckpointError(f"checkpoint {path} does not fit this run ({why})")


def check_position(state: dict[str, Any], path: Path, epochs: dict[str, int]) -> dict[str, Any]:
    """``state``, the latest checkpoint read (:meth:`RunCheckpoints.load`) from ``path``, at a training position
    within ``epochs`` (the planned epochs of each stage), for ``--plan``'s account of a cut run; CheckpointError
    in one line."""
    train = state["train"]
    stage, epoch, step = state["stage"], train["epoch"], train["step_in_epoch"]
    if stage in epochs and (epoch, step) > (epochs[stage], 0):
        raise CheckpointError(f"checkpoint {path} is at epoch {epoch!r}, step {step!r}: not a point of a stage of "
                              f"{epochs[stage]} epochs")  # fmt: skip
    return state


def _train_state_problem(train: dict) -> str | None:
    """What is wrong with a saved training state's optimiser, schedule and generator states (their form,
    not their fit to a model: that is checked when they are loaded), None when nothing is."""
    opt = train.get("optimizer")
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    if not (isinstance(groups, list) and groups and isinstance(opt.get("state"), dict)):
        return "its optimizer state has no parameter groups"
    if not all(isinstance(g, dict) and isinstance(g.get("params"), list) and _real(g.get("lr")) for g in groups):
        return "its optimizer's parameter groups are not lists of parameters with a learning rate"
    if not isinstance(train.get("scheduler"), dict):
        return "its scheduler state is not a mapping"
    sizes = {"torch": torch.get_rng_state().numel(), "data": torch.Generator().get_state().numel()}
    for key in ("rng", "rng_epoch_start"):
        rng = train.get(key)
        if not isinstance(rng, dict) or "torch" not in rng:
            return f"its {key} is not a generator state"
        for name, size in sizes.items():
            t = rng.get(name)
            if name in rng and not (torch.is_tensor(t) and t.dtype == torch.uint8 and t.numel() == size):
                return f"its {key}[{name!r}] is not a generator state of {size} bytes"
    return None


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def architecture(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of ``model``'s state_dict: what a dense checkpoint must match."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def save_dense_checkpoint(model: nn.Module, run_dir: Path) -> str:
    """The trained dense weights (a plain state_dict on the CPU) into ``run_dir/dense.pt``; returns
    their :func:`state_digest`."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(state, run_dir / DENSE_CHECKPOINT)
    return state_digest(state)


def _listed(names: list[str], limit: int = 3) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_architecture(state: dict[str, Any], want: dict[str, tuple[int, ...]], p: Path) -> None:
    """The tensors of the dense checkpoint ``state`` (read from ``p``) are those of the architecture ``want``
    (names and shapes, :func:`architecture`): InputError naming the missing, unexpected and reshaped ones."""
    have = {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shapes = [f"{k} {have[k]} for {want[k]}" for k in want if k in have and have[k] != want[k]]
    if missing or unexpected or shapes:
        parts = [
            f"{what}: {_listed(names)}"
            for what, names in (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes))
            if names
        ]
        raise InputError(f"init_from: {p} holds another architecture ({'; '.join(parts)})")


def check_dense_fits(path: str | Path, want: dict[str, tuple[int, ...]]) -> None:
    """The dense checkpoint at ``path`` (a ``dense.pt`` or its run directory) is readable and holds the
    architecture ``want``, checked before any work (nothing is loaded into a model): InputError in one line."""
    p = dense_checkpoint_path(path)
    check_architecture(read_dense_state(p), want, p)


def load_dense_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load dense weights from ``path`` (a ``dense.pt`` file or the run directory holding one) into
    ``model``; InputError in one line for a missing, unreadable, non-finite or mismatched file (the
    tensors missing, unexpected or of another shape named)."""
    p = dense_checkpoint_path(path)
    state = read_dense_state(p)
    odd = [k for k, v in state.items() if torch.is_tensor(v) and (v.is_meta or v.layout != torch.strided)]
    if odd:
        what = "a meta" if state[odd[0]].is_meta else f"a {str(state[odd[0]].layout).removeprefix('torch.')}"
        raise InputError(f"init_from: {p} holds {what} tensor ({odd[0]}), not weights: not a usable starting point")
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InputError(f"init_from: {p} holds non-finite weights ({bad[0]}): not a usable starting point")
    negative = [k for k, v in state.items() if k.endswith("running_var") and torch.is_tensor(v) and (v < 0).any()]
    if negative:  # a BatchNorm divides by its square root: every output NaN, scored without a word
        raise InputError(f"init_from: {p} holds negative running variances ({negative[0]}): not a usable starting "
                         "point")  # fmt: skip
    check_architecture(state, architecture(model), p)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise InputError(f"init_from: {p} does not load: {one_line(err)}") from None


#: what each kind of checkpoint must hold
LATEST_KEYS = ("config", "stage", "train", "method", "results")
STAGE_KEYS = ("config", "stage", "model", "method", "rng", "results")
TRAIN_KEYS = ("model", "optimizer", "scheduler", "history", "step", "epoch", "step_in_epoch", "rng", "rng_epoch_start",
              "sums")  # fmt: skip


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _fits(state: Any, net: nn.Module, path: Path) -> None:
    """The model state of a checkpoint has ``net``'s tensors, names and shapes, all finite: CheckpointError
    otherwise."""
    want = architecture(net)
    have = {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)} if isinstance(state, dict) else {}
    if have != want:
        other = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have.get(k)]
        raise CheckpointError(
            f"checkpoint {path} holds another model ({_listed(other)} differ): use another run "
            "directory or resume=false"
        )
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # edited, or saved by a training that diverged: resuming would only fail on a NaN loss
        raise CheckpointError(
            f"checkpoint {path} holds non-finite weights ({bad[0]}): nothing to resume from; resume=false to start "
            "again"
        )


def remove_orphans(directory: Path) -> list[Path]:
    """Remove the temporary files of atomic writes a killed process left in ``directory``
    (``.checkpoint.pt.*.tmp``, ``.deployed.pt.*.tmp``, ...): only of the names svdbench writes, only files
    (a link goes, not what it points to). Returns them."""
    names = (CHECKPOINT, *(f"stage_{s}.pt" for s in STAGES), RESULTS_FILE, DENSE_CHECKPOINT, *DEPLOYED_FILES)
    left = [p for name in names for p in Path(directory).glob(f".{name}.*.tmp") if p.is_file() or p.is_symlink()]
    for p in left:
        p.unlink(missing_ok=True)
    return left


def _check_start(state: dict, path: Path, start: str | None) -> None:
    """A checkpoint of a run that started from other ``init_from`` weights (its ``start`` digest differs
    from ``start``, this run's) is refused: resuming would mix two starting points and record the wrong one."""
    saved = state.get("start")
    if start is not None and saved is not None and saved != start:
        raise CheckpointError(
            f"checkpoint {path} continues from other init_from weights than those there now (the dense run was "
            "replaced since this run started): resume=false to start again from the new ones"
        )


def _require(state: dict, keys: tuple[str, ...], path: Path) -> dict:
    """``state`` holds ``keys``, and (a checkpoint's top level) its version is 1, its stage one of
    :data:`STAGES`, its config a mapping and its process count a positive integer; CheckpointError naming
    ``path`` otherwise."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}: not written by this svdbench")
    problems = {
        "version": lambda v: v == 1,
        "stage": lambda v: v in STAGES,
        "config": lambda v: isinstance(v, dict),
        "world_size": lambda v: _count(v) and v >= 1,
    }
    for key, ok in problems.items():
        if key in state and not ok(state[key]):
            what = f"{key} {_short_repr(state[key])}"
            raise CheckpointError(f"checkpoint {path} has {what}: not written by this svdbench")
    return state


def _short_repr(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


class PreemptionGuard:
    """Within ``with PreemptionGuard() as g:``, SIGTERM, SIGUSR1 and SIGUSR2 set ``g.signum`` instead of
    killing the process (so does ``orphaned()`` turning true: SIGTERM). ``chain()`` afterwards calls the
    handlers that were installed before (e.g. submitit's requeue handler), so a cluster launcher still sees
    the signal."""

    #: SIGTERM (kill, scancel), SIGUSR1 (SLURM --signal=USR1@...), SIGUSR2 (submitit's default warning)
    SIGNALS = STOP_SIGNALS

    def __init__(self, orphaned: Callable[[], bool] | None = None) -> None:
        self.signum: int | None = None
        self.received = 0  # stop signals received (a stop by orphaned() is none)
        self._previous: dict[int, Any] = {}
        #: polled with the signals: true when the process this one works for is gone or stopping (a sweep's
        #: launching process, killed or stopped by a signal: its workers stop as if they had received SIGTERM)
        self.orphaned = orphaned

    def _handle(self, signum, frame) -> None:
        """The first stop signal stops the stage at its next step; a second raises at once, wherever the stage is
        (waiting for a batch that a stuck DataLoader worker never gives, say): it resumes from its last saved
        checkpoint."""
        self.received += 1
        if self.received > 1:
            raise_terminated(signum, frame)
        self.signum = signum

    def __enter__(self) -> PreemptionGuard:
        for s in self.SIGNALS:
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)

    def __call__(self) -> bool:
        if self.signum is None and self.orphaned is not None and self.orphaned():
            self.signum = signal.SIGTERM
        return self.signum is not None

    def chain(self) -> None:
        """Deliver the caught signal to the handler that was installed before the guard."""
        prev = self._previous.get(self.signum) if self.signum is not None else None
        if callable(prev) and prev is not raise_terminated:  # svdbench's own: the stage has stopped already
            prev(self.signum, None)


def resume_key(config: dict, method: str, resolved: Any = None) -> dict:
    """The part of a recorded config that must match for a run directory to be resumed or kept:
    :func:`~svdbench.results.comparable_config` without :data:`RESUME_IGNORED` (how and where a run is
    executed, measured and logged: the data's location, evaluation batch size, workers, progress bars),
    with ``init_from`` as the dense checkpoint file it names (links resolved). ``resolved``: the absolute
    ``init_from`` the run itself resolved (results.json's top-level one), taken for a relative
    ``config.init_from`` (recorded so by an older svdbench), which this process's directory cannot resolve."""
    key = comparable_config(config, method)
    start = key.get("init_from")
    if isinstance(start, str) and start.strip():  # one starting point however it is written: D, D/, D/dense.pt
        if not os.path.isabs(os.path.expanduser(start)) and isinstance(resolved, str) and os.path.isabs(resolved):
            start = resolved
        key["init_from"] = os.path.realpath(dense_checkpoint_path(os.path.expanduser(start)))
    model = key.get("model")
    kwargs = model.get("kwargs") if isinstance(model, dict) else None
    if isinstance(kwargs, dict) and isinstance(kwargs.get("checkpoint_path"), str) and kwargs["checkpoint_path"]:
        kwargs["checkpoint_path"] = os.path.realpath(os.path.expanduser(kwargs["checkpoint_path"]))  # as init_from
    m, cls = key.get("method"), METHODS.find(method)
    for name in cls.Config.path_keys if isinstance(m, dict) and cls is not None else ():
        if isinstance(m.get(name), str) and m[name].strip():  # recorded relative by an older svdbench, or absolute
            m[name] = os.path.realpath(os.path.expanduser(m[name]))
    for dotted in RESUME_IGNORED:
        *parents, leaf = dotted.split(".")
        node = key
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return key


def first_difference(a: dict, b: dict, prefix: str = "") -> tuple[str, Any, Any]:
    """The first dotted key whose value differs between two nested dicts, and both values
    (``<absent>`` where one side lacks it)."""
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if va != vb:
            if isinstance(va, dict) and isinstance(vb, dict):
                return first_difference(va, vb, f"{prefix}{k}.")
            return f"{prefix}{k}", va, vb
    return prefix.rstrip(".") or "config", a, b


class RunCheckpoints:
    """The checkpoints of one run directory: ``checkpoint.pt`` (the latest epoch, or a mid-epoch
    point on preemption) and ``stage_<name>.pt`` (the model at the end of each training stage but
    the last, from which the deterministic compress step is replayed on resume)."""

    def __init__(self, run_dir: Path, config: dict, method: str, enabled: bool = True) -> None:
        self.dir, self.enabled, self.method = Path(run_dir), enabled, method
        self.key = resume_key(config, method)
        self.latest: dict | None = None
        self.stages: dict[str, dict] = {}

    def _check_config(self, state: dict, path: Path) -> None:
        snapshot = state.get("results")
        start = snapshot.get("init_from") if isinstance(snapshot, dict) else None
        theirs = resume_key(state.get("config", {}), self.method, start)
        if theirs != self.key:
            key, there, here = first_difference(theirs, self.key)
            raise InputError(
                f"{path} belongs to a run of another config ({key}: {there} there, {here} here): use "
                "another run directory, or resume=false to start again"
            )

    def other_experiment(self) -> str | None:
        """Why this directory is not ours to write: it records a run of another experiment (its
        results.json differs from this run's config; the first differing key is named), or an
        unreadable results.json. None when the directory is free or holds this experiment."""
        path = self.dir / RESULTS_FILE
        if not path.is_file():
            return None
        try:
            res = read_results(path)
        except (ValueError, OSError) as err:
            return f"{path} is not a readable svdbench result ({one_line(err)}): use another run directory"
        if res.get("method") != self.method:
            key, there, here = "method", res.get("method"), self.method
        else:
            theirs = resume_key(res.get("config", {}), self.method, res.get("init_from"))
            if theirs == self.key:
                return None
            key, there, here = first_difference(theirs, self.key)
        return (
            f"{self.dir} holds a {res.get('status')} run of another config ({key}: {there} there, {here} here): "
            "use another run directory, or resume=false to replace it"
        )

    def completed(self) -> dict | None:
        """The completed results.json of this experiment in the directory, if there is one: not while
        ``checkpoint.pt`` is there (a run cut, or one whose operating points are not all made), unless the run
        kept it on purpose (``keep_checkpoints=true``) and every point is made: such a run is done, and a rerun
        that resumed it would rewrite its record (a latency measured since, lost)."""
        path = self.dir / RESULTS_FILE
        if not path.is_file():
            return None
        try:
            res = read_results(path)
        except (ValueError, OSError):
            return None
        points = res.get("operating_points") or []
        made = all(isinstance(p, dict) and p.get("status") == "completed" for p in points)
        kept = (res.get("config") or {}).get("keep_checkpoints") is True and made
        if (self.dir / CHECKPOINT).exists() and not kept:
            return None
        theirs = resume_key(res.get("config", {}), self.method, res.get("init_from"))
        same = res.get("method") == self.method and theirs == self.key
        return res if res.get("status") == "completed" and same else None

    def load(self, start: str | None = None) -> None:
        """Read ``checkpoint.pt`` and the stage files, refusing those of another experiment, and (``start``:
        the digest of this run's ``init_from`` weights) those of a run that started from other weights."""
        path = self.dir / CHECKPOINT
        if not path.is_file():
            return
        self.latest = _require(load_checkpoint(path), LATEST_KEYS, path)
        _require(self.latest["train"], TRAIN_KEYS, path)
        self._check_config(self.latest, path)
        _check_start(self.latest, path, start)
        _check_progress(self.latest, path)
        saved_world = self.latest.get("world_size", 1)
        if saved_world != distributed.world_size():  # steps per epoch and the schedule depend on it
            raise InputError(
                f"{path} was written by {saved_world} process(es), this run has "
                f"{distributed.world_size()}: resume with the same torchrun process count"
            )
        for p in self._stage_files():
            st = _require(load_checkpoint(p), STAGE_KEYS, p)
            self._check_config(st, p)
            _check_start(st, p, start)
            _check_progress(st, p)
            self.stages[st["stage"]] = st

    def restore_stage(self, name: str, net: nn.Module, method, record: RunRecord, gen) -> bool:
        """Put the model, method, record and generators back to the end of stage ``name`` if it was
        completed before; False when it was not. A stage file that does not fit is a CheckpointError."""
        st = self.stages.get(name)
        if st is None:
            return False
        path = self.dir / f"stage_{name}.pt"
        _fits(st["model"], net, path)
        try:
            method.load_state_dict(st["method"])
            record.restore(st["results"])
            set_rng_state(st["rng"], gen)
        except Exception as err:  # a state of the right keys but the wrong content
            raise CheckpointError(f"checkpoint {path} does not fit this run ({one_line(err)})") from None
        net.load_state_dict(st["model"])
        return True

    def resume_state(self, name: str, method, record: RunRecord, net: nn.Module, epochs: int, batches: int):
        """The training state to continue stage ``name`` (``epochs`` epochs of ``batches`` batches) of
        ``net`` from (None: start it afresh); a checkpoint that does not fit is a CheckpointError."""
        if self.latest is None or self.latest["stage"] != name:
            return None
        path, train = self.dir / CHECKPOINT, self.latest["train"]
        _fits(train["model"], net, path)
        epoch, step = train["epoch"], train["step_in_epoch"]
        if not (_count(epoch) and _count(step) and (epoch, step) <= (epochs, 0) and step < max(batches, 1)):
            raise CheckpointError(
                f"checkpoint {path} is at epoch {epoch!r}, step {step!r}: not a point of a stage of "
                f"{epochs} epochs of {batches} batches"
            )
        try:
            method.load_state_dict(self.latest["method"])
            record.restore(self.latest["results"])
        except Exception as err:
            raise CheckpointError(f"checkpoint {path} does not fit this run ({one_line(err)})") from None
        return train

    def save_latest(self, name: str, state: dict, method, record: RunRecord) -> None:
        if self.enabled and distributed.is_main():
            ck = {
                "version": 1,
                "config": self.key,
                "stage": name,
                "train": state,
                "method": method.state_dict(),
                "results": record.snapshot(),
            }
            if distributed.world_size() > 1:
                ck["world_size"] = distributed.world_size()
            if record.dense_start is not None:  # the weights it started from: a resume must start from them too
                ck["start"] = record.dense_start
            save_checkpoint(ck, self.dir / CHECKPOINT)
        if self.enabled:
            distributed.barrier()  # a preempted rank must not exit before rank 0 has saved

    def save_stage(self, name: str, net: nn.Module, method, record: RunRecord, gen) -> None:
        if self.enabled and distributed.is_main():
            save_checkpoint(
                {
                    "version": 1,
                    "config": self.key,
                    "stage": name,
                    "model": net.state_dict(),
                    "method": method.state_dict(),
                    "rng": rng_state(gen),
                    "results": record.snapshot(),
                    **({"start": record.dense_start} if record.dense_start is not None else {}),
                },
                self.dir / f"stage_{name}.pt",
            )

    def remove_orphans(self) -> None:
        """Temporary files a killed process left in this run's directory (:func:`remove_orphans`), only while
        this run holds the directory's lock."""
        remove_orphans(self.dir)

    def _stage_files(self) -> list[Path]:
        return [p for p in (self.dir / f"stage_{name}.pt" for name in STAGES) if p.is_file()]

    def remove(self) -> None:
        """Delete the checkpoints this run wrote (and nothing else in the directory)."""
        for p in [self.dir / CHECKPOINT, *self._stage_files()]:
            p.unlink(missing_ok=True)
