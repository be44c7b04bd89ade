"""The pipeline every method goes through:

    data -> model -> method.check -> [pretrain] -> method.prepare -> train -> compress
         -> BatchNorm recalibration -> finetune -> export -> measure -> record,
    then the same compress ... record for each of the method's operating points.

:class:`Run` carries one run through it; :func:`run_experiment` is the plain-Python entry point:
it takes the typed config (``svdbench.config.Config``), a method object and a run directory, and
returns the results dict it wrote to ``run_dir/results.json``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import distributed, lowrank
from .checkpoint import BEFORE_COMPRESS, PreemptionGuard, RunCheckpoints, RunLock, check_run_dir
from .data import DataBundle, load_dataset, val_size
from .errors import DivergedError, InputError, Preempted, one_line
from .latency import run_latency
from .macs import MacCount, analyze_macs, count_params
from .methods.base import Method
from .models import build_from_config, model_label, model_options
from .results import RESULTS_FILE, RunRecord, atomic_torch_save, versions, write_results
from .seeding import rng_state, seed_everything, set_rng_state
from .train import OptimConfig, StageHooks, StageOptions, evaluate, recalibrate_batchnorm, resolve_accel, train_stage

log = logging.getLogger("svdbench")

DENSE_CHECKPOINT = "dense.pt"


def run_experiment(
    cfg, method: Method, run_dir: str | Path, *, config_dict: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run ``method`` under ``cfg`` and write ``results.json`` (and one per operating point).

    Raises :class:`InputError` (nothing written) for bad input found before training; any later
    failure writes ``status: failed`` with the reason, then re-raises. ``config_dict`` is the
    config to record (default: :func:`record_config`); ``on_epoch`` receives every epoch's metrics.
    """
    return Run(cfg, method, run_dir, config_dict=config_dict, on_epoch=on_epoch).execute()


def configure(cfg, method: Method) -> Method:
    """``method`` as it will run under ``cfg``: configured for its starting point
    (:meth:`~svdbench.methods.Method.starting_from`) and, with ``trainer.budget``, its fine-tuning
    given the epochs the budget leaves after training. InputError in one line."""
    try:
        method = method.starting_from(trained=bool(cfg.init_from))
    except ValueError as err:
        raise InputError(one_line(err)) from None
    budget = getattr(cfg.trainer, "budget", None)
    if budget is not None:
        train = epochs_before_compress(cfg, method)
        if budget < train:
            raise InputError(f"trainer.budget={budget} is less than the {train} training epochs before compression "
                             "(trainer.epochs and the method's stages before it)")  # fmt: skip
        if method.finetune_epochs != budget - train:
            method = method.reconfigured(finetune_epochs=budget - train)
    return method


def train_epochs(cfg, method: Method) -> int:
    """Epochs of the ``train`` stage: ``trainer.epochs``, or the method's own (0 for post-hoc methods)."""
    return cfg.trainer.epochs if method.train_epochs is None else method.train_epochs


def epochs_before_compress(cfg, method: Method) -> int:
    """Epochs of every stage from ``prepare`` to ``compress``: the method's stages before ``train``
    (SVD training's ``orthogonal``) and ``train`` itself."""
    return sum(epochs for _, epochs in method.stages_before_train()) + train_epochs(cfg, method)


def record_config(cfg, method: Method) -> dict:
    """The resolved config as results.json records it: the method's own config, the validation split
    actually held out, and the ``regularizer`` only for a method that takes one."""
    out = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else copy.deepcopy(dict(cfg))
    out["method"] = dataclasses.asdict(method.config)
    if isinstance(out.get("dataset"), dict):
        out["dataset"]["val_size"] = val_size(cfg.dataset) or None  # null for none: as before the key existed
    if not method.uses_regularizer:
        out.pop("regularizer", None)
    return out


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file's content: which dense checkpoint a run started from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def dense_checkpoint_path(path: str | Path) -> Path:
    p = Path(path)
    return p / DENSE_CHECKPOINT if p.is_dir() else p


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU. Under torchrun (``WORLD_SIZE > 1``) a CUDA
    process takes GPU ``$LOCAL_RANK`` of its node."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("trainer.device=cuda but no CUDA device is available")
    if name == "cuda" and distributed.world_size() > 1:
        index, count = distributed.local_rank(), torch.cuda.device_count()
        if index >= count:
            raise InputError(f"LOCAL_RANK={index} but this node has {count} CUDA device(s): one process per GPU")
        return torch.device("cuda", index)
    return torch.device(name)


