"""The one training loop every method goes through, and evaluation.

``train_stage`` runs ``epochs`` epochs of SGD/Adam on ``task loss + method.regularization``,
calling the method's hooks (``after_backward``, ``after_step``, ``on_epoch_end``); a progress bar
per epoch shows loss and accuracy. A non-finite loss stops the stage with :class:`DivergedError`.

Speed options (:class:`Accel`, from ``trainer.amp`` / ``channels_last`` / ``compile`` /
``cudnn_benchmark`` through :func:`resolve_accel`): mixed precision (bf16 autocast, or fp16 with a
``GradScaler``) around the forward pass, channels-last memory format and ``torch.compile`` of the
model being trained. With ``ddp=True`` (torchrun, :mod:`svdbench.distributed`) the model is trained
inside DistributedDataParallel and the epoch's metrics are summed over the ranks. The method hooks,
the regularisers (in fp32, outside autocast) and evaluation always see the plain model.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .errors import DivergedError, Preempted
from .seeding import rng_state, set_rng_state


@dataclass
class OptimConfig:
    """Optimiser and schedule of one stage. ``milestones`` are fractions of the stage's epochs
    (the original CIFAR recipe's epochs 81 and 122 of 164 are about [0.494, 0.744])."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1


@dataclass
class Accel:
    """Resolved speed options of :func:`train_stage`: ``amp`` (off | bf16 | fp16), channels-last
    memory format, ``torch.compile`` and cuDNN autotuning. The defaults change nothing."""

    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _flag(value, auto: bool) -> bool:
    return auto if value in ("auto", None) else value in (True, "true")


def resolve_accel(
    device: torch.device | str,
    amp: str = "auto",
    channels_last="auto",
    compile: bool = False,
    cudnn_benchmark="auto",
    deterministic: bool = True,
) -> Accel:
    """Turn the ``trainer.*`` settings into an :class:`Accel` for ``device``: ``auto`` means bf16
    autocast on a CUDA device that supports it (else fp16 with a GradScaler) and none on the CPU;
    channels-last on CUDA; cuDNN benchmark on CUDA unless ``deterministic``."""
    cuda = torch.device(device).type == "cuda"
    if amp == "auto":
        amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "off"
    if amp not in ("off", "bf16", "fp16"):
        raise ValueError(f"trainer.amp must be auto, off, bf16 or fp16, got {amp!r}")
    return Accel(
        amp=amp,
        channels_last=_flag(channels_last, cuda),
        compile=bool(compile),
        cudnn_benchmark=_flag(cudnn_benchmark, cuda and not deterministic),
    )


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Weight decay applies to weights and factors U, V; not to biases, norm layers or s
    (s has its own sparsity regulariser)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose sgd or adam")


def make_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps: int):
    """Per-iteration schedule over ``steps`` iterations."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    if cfg.schedule == "multistep":
        marks = [round(m * steps) for m in cfg.milestones]
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: cfg.gamma ** sum(i >= m for m in marks))
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose cosine, multistep or constant")


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches, num_batches: int, device: torch.device | str = "cpu") -> int:
    """Re-estimate every BatchNorm's running mean and variance from ``num_batches`` training batches
    (forward passes in train mode, no gradient step); returns the batches used.

    Removing singular values or filters shifts the statistics a BatchNorm sees, and its running
    averages then mis-normalise (a ResNet-8 pruned at energy 0.05 fell from 74% to 29% top-1 with
    stale statistics and was back at 74% after recalibration).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or num_batches <= 0:
        return 0
    momenta = [m.momentum for m in bns]
    was = model.training
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    used = 0
    for x, _ in batches:
        if used >= num_batches:
            break
        model(x.to(device))
        used += 1
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom
    model.train(was)
    if _sharded(batches):  # every rank saw its own batches: average their estimates
        distributed.average_batchnorm_stats(model)
    return used


def _sharded(batches) -> bool:
    """Whether ``batches`` is one rank's shard of a multi-process split (its sums need reducing)."""
    shard = getattr(batches, "shard", None)
    return shard is not None and shard[1] > 1


@torch.no_grad()
def evaluate(model: nn.Module, batches, device: torch.device | str = "cpu") -> dict[str, float]:
    """Top-1 accuracy (percent) and mean cross-entropy over ``batches`` (over all ranks' shards
    when ``batches`` is one rank's shard: every rank must then call this together)."""
    was = model.training
    model.eval()
    correct, total, loss = 0, 0, 0.0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        total += y.numel()
    model.train(was)
    if _sharded(batches):
        correct, total, loss = distributed.all_reduce_sums([correct, total, loss])
    return {"top1": 100.0 * correct / max(total, 1), "loss": loss / max(total, 1)}


