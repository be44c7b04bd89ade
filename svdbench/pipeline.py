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
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import lowrank
from .data import DatasetError, load_dataset
from .measure import analyze_macs, count_params
from .methods.base import Method
from .models import build_model
from .results import RESULTS_FILE, atomic_torch_save, versions, write_results
from .train import OptimConfig, evaluate, recalibrate_batchnorm, train_stage

log = logging.getLogger("svdbench")


class InputError(ValueError):
    """Bad user input found before any training: reported in one line, no results written."""


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("trainer.device=cuda but no CUDA device is available")
    return torch.device(name)


def _optim(trainer, lr: float) -> OptimConfig:
    return OptimConfig(
        trainer.optimizer,
        lr,
        trainer.momentum,
        trainer.weight_decay,
        trainer.schedule,
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
        raise InputError(f"init_from: cannot read {p}: {one_line_error(err)}") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise InputError(f"init_from: {p} holds another architecture ({one_line_error(err)})") from None


def one_line_error(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def run_experiment(
    cfg, method, run_dir: str | Path, *, config_dict: dict | None = None, on_epoch: Callable[[dict], None] | None = None
) -> dict[str, Any]:
    """Run ``method`` under ``cfg`` (a ``svdbench.config.Config``) and write ``results.json``.

    Raises :class:`InputError` (nothing written) for bad input found before training; any later
    failure writes ``status: failed`` with the reason, then re-raises.
    """
    run_dir = Path(run_dir)
    t_start = time.perf_counter()
    tr, ds, md = cfg.trainer, cfg.dataset, cfg.model
    seed_everything(cfg.seed, tr.deterministic)
    device = resolve_device(tr.device)
    try:
        data = load_dataset(
            ds.name,
            root=ds.root,
            batch_size=tr.batch_size,
            eval_batch_size=tr.eval_batch_size,
            train_subset=ds.train_subset,
            test_subset=ds.test_subset,
            augment=ds.augment,
            download=ds.download,
            seed=cfg.seed,
            device=device,
            num_workers=tr.num_workers,
            image_size=ds.image_size,
            synthetic_shape=ds.shape,
            synthetic_classes=ds.num_classes,
            synthetic_train=ds.num_train,
            synthetic_test=ds.num_test,
        )
    except DatasetError as err:
        raise InputError(str(err)) from None
    try:
        model = build_model(md.family, md.name, data.num_classes, data.input_shape[0])
    except ValueError as err:
        raise InputError(str(err)) from None
    input_shape = (1, *data.input_shape)
    try:
        dense_count = analyze_macs(model, input_shape)
    except RuntimeError as err:
        raise InputError(
            f"model {md.name} cannot take input {tuple(data.input_shape)}: {str(err).splitlines()[0]}"
        ) from None
    params_dense = count_params(model)
    init_from = getattr(cfg, "init_from", None)
    if init_from:
        load_dense_checkpoint(model, init_from)

    results: dict[str, Any] = {
        "status": "running",
        "method": method.name,
        "model": md.name,
        "dataset": ds.name,
        "seed": cfg.seed,
        "config": config_dict if config_dict is not None else _asdict(cfg),
        "macs_dense": dense_count.macs,
        "params_dense": params_dense,
        "input_shape": list(input_shape),
        "versions": versions(),
        "device": str(device),
        "stage_top1": {},
        "wall_time": {},
        "history": [],
    }
    history: list[dict] = results["history"]

    def record(rec: dict) -> None:
        history.append(rec)
        log.info(
            "%s epoch %d: loss %.4f (reg %.4f), train top1 %.2f, test top1 %.2f",
            rec["stage"],
            rec["epoch"],
            rec["train_loss"],
            rec["reg_loss"],
            rec["train_top1"],
            rec["test_top1"],
        )
        if on_epoch:
            on_epoch(rec)

    results["init_from"] = str(init_from) if init_from else None
    try:
        model = model.to(device)
        if method.pretrain_dense and not init_from:
            t = time.perf_counter()
            train_stage(
                model,
                Method(),
                data.train,
                data.test,
                epochs=tr.epochs,
                optim=_optim(tr, tr.lr),
                stage="pretrain",
                device=device,
                progress=tr.progress,
                on_epoch=record,
            )
            results["wall_time"]["pretrain"] = time.perf_counter() - t
            save_dense_checkpoint(model, run_dir)
        if init_from or method.pretrain_dense:
            results["stage_top1"]["dense"] = evaluate(model, data.test, device)["top1"]
        model = method.prepare(model, input_shape).to(device)
        ranks_full = lowrank.ranks(model)
        epochs = tr.epochs if method.train_epochs is None else method.train_epochs
        t = time.perf_counter()
        train_stage(
            model,
            method,
            data.train,
            data.test,
            epochs=epochs,
            optim=_optim(tr, tr.lr),
            stage="train",
            device=device,
            progress=tr.progress,
            on_epoch=record,
        )
        results["wall_time"]["train"] = time.perf_counter() - t
        if epochs > 0:
            results["stage_top1"]["trained"] = evaluate(model, data.test, device)["top1"]
        if not method.compresses:
            save_dense_checkpoint(model, run_dir)

        if method.compresses:
            t = time.perf_counter()
            method.compress(model)
            model.to(device)
            if tr.bn_recalibration_batches:
                results["stage_top1"]["pruned_stale_bn"] = evaluate(model, data.test, device)["top1"]
                recalibrate_batchnorm(model, data.train, tr.bn_recalibration_batches, device)
            results["wall_time"]["compress"] = time.perf_counter() - t
            results["stage_top1"]["pruned"] = evaluate(model, data.test, device)["top1"]
        if method.finetune_epochs > 0:
            t = time.perf_counter()
            train_stage(
                model,
                method,
                data.train,
                data.test,
                epochs=method.finetune_epochs,
                optim=_optim(tr, tr.finetune_lr if tr.finetune_lr is not None else tr.lr),
                stage="finetune",
                device=device,
                progress=tr.progress,
                on_epoch=record,
            )
            results["wall_time"]["finetune"] = time.perf_counter() - t
            results["stage_top1"]["finetuned"] = evaluate(model, data.test, device)["top1"]

        t = time.perf_counter()
        ranks_after = lowrank.ranks(model)
        deployed = method.export(model).to(device).eval()
        top1 = evaluate(deployed, data.test, device)["top1"]
        count = analyze_macs(deployed, input_shape)
        results["wall_time"]["measure"] = time.perf_counter() - t
        results.update(
            {
                "top1": top1,
                "macs": count.macs,
                "macs_total": count.macs_total,
                "params": count_params(deployed),
                "speedup": dense_count.macs / max(count.macs, 1),
                "compression": params_dense / max(count_params(deployed), 1),
                "ranks": {"full": ranks_full, "after": ranks_after} if ranks_full else {},
                "mac_counter": {**count.as_dict(), "dense": dense_count.as_dict()},
                "method_details": method.details(),
            }
        )
        if cfg.save_model:
            atomic_torch_save(deployed.cpu(), run_dir / "model.pt")
            results["model_path"] = str(run_dir / "model.pt")
        results["wall_time"]["total"] = time.perf_counter() - t_start
        results["status"] = "completed"
    except BaseException as err:
        results["status"] = "failed"
        results["error"] = f"{type(err).__name__}: {err}"
        results["wall_time"]["total"] = time.perf_counter() - t_start
        write_results(run_dir, results)
        raise
    write_results(run_dir, results)
    return results


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