def optim_config(trainer, finetune: bool = False) -> OptimConfig:
    """The optimiser of a training stage (``finetune``: ``trainer.finetune_lr`` and
    ``finetune_schedule`` where set)."""
    lr = (trainer.finetune_lr or trainer.lr) if finetune else trainer.lr
    schedule = (trainer.finetune_schedule or trainer.schedule) if finetune else trainer.schedule
    return OptimConfig(trainer.optimizer, lr, trainer.momentum, trainer.weight_decay, schedule,
                       tuple(trainer.milestones), trainer.gamma)  # fmt: skip


def save_dense_checkpoint(model: nn.Module, run_dir: Path) -> Path:
    """The trained dense weights (a plain state_dict), the starting point ``init_from`` reads."""
    return atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, run_dir / DENSE_CHECKPOINT)


def load_dense_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load dense weights from ``path`` (a ``dense.pt`` file or the run directory holding one)."""
    p = dense_checkpoint_path(path)
    if not p.is_file():
        raise InputError(f"init_from: no dense checkpoint at {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"init_from: cannot read {p}: {one_line(err)}") from None
    if not isinstance(state, dict):
        raise InputError(f"init_from: {p} is not a state_dict")
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InputError(f"init_from: {p} holds non-finite weights ({bad[0]}): not a usable starting point")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise InputError(f"init_from: {p} holds another architecture ({one_line(err)})") from None


class Run:
    """One run of one method in one directory: set up, train, finish, and the operating points.
    Every stage is checkpointed; a rerun in the same directory continues where it stopped."""

    def __init__(
        self, cfg, method: Method, run_dir: str | Path, *, config_dict: dict | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> None:  # fmt: skip
        method = configure(cfg, method)
        self.cfg, self.method, self.dir = cfg, method, Path(run_dir)
        self.config = config_dict if config_dict is not None else record_config(cfg, method)
        self.checkpoints = RunCheckpoints(self.dir, self.config, method.name, enabled=cfg.checkpoint)
        self.on_epoch = on_epoch
        self.guard: PreemptionGuard | None = None

    # ------------------------------------------------------------------ the flow

    def execute(self) -> dict[str, Any]:
        self.t_start = time.perf_counter()
        if distributed.is_main():
            check_run_dir(self.dir)
        with RunLock(self.dir) if distributed.is_main() else contextlib.nullcontext():
            done = self.completed_result()
            if done is not None:
                return done
            self.setup()
            results = self.run()
        self.finish_group()
        return results

    def completed_result(self) -> dict | None:
        """Before any work: refuse a directory that holds another experiment (InputError), and return
        the completed result of this one when it and all its operating points are done (None: there
        is work to do)."""
        if not self.cfg.resume:
            return None
        other = self.checkpoints.other_experiment()
        if other:
            raise InputError(other)
        done = self.checkpoints.completed()
        if done is None or self.pending_points():
            return None
        log.info("run directory %s already holds a completed run of this config", self.dir)
        if self.cfg.measure.latency and not done.get("latency"):
            log.warning("that run was measured without latency (measure.latency=false); to time it, rerun with "
                        "resume=false")  # fmt: skip
        return done

    def pending_points(self) -> list[str]:
        """The operating points without a completed result of their own."""
        return [label for label, m in self.method.operating_points() if self.point_completed(label, m) is None]

    def run(self) -> dict[str, Any]:
        """With the run directory to itself: the main result, then the operating points."""
        points = self.method.operating_points()
        if distributed.is_main():
            self.checkpoints.remove_orphans()
        done = self.checkpoints.completed() if self.cfg.resume else None
        if self.cfg.resume:
            self.checkpoints.load()
        with PreemptionGuard() as self.guard:
            if done is None:
                self.train_and_finish(keep_trained=bool(points))
                self.write(self.record, self.dir)
            else:  # the main result is complete, some operating points are not: back to the trained model
                log.info("run directory %s: completing the operating points %s", self.dir,
                         ", ".join(self.pending_points()))  # fmt: skip
                self.record = RunRecord.from_dict(done)
                self.restore_trained()
            if points:
                self.record.energy_sweep = [self.operating_point(label, m) for label, m in points]
                self.write(self.record, self.dir)
        all_done = all(p["status"] == "completed" for p in self.record.energy_sweep or [])
        if not self.cfg.keep_checkpoints and all_done and distributed.is_main():
            self.checkpoints.remove()  # kept while a point failed: a rerun makes it from the trained model
        if self.guard.signum is not None:  # arrived after the last training step (measuring): hand it on
            self.guard.chain()
            raise Preempted(self.guard.signum, completed=True)
        return self.record.to_dict()

    def setup(self) -> None:
        """Seed, device, process group, data, model, its dense MACs, the method's check, the
        starting point (``init_from``) and the record; raises InputError before any work."""
        cfg, tr = self.cfg, self.cfg.trainer
        seed_everything(cfg.seed, tr.deterministic)
        self.device = resolve_device(tr.device)
        self.owns_group = distributed.init(self.device)  # torchrun: join the process group
        self.accel = resolve_accel(self.device, tr.amp, tr.channels_last, tr.compile, tr.cudnn_benchmark,
                                   tr.deterministic)  # fmt: skip
        torch.backends.cudnn.benchmark = self.accel.cudnn_benchmark
        self.data = self.load_data()
        self.model = self.build_model()
        self.input_shape = (1, *self.data.input_shape)
        try:
            self.dense_count = analyze_macs(self.model, self.input_shape)
        except Exception as err:  # shape errors surface as RuntimeError, AssertionError, ValueError ...
            raise InputError(
                f"model {cfg.model.name} cannot take input {tuple(self.data.input_shape)}: {one_line(err)}"
            ) from None
        try:
            self.method.check(self.model, self.input_shape)
        except ValueError as err:
            raise InputError(one_line(err)) from None
        if cfg.init_from:
            load_dense_checkpoint(self.model, cfg.init_from)
        self.record = self.new_record()
        self.generator = getattr(self.data.train, "generator", None)

    def train_and_finish(self, keep_trained: bool = False) -> None:
        """Dense pretraining where needed, prepare, train, then compress ... measure. With
        ``keep_trained`` the trained model, the random state and the record at the end of training
        are kept (:attr:`trained`) for the operating points. A failure is recorded in results.json
        and re-raised."""
        cfg, method, rec = self.cfg, self.method, self.record
        try:
            model = self.model.to(self.device)
            if method.pretrain_dense and not cfg.init_from:
                self.stage("pretrain", model, Method(), cfg.trainer.epochs, optim_config(cfg.trainer), rec,
                           self.checkpoints)  # fmt: skip
                if distributed.is_main():
                    rec.dense_start = file_digest(save_dense_checkpoint(model, self.dir))
            if cfg.init_from or method.pretrain_dense:
                rec.stage_top1["dense"] = evaluate(model, self.data.test, self.device)["top1"]
            model = method.prepare(model, self.input_shape).to(self.device)
            full = lowrank.ranks(model)
            rec.ranks = {"full": full} if full else {}
            for name, epochs in method.stages_before_train():
                self.stage(name, model, method, epochs, optim_config(cfg.trainer), rec, self.checkpoints)
            self.stage("train", model, method, train_epochs(cfg, method), optim_config(cfg.trainer), rec,
                       self.checkpoints)  # fmt: skip
            if not method.compresses and distributed.is_main():
                save_dense_checkpoint(model, self.dir)
            if keep_trained:
                self.keep_trained(model, rec)
            self.finish(model, method, rec, self.dir, self.checkpoints)
            rec.wall_time["total"] = time.perf_counter() - self.t_start
            rec.status = "completed"
        except Preempted as err:
            rec.status, rec.error = "preempted", f"{err}; rerun the same command to resume"
            self.write(rec, self.dir)
            distributed.barrier()  # every rank stopped at the same step (train_stage agrees on it)
            self.guard.chain()
            raise
        except KeyboardInterrupt:  # Ctrl-C: resumable from the last epoch's checkpoint
            rec.status, rec.error = "preempted", "interrupted (SIGINT); rerun the same command to resume"
            self.write(rec, self.dir)
            raise
        except BaseException as err:
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
            rec.wall_time["total"] = time.perf_counter() - self.t_start
            self.write(rec, self.dir)
            if isinstance(err, DivergedError):  # raised on every rank at the same step
                distributed.barrier()
            raise

    def finish(self, model: nn.Module, method: Method, rec: RunRecord, out_dir: Path,
               checkpoints: RunCheckpoints) -> None:  # fmt: skip
        """compress -> BatchNorm recalibration -> finetune -> export -> measure, into ``rec``."""
        tr = self.cfg.trainer
        if method.compresses:
            t = time.perf_counter()
            method.compress(model)
            model.to(self.device)
            if tr.bn_recalibration_batches:
                rec.stage_top1["pruned_stale_bn"] = evaluate(model, self.data.test, self.device)["top1"]
                recalibrate_batchnorm(model, self.data.train, tr.bn_recalibration_batches, self.device)
            rec.wall_time["compress"] = time.perf_counter() - t
            rec.stage_top1["pruned"] = evaluate(model, self.data.test, self.device)["top1"]
        self.stage("finetune", model, method, method.finetune_epochs, optim_config(tr, finetune=True), rec,
                   checkpoints, last=True)  # fmt: skip
        self.measure(model, method, rec, out_dir)

    def measure(self, model: nn.Module, method: Method, rec: RunRecord, out_dir: Path) -> None:
        """Export the deployed model; its MACs, parameters, top-1 and (``measure.latency``) latency."""
        t = time.perf_counter()
        if rec.ranks:
            rec.ranks["after"] = lowrank.ranks(model)
        deployed = method.export(model).to(self.device).eval()
        count = analyze_macs(deployed, rec.input_shape)
        params = count_params(deployed)
        rec.top1 = evaluate(deployed, self.data.test, self.device)["top1"]
        if self.data.val is not None:
            rec.val_top1 = evaluate(deployed, self.data.val, self.device)["top1"]
        rec.macs, rec.macs_total, rec.params = count.macs, count.macs_total, params
        rec.speedup = self.dense_count.macs / max(count.macs, 1)
        rec.compression = rec.params_dense / max(params, 1)
        rec.mac_counter = {**count.as_dict(), "dense": self.dense_count.as_dict()}
        rec.method_details = method.details()
        measure = self.cfg.measure
        # realized speed beside MACs; under torchrun timed by rank 0 alone while the others wait
        if measure is not None and measure.latency and distributed.is_main():
            t_lat = time.perf_counter()
            rec.latency = run_latency(deployed, self.build_model, rec.input_shape, self.device, measure,
                                      mac_speedup=rec.speedup)  # fmt: skip
            rec.wall_time["latency"] = time.perf_counter() - t_lat
        if self.cfg.save_model and distributed.is_main():
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_torch_save(deployed.cpu(), out_dir / "model.pt")
            rec.model_path = str(out_dir / "model.pt")
        rec.wall_time["measure"] = time.perf_counter() - t

    def keep_trained(self, model: nn.Module, rec: RunRecord) -> None:
        """The starting point of every operating point: a copy of the trained model, the random
        state and the record's progress at the end of the ``train`` stage."""
        self.trained = (copy.deepcopy(model), rng_state(self.generator), rec.snapshot())

    def restore_trained(self) -> None:
        """The trained model again, from ``stage_train.pt``, for operating points a cut run left undone."""
        model = self.method.prepare(self.model.to(self.device), self.input_shape).to(self.device)
        rec = copy.deepcopy(self.record)
        if not self.checkpoints.restore_stage("train", model, self.method, rec, self.generator):
            raise InputError(f"{self.dir} holds a completed run whose operating points are not all done, but "
                             "not its trained model (stage_train.pt): rerun with resume=false")  # fmt: skip
        self.keep_trained(model, rec)

    def point_completed(self, label: str, method: Method) -> dict | None:
        """The completed results.json of operating point ``label``, if there is one."""
        return RunCheckpoints(self.dir / label, self.point_config(method), method.name).completed()

    def point_config(self, method: Method) -> dict:
        return {**copy.deepcopy(self.config), "method": dataclasses.asdict(method.config)}

    def operating_point(self, label: str, method: Method) -> dict:
        """One more result from the trained model: ``method`` (a configured copy) compresses, fine-tunes
        and is measured into ``<run dir>/<label>/results.json`` with checkpoints of its own, starting
        from the random state at the end of training (so a resumed point equals an uninterrupted one).
        A completed point is kept; a failed one is recorded and does not stop the others."""
        point_dir = self.dir / label
        config = self.point_config(method)
        checkpoints = RunCheckpoints(point_dir, config, method.name, enabled=self.cfg.checkpoint)
        done = checkpoints.completed() if self.cfg.resume else None
        if done is not None:
            rec = RunRecord.from_dict(done)
        else:
            rec = self.make_point(method, point_dir, config, checkpoints)
        energy = getattr(method.config, "energy", None)
        return {"energy": energy, "label": label, "status": rec.status, "top1": rec.top1, "macs": rec.macs,
                "path": str(point_dir / RESULTS_FILE)}  # fmt: skip

    def make_point(self, method: Method, point_dir: Path, config: dict, checkpoints: RunCheckpoints) -> RunRecord:
        model, rng, progress = self.trained
        rec = dataclasses.replace(copy.deepcopy(self.record), config=config, status="running", error=None,
                                  energy_sweep=None, energy_sweep_parent=str(self.dir))  # fmt: skip
        rec.restore(progress)
        rec.stage_top1 = {k: v for k, v in rec.stage_top1.items() if k == "dense" or k in BEFORE_COMPRESS}
        rec.wall_time = {k: v for k, v in rec.wall_time.items() if k in BEFORE_COMPRESS}
        for key in ("top1", "val_top1", "macs", "macs_total", "params", "speedup", "compression", "mac_counter",
                    "method_details", "latency", "model_path"):  # fmt: skip
            setattr(rec, key, None)
        if self.cfg.resume:
            checkpoints.load()
        set_rng_state(rng, self.generator)
        t = time.perf_counter()
        try:
            self.finish(copy.deepcopy(model), method, rec, point_dir, checkpoints)
            rec.status = "completed"
        except Preempted as err:
            rec.status, rec.error = "preempted", f"{err}; rerun the same command to resume"
            self.write(rec, point_dir)
            distributed.barrier()
            self.guard.chain()
            raise
        except KeyboardInterrupt:
            rec.status, rec.error = "preempted", "interrupted (SIGINT); rerun the same command to resume"
            self.write(rec, point_dir)
            raise
        except InputError:  # a checkpoint of another experiment in the point's directory
            raise
        except Exception as err:  # one bad point must not lose the others
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
            log.error("%s failed: %s", point_dir.name, one_line(err))
        rec.wall_time["point"] = time.perf_counter() - t
        self.write(rec, point_dir)
        if rec.status == "completed":
            if not self.cfg.keep_checkpoints and distributed.is_main():
                checkpoints.remove()
            log.info("%s: top1 %.2f, speed-up %.2fx", point_dir.name, rec.top1, rec.speedup)
        return rec

    # ------------------------------------------------------------------ pieces

    def stage(self, name: str, net: nn.Module, method: Method, epochs: int, optim: OptimConfig, rec: RunRecord,
              checkpoints: RunCheckpoints, last: bool = False) -> None:  # fmt: skip
        """Train stage ``name`` (or restore it from its checkpoint), recording history, wall time and
        final top-1 into ``rec``; a stage that is not the ``last`` leaves ``stage_<name>.pt``."""
        if checkpoints.restore_stage(name, net, method, rec, self.generator):
            log.info("stage %s restored from its checkpoint", name)
            return

        def record(epoch: dict) -> None:
            rec.history.append(epoch)
            log.info(
                "%s epoch %d: loss %.4f (reg %.4f), train top1 %.2f, test top1 %.2f%s",
                *(epoch[k] for k in ("stage", "epoch", "train_loss", "reg_loss", "train_top1", "test_top1")),
                f", val top1 {epoch['val_top1']:.2f}" if epoch.get("val_top1") is not None else "",
            )
            if self.on_epoch:
                self.on_epoch(epoch)

        resume = checkpoints.resume_state(name, method, rec)
        if resume is not None:
            log.info("resuming stage %s at epoch %d, step %d", name, resume["epoch"] + 1, resume["step_in_epoch"])
        t = time.perf_counter() - rec.wall_time.get(name, 0.0)

        def save(state: dict) -> None:
            rec.wall_time[name] = time.perf_counter() - t
            checkpoints.save_latest(name, state, method, rec)

        progress = self.cfg.trainer.progress and distributed.is_main()
        options = StageOptions(epochs, optim, name, self.device, progress=progress, accel=self.accel,
                               ddp=distributed.world_size() > 1)  # fmt: skip
        hooks = StageHooks(on_epoch=record, save=save, stop=self.guard, resume=resume)
        train_stage(net, method, self.data.train, self.data.test, options=options, hooks=hooks, val=self.data.val)
        rec.wall_time[name] = time.perf_counter() - t
        if epochs > 0:
            rec.stage_top1[name] = evaluate(net, self.data.test, self.device)["top1"]
        if not last:
            checkpoints.save_stage(name, net, method, rec, self.generator)

    def load_data(self) -> DataBundle:
        tr = self.cfg.trainer
        return load_dataset(self.cfg.dataset, batch_size=tr.batch_size, eval_batch_size=tr.eval_batch_size,
                            seed=self.cfg.seed, device=self.device, num_workers=tr.num_workers,
                            shard=distributed.shard())  # fmt: skip

    def build_model(self) -> nn.Module:
        try:
            return build_from_config(self.cfg.model, self.data.num_classes, self.data.input_shape[0])
        except ValueError as err:
            raise InputError(one_line(err)) from None

    def new_record(self) -> RunRecord:
        cfg = self.cfg
        model = model_label(cfg.model.name, **model_options(cfg.model))
        return RunRecord(
            status="running", method=self.method.name, model=model, dataset=cfg.dataset.name,
            seed=cfg.seed, config=self.config, init_from=str(cfg.init_from) if cfg.init_from else None,
            headline=list(self.method.Config.headline) or None, macs_dense=self.dense_count.macs,
            params_dense=count_params(self.model), input_shape=list(self.input_shape), versions=versions(),
            samples={"train": self.data.num_train, "val": self.data.num_val, "test": self.data.num_test},
            epochs_after_start=epochs_before_compress(cfg, self.method) + self.method.finetune_epochs,
            dense_start=file_digest(dense_checkpoint_path(cfg.init_from)) if cfg.init_from else None,
            device=str(self.device), world_size=distributed.world_size(), accel=self.accel.as_dict(),
        )  # fmt: skip

    def write(self, rec: RunRecord, out_dir: Path) -> None:
        """results.json, written by rank 0 only (the one process that writes files)."""
        if distributed.is_main():
            write_results(out_dir, rec)

    def finish_group(self) -> None:
        distributed.barrier()  # no rank leaves before rank 0 has written everything
        if self.owns_group:
            distributed.cleanup()


def summary(results: dict, run_dir: str | Path) -> str:
    """The short console summary that ends a run."""
    st = results.get("stage_top1", {})
    stages = ", ".join(f"{k} {v:.2f}" for k, v in st.items())
    return (
        f"{results['method']} on {results['model']}/{results['dataset']}: top1 {results['top1']:.2f}% "
        f"({stages}) | MACs {results['macs'] / 1e6:.2f}M (dense {results['macs_dense'] / 1e6:.2f}M, "
        f"speed-up {results['speedup']:.2f}x) | params {results['params'] / 1e3:.1f}k | "
        f"{results['wall_time']['total']:.0f}s\nresults: {Path(run_dir) / RESULTS_FILE}"
    )


__all__ = ["Run", "configure", "run_experiment", "record_config", "summary", "MacCount"]