def train_stage(
    model: nn.Module,
    method,
    train,
    test,
    *,
    epochs: int,
    optim: OptimConfig,
    stage: str,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    save: Callable[[dict], None] | None = None,
    stop: Callable[[], bool] | None = None,
    accel: Accel | None = None,
    ddp: bool = False,
) -> list[dict]:
    """Train ``model`` for ``epochs`` epochs; returns one dict of metrics per epoch
    (stage, epoch, train_loss, reg_loss, train_top1, test_top1, test_loss, lr).

    ``save(state)`` receives a checkpoint state after every epoch (and mid-epoch when ``stop()``
    turns true, after which :class:`~svdbench.checkpoint.Preempted` is raised); passing such a
    state back as ``resume`` continues exactly where it was taken: model, optimiser, schedule,
    random generators, the position inside the epoch and the running sums (and the fp16 GradScaler).

    ``accel`` (see :class:`Accel`) sets mixed precision, channels-last and ``torch.compile``;
    ``ddp=True`` trains in DistributedDataParallel (every rank calls this together, on its shard of
    ``train``): metrics are summed over the ranks, BatchNorm buffers follow rank 0 at each epoch end,
    and stopping (preemption, a non-finite loss) is agreed on by all ranks at the same step.
    """
    if epochs <= 0:
        return []
    gen = getattr(train, "generator", None)
    accel = accel or Accel()
    dev_type = torch.device(device).type
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accel.amp)
    scaler = torch.amp.GradScaler(dev_type) if accel.amp == "fp16" else None
    if accel.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, optim)
    sched = make_scheduler(opt, optim, epochs * len(train))
    history, step, first_epoch, skip, sums = [], 0, 0, 0, [0, 0, 0.0, 0.0]
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        history, step, first_epoch = list(resume["history"]), resume["step"], resume["epoch"]
        skip, sums = resume["step_in_epoch"], list(resume["sums"])
        set_rng_state(resume["rng_epoch_start"] if skip else resume["rng"], gen)
        if scaler is not None and "scaler" in resume:
            scaler.load_state_dict(resume["scaler"])
        if ddp and not distributed.is_main():  # the saved sums are already over all ranks: count them once
            sums = [0, 0, 0.0, 0.0]
    net = distributed.wrap(model, torch.device(device)) if ddp else model
    if accel.compile:
        net = torch.compile(net)
    autocast = (lambda: torch.autocast(dev_type, dtype=amp_dtype)) if amp_dtype is not None else contextlib.nullcontext

    def state(epoch: int, k: int, start_rng: dict, sums: list) -> dict:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "history": list(history), "step": step, "epoch": epoch, "step_in_epoch": k,
                "rng": rng_state(gen), "rng_epoch_start": start_rng, "sums": list(sums),
                **({"scaler": scaler.state_dict()} if scaler is not None else {})}  # fmt: skip

    def global_sums(sums: list) -> list:
        if not ddp:
            return list(sums)
        seen, correct, loss_sum, reg_sum = distributed.all_reduce_sums(sums)
        return [int(seen), int(correct), loss_sum, reg_sum]

    def local_signal() -> int:
        """The signal this process received (0: none)."""
        return (getattr(stop, "signum", None) or 15) if stop is not None and stop() else 0

    for epoch in range(first_epoch, epochs):
        net.train()
        start_rng = rng_state(gen)
        seen, correct, loss_sum, reg_sum = sums if skip else (0, 0, 0.0, 0.0)
        bar = tqdm(train, total=len(train), desc=f"{stage} {epoch + 1}/{epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True, initial=0)  # fmt: skip
        for k, (x, y) in enumerate(bar):
            if k < skip:  # replay the data order and augmentation draws of a cut epoch
                if k == skip - 1:
                    set_rng_state({"torch": resume["rng"]["torch"], **({"cuda": resume["rng"]["cuda"]}
                                   if "cuda" in resume["rng"] else {})}, None)  # fmt: skip
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if accel.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                out = net(x)
            task = F.cross_entropy(out.float(), y)
            reg = method.regularization(model, stage)  # fp32, outside autocast
            loss = task if reg is None else task + reg
            if ddp:  # every rank stops together: a non-finite loss or a signal on any rank
                bad, sig = distributed.all_reduce_max([int(not torch.isfinite(loss)), local_signal()])
                if bad:
                    what = loss.item() if not torch.isfinite(loss) else "non-finite on another rank"
                    raise DivergedError(f"loss became {what} in stage {stage!r}, epoch {epoch + 1}")
            elif not torch.isfinite(loss):
                raise DivergedError(f"loss became {loss.item()} in stage {stage!r}, epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                method.after_backward(model, step, stage)
                opt.step()
            else:  # fp16: scaled backward; hooks and clipping see the unscaled gradients
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                method.after_backward(model, step, stage)
                scaler.step(opt)
                scaler.update()
            sched.step()
            method.after_step(model, step, stage)
            step += 1
            b = y.numel()
            seen += b
            loss_sum += task.item() * b
            reg_sum += (0.0 if reg is None else reg.item()) * b
            correct += (out.argmax(1) == y).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
            stopping = sig > 0 if ddp else stop is not None and stop()
            if stopping and k + 1 < len(train):
                if save is not None:
                    save(state(epoch, k + 1, start_rng, global_sums([seen, correct, loss_sum, reg_sum])))
                raise Preempted(sig if ddp else stop.signum if hasattr(stop, "signum") else 15)
        skip = 0
        if ddp:
            distributed.broadcast_buffers(model)  # BatchNorm statistics: rank 0's, as DDP's next forward would
            seen, correct, loss_sum, reg_sum = global_sums([seen, correct, loss_sum, reg_sum])
        method.on_epoch_end(model, epoch, stage)
        ev = evaluate(model, test, device)
        rec = {
            "stage": stage,
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "reg_loss": reg_sum / seen,
            "train_top1": 100 * correct / seen,
            "test_top1": ev["top1"],
            "test_loss": ev["loss"],
            "lr": opt.param_groups[0]["lr"],
        }
        history.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
        if save is not None:
            save(state(epoch + 1, 0, start_rng, [0, 0, 0.0, 0.0]))
        if ddp:
            sig = distributed.all_reduce_max([local_signal()])[0]  # the same on every rank
            if sig and epoch + 1 < epochs:
                raise Preempted(sig)
        elif stop is not None and stop() and epoch + 1 < epochs:
            raise Preempted(stop.signum if hasattr(stop, "signum") else 15)
    return history
