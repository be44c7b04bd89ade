"""The pipeline every method goes through:
data -> model -> method.prepare -> train -> compress -> finetune -> export -> measure -> record.

``run_experiment`` is plain Python: it takes the typed config (see ``svdbench.config``), an
instantiated :class:`~svdbench.methods.Method` and a run directory, and returns the results dict
it wrote to ``run_dir/results.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from . import distributed, lowrank
from .checkpoint import PreemptionGuard, load_checkpoint, save_checkpoint
from .data import load_dataset
from .errors import DivergedError, InputError, Preempted, one_line
from .latency import run_latency
from .measure import analyze_macs, count_params
from .methods.base import Method
from .models import build_model
from .results import RESULTS_FILE, atomic_torch_save, read_results, versions, write_results
from .seeding import rng_state, seed_everything, set_rng_state
from .train import OptimConfig, StageHooks, StageOptions, evaluate, recalibrate_batchnorm, resolve_accel, train_stage

log = logging.getLogger("svdbench")


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


def _write_results(run_dir: Path, results: dict) -> None:
    """results.json, written by rank 0 only (the one process that writes files)."""
    if distributed.is_main():
        write_results(run_dir, results)


def _finish_group(owns_group: bool) -> None:
    distributed.barrier()  # no rank leaves before rank 0 has written everything
    if owns_group:
        distributed.cleanup()


def _optim(trainer, finetune: bool = False) -> OptimConfig:
    """The optimiser of a training stage (``finetune``: ``trainer.finetune_lr``/``finetune_schedule``
    where set)."""
    lr = (trainer.finetune_lr or trainer.lr) if finetune else trainer.lr
    schedule = (trainer.finetune_schedule or trainer.schedule) if finetune else trainer.schedule
    return OptimConfig(
        trainer.optimizer,
        lr,
        trainer.momentum,
        trainer.weight_decay,
        schedule,
        tuple(trainer.milestones),
        trainer.gamma,
    )


DENSE_CHECKPOINT = "dense.pt"


def save_dense_checkpoint(model: torch.nn.Module, run_dir: Path) -> Path:
    """The trained dense weights (a plain state_dict), the starting point ``init_from`` reads."""
    return atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, run_dir / DENSE_CHECKPOINT)


def load_dense_checkpoint(model: torch.nn.Module, path: str | Path) -> None:
    """Load dense weights from ``path`` (a ``dense.pt`` file or the run directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / DENSE_CHECKPOINT
    if not p.is_file():
        raise InputError(f"init_from: no dense checkpoint at {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"init_from: cannot read {p}: {one_line(err)}") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise InputError(f"init_from: {p} holds another architecture ({one_line(err)})") from None


def run_experiment(
    cfg, method, run_dir: str | Path, *, config_dict: dict | None = None, on_epoch: Callable[[dict], None] | None = None
) -> dict[str, Any]:
    """Run ``method`` under ``cfg`` (a ``svdbench.config.Config``) and write ``results.json``.

    Raises :class:`InputError` (nothing written) for bad input found before training; any later
    failure writes ``status: failed`` with the reason, then re-raises. A method with an
    ``energies`` list (energy sweep) also writes one ``energy_<e>/results.json`` per energy, each
    pruned from the same trained model and fine-tuned with the same budget.
    """
    run_dir = Path(run_dir)
    t_start = time.perf_counter()
    tr, md = cfg.trainer, cfg.model
    seed_everything(cfg.seed, tr.deterministic)
    device = resolve_device(tr.device)
    owns_group = distributed.init(device)  # torchrun: join the process group (no-op for one process)
    accel = resolve_accel(device, tr.amp, tr.channels_last, tr.compile, tr.cudnn_benchmark, tr.deterministic)
    torch.backends.cudnn.benchmark = accel.cudnn_benchmark
    data = _load_data(cfg, device)
    try:
        model = build_model(md.family, md.name, data.num_classes, data.input_shape[0])
    except ValueError as err:
        raise InputError(str(err)) from None
    input_shape = (1, *data.input_shape)
    try:
        dense_count = analyze_macs(model, input_shape)
    except Exception as err:  # shape errors surface as RuntimeError, AssertionError, ValueError ...
        raise InputError(
            f"model {md.name} cannot take input {tuple(data.input_shape)}: {one_line(err)}"
        ) from None
    try:
        method.check(model, input_shape)
    except ValueError as err:
        raise InputError(one_line(err)) from None
    init_from = cfg.init_from
    if init_from:
        load_dense_checkpoint(model, init_from)

    results: dict[str, Any] = {
        "status": "running",
        "method": method.name,
        "model": md.name,
        "dataset": cfg.dataset.name,
        "seed": cfg.seed,
        "config": config_dict if config_dict is not None else _asdict(cfg),
        "init_from": str(init_from) if init_from else None,
        "macs_dense": dense_count.macs,
        "params_dense": count_params(model),
        "input_shape": list(input_shape),
        "versions": versions(),
        "device": str(device),
        "world_size": distributed.world_size(),  # processes (GPUs) in data-parallel training; batch_size is per process
        "accel": accel.as_dict(),
        "stage_top1": {},
        "wall_time": {},
        "history": [],
    }
    ckpt = _Checkpoints(run_dir, results["config"], enabled=getattr(cfg, "checkpoint", True))
    if getattr(cfg, "resume", True):
        done = ckpt.completed_results()
        if done is not None:
            log.info("run directory %s already holds a completed run of this config", run_dir)
            _finish_group(owns_group)
            return done
        ckpt.load_latest()
    gen = getattr(data.train, "generator", None)

    def stage(name: str, net, meth, epochs: int, optim: OptimConfig, res: dict) -> None:
        """Train stage ``name`` (or restore it from a checkpoint), recording history, wall time and
        final top-1 into ``res``."""
        if ckpt.restore_completed_stage(name, net, meth, res, gen):
            log.info("stage %s restored from its checkpoint", name)
            return

        def record(rec: dict) -> None:
            res["history"].append(rec)
            log.info(
                "%s epoch %d: loss %.4f (reg %.4f), train top1 %.2f, test top1 %.2f",
                *(rec[k] for k in ("stage", "epoch", "train_loss", "reg_loss", "train_top1", "test_top1")),
            )
            if on_epoch:
                on_epoch(rec)

        resume = ckpt.resume_state(name, meth, res)
        if resume is not None:
            log.info("resuming stage %s at epoch %d, step %d", name, resume["epoch"] + 1, resume["step_in_epoch"])
        t = time.perf_counter() - res["wall_time"].get(name, 0.0)

        def save(state: dict) -> None:
            res["wall_time"][name] = time.perf_counter() - t
            ckpt.save_latest(name, state, meth, res)

        progress = tr.progress and distributed.is_main()
        ddp = distributed.world_size() > 1
        options = StageOptions(epochs, optim, name, device, progress=progress, accel=accel, ddp=ddp)
        hooks = StageHooks(on_epoch=record, save=save, stop=guard, resume=resume)
        train_stage(net, meth, data.train, data.test, options=options, hooks=hooks)
        res["wall_time"][name] = time.perf_counter() - t
        if epochs > 0:
            res["stage_top1"][name] = evaluate(net, data.test, device)["top1"]
        ckpt.save_completed_stage(name, net, meth, res, gen)

    trained = None
    with PreemptionGuard() as guard:
        try:
            model = model.to(device)
            if method.pretrain_dense and not init_from:
                stage("pretrain", model, Method(), tr.epochs, _optim(tr), results)
                if distributed.is_main():
                    save_dense_checkpoint(model, run_dir)
            if init_from or method.pretrain_dense:
                results["stage_top1"]["dense"] = evaluate(model, data.test, device)["top1"]
            model = method.prepare(model, input_shape).to(device)
            results["ranks"] = {"full": lowrank.ranks(model)} if lowrank.ranks(model) else {}
            train_epochs = tr.epochs if method.train_epochs is None else method.train_epochs
            stage("train", model, method, train_epochs, _optim(tr), results)
            if not method.compresses and distributed.is_main():
                save_dense_checkpoint(model, run_dir)
            trained = copy.deepcopy(model) if getattr(method, "energies", None) else None
            _compress_finetune_measure(model, method, results, stage, data, cfg, device, dense_count, run_dir)
            results["wall_time"]["total"] = time.perf_counter() - t_start
            results["status"] = "completed"
        except Preempted as err:
            results.update(status="preempted", error=f"{err}; rerun the same command to resume")
            _write_results(run_dir, results)
            distributed.barrier()  # every rank stopped at the same step (train_stage agrees on it)
            guard.chain()
            raise
        except BaseException as err:
            results.update(status="failed", error=f"{type(err).__name__}: {err}")
            results["wall_time"]["total"] = time.perf_counter() - t_start
            _write_results(run_dir, results)
            if isinstance(err, DivergedError):  # raised on every rank at the same step
                distributed.barrier()
            raise
        _write_results(run_dir, results)
        if trained is not None:
            results["energy_sweep"] = _energy_sweep(
                trained, method, results, stage, data, cfg, device, dense_count, run_dir
            )
            _write_results(run_dir, results)
    if not getattr(cfg, "keep_checkpoints", False) and distributed.is_main():
        ckpt.remove()
    _finish_group(owns_group)
    return results


CHECKPOINT = "checkpoint.pt"
RESUME_IGNORED = ("resume", "keep_checkpoints", "checkpoint", "measure")


def _without_nulls(d: Any) -> Any:
    """``d`` with every ``None`` or empty-mapping entry of its mappings dropped: an optional key left
    at null (or an empty mapping of extra settings) means the same as the key absent (a run made
    before the key existed)."""
    if isinstance(d, dict):
        return {k: _without_nulls(v) for k, v in d.items() if v is not None and v != {}}
    return d


def _resume_key(config: dict) -> dict:
    """The part of a resolved config that must match for a run directory to be resumed: all of it
    but how it is run and measured (:data:`RESUME_IGNORED`, ``trainer.progress``), null keys dropped."""
    key = _without_nulls(copy.deepcopy({k: v for k, v in config.items() if k not in RESUME_IGNORED}))
    if isinstance(key.get("trainer"), dict):
        key["trainer"].pop("progress", None)
    return key


class _Checkpoints:
    """The run directory's checkpoints: ``checkpoint.pt`` (the latest epoch, or a mid-epoch point
    on preemption) and ``stage_<name>.pt`` (the model at the end of each training stage, from
    which the deterministic compress step is replayed on resume)."""

    def __init__(self, run_dir: Path, config: dict, enabled: bool = True) -> None:
        self.dir, self.enabled = run_dir, enabled
        self.key = _resume_key(config)
        self.latest: dict | None = None
        self.stages: dict[str, dict] = {}

    def _check_config(self, state: dict, path: Path) -> None:
        if state.get("config") != self.key:
            raise InputError(f"{path} belongs to a run with another config: use another run directory or resume=false")

    def completed_results(self) -> dict | None:
        path = self.dir / RESULTS_FILE
        if not path.is_file() or (self.dir / CHECKPOINT).exists():
            return None
        try:
            res = read_results(path)
        except (ValueError, OSError):
            return None
        return res if res.get("status") == "completed" and _resume_key(res.get("config", {})) == self.key else None

    def load_latest(self) -> None:
        path = self.dir / CHECKPOINT
        if not path.is_file():
            return
        self.latest = load_checkpoint(path)
        self._check_config(self.latest, path)
        saved_world = self.latest.get("world_size", 1)
        if saved_world != distributed.world_size():  # steps per epoch and the schedule depend on it
            raise InputError(f"{path} was written by {saved_world} process(es), this run has "
                             f"{distributed.world_size()}: resume with the same torchrun process count")  # fmt: skip
        for p in sorted(self.dir.glob("stage_*.pt")):
            st = load_checkpoint(p)
            self._check_config(st, p)
            self.stages[st["stage"]] = st

    def restore_completed_stage(self, name, net, meth, res, gen) -> bool:
        st = self.stages.get(name)
        if st is None:
            return False
        net.load_state_dict(st["model"])
        meth.load_state_dict(st["method"])
        res.update(copy.deepcopy(st["results"]))
        set_rng_state(st["rng"], gen)
        return True

    def resume_state(self, name, meth, res) -> dict | None:
        if self.latest is None or self.latest["stage"] != name:
            return None
        meth.load_state_dict(self.latest["method"])
        res.update(copy.deepcopy(self.latest["results"]))
        return self.latest["train"]

    def _snapshot(self, res: dict) -> dict:
        return copy.deepcopy({k: res[k] for k in ("history", "stage_top1", "wall_time", "ranks") if k in res})

    def save_latest(self, name, state, meth, res) -> None:
        if self.enabled and distributed.is_main():
            state = {"version": 1, "config": self.key, "stage": name, "train": state,
                     "method": meth.state_dict(), "results": self._snapshot(res)}  # fmt: skip
            if distributed.world_size() > 1:
                state["world_size"] = distributed.world_size()
            save_checkpoint(state, self.dir / CHECKPOINT)
        if self.enabled:
            distributed.barrier()  # a preempted rank must not exit before rank 0 has saved

    def save_completed_stage(self, name, net, meth, res, gen) -> None:
        if self.enabled and name != "finetune" and distributed.is_main():
            save_checkpoint({"version": 1, "config": self.key, "stage": name, "model": net.state_dict(),
                             "method": meth.state_dict(), "rng": rng_state(gen), "results": self._snapshot(res)},
                            self.dir / f"stage_{name}.pt")  # fmt: skip

    def remove(self) -> None:
        for p in [self.dir / CHECKPOINT, *self.dir.glob("stage_*.pt")]:
            p.unlink(missing_ok=True)


def _compress_finetune_measure(model, method, results, stage, data, cfg, device, dense_count, run_dir) -> None:
    """compress -> BatchNorm recalibration -> finetune -> export -> measure, filling ``results``."""
    tr = cfg.trainer
    if method.compresses:
        t = time.perf_counter()
        method.compress(model)
        model.to(device)
        if tr.bn_recalibration_batches:
            results["stage_top1"]["pruned_stale_bn"] = evaluate(model, data.test, device)["top1"]
            recalibrate_batchnorm(model, data.train, tr.bn_recalibration_batches, device)
        results["wall_time"]["compress"] = time.perf_counter() - t
        results["stage_top1"]["pruned"] = evaluate(model, data.test, device)["top1"]
    stage("finetune", model, method, method.finetune_epochs, _optim(tr, finetune=True), results)

    t = time.perf_counter()
    if results.get("ranks"):
        results["ranks"]["after"] = lowrank.ranks(model)
    deployed = method.export(model).to(device).eval()
    count = analyze_macs(deployed, results["input_shape"])
    params = count_params(deployed)
    results.update(
        top1=evaluate(deployed, data.test, device)["top1"],
        macs=count.macs,
        macs_total=count.macs_total,
        params=params,
        speedup=dense_count.macs / max(count.macs, 1),
        compression=results["params_dense"] / max(params, 1),
        mac_counter={**count.as_dict(), "dense": dense_count.as_dict()},
        method_details=method.details(),
    )
    measure = getattr(cfg, "measure", None)
    # realized speed beside MACs (svdbench.latency); under torchrun timed by rank 0 alone while the others wait
    if measure is not None and measure.latency and distributed.is_main():
        t_lat = time.perf_counter()
        results["latency"] = run_latency(deployed, cfg.model, data.num_classes, results["input_shape"], device,
                                         measure, mac_speedup=results["speedup"])  # fmt: skip
        results["wall_time"]["latency"] = time.perf_counter() - t_lat
    if cfg.save_model and distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(deployed.cpu(), run_dir / "model.pt")
        results["model_path"] = str(run_dir / "model.pt")
    results["wall_time"]["measure"] = time.perf_counter() - t


def _energy_sweep(trained, method, parent, stage, data, cfg, device, dense_count, run_dir) -> list[dict]:
    """One result per energy in ``method.energies``, each from a copy of the same trained model."""
    points = []
    for e in method.energies:
        point_dir = run_dir / f"energy_{e:g}"
        meth = copy.deepcopy(method)
        meth.energy, meth.threshold, meth.energies = e, None, []
        config = copy.deepcopy(parent["config"])
        if isinstance(config.get("method"), dict):
            config["method"].update(energy=e, threshold=None, energies=[])
        res = {
            **copy.deepcopy({k: v for k, v in parent.items() if k not in ("energy_sweep", "error")}),
            "config": config,
        }
        res["stage_top1"] = {k: v for k, v in res["stage_top1"].items() if k in ("dense", "pretrain", "train")}
        res["wall_time"] = {k: v for k, v in res["wall_time"].items() if k in ("pretrain", "train")}
        res.update(status="running", energy_sweep_parent=str(run_dir))
        t = time.perf_counter()
        try:
            _compress_finetune_measure(
                copy.deepcopy(trained), meth, res, stage, data, cfg, device, dense_count, point_dir
            )
            res["status"] = "completed"
        except Exception as err:  # one bad point must not lose the others
            res.update(status="failed", error=f"{type(err).__name__}: {err}")
            log.error("energy %g failed: %s", e, one_line(err))
        res["wall_time"]["point"] = time.perf_counter() - t
        _write_results(point_dir, res)
        points.append({"energy": e, "status": res["status"], "top1": res.get("top1"), "macs": res.get("macs"),
                       "path": str(point_dir / RESULTS_FILE)})  # fmt: skip
        if res["status"] == "completed":
            log.info("energy %g: top1 %.2f, speed-up %.2fx", e, res["top1"], res["speedup"])
    return points


def _load_data(cfg, device):
    tr, ds = cfg.trainer, cfg.dataset
    return load_dataset(
        ds.name, root=ds.root, batch_size=tr.batch_size, eval_batch_size=tr.eval_batch_size,
        train_subset=ds.train_subset, test_subset=ds.test_subset, augment=ds.augment, download=ds.download,
        seed=cfg.seed, device=device, num_workers=tr.num_workers, image_size=ds.image_size,
        synthetic_shape=ds.shape, synthetic_classes=ds.num_classes, synthetic_train=ds.num_train,
        synthetic_test=ds.num_test, shard=distributed.shard(),
    )  # fmt: skip


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


def _asdict(cfg) -> dict:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else copy.deepcopy(dict(cfg))
