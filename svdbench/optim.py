"""The optimiser, schedule and speed options of one training stage.

:class:`OptimConfig` is one stage's optimiser and schedule (built from ``trainer.*`` by
:func:`svdbench.plan.optim_config`); :class:`Accel` the resolved speed options (``trainer.amp`` /
``channels_last`` / ``compile`` / ``cudnn_benchmark`` through :func:`resolve_accel`): mixed precision
(bf16 autocast, or fp16 with a ``GradScaler``), channels-last memory format, ``torch.compile`` and
cuDNN autotuning.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["Accel", "OptimConfig", "make_optimizer", "make_scheduler", "resolve_accel"]


@dataclass
class OptimConfig:
    """Optimiser and schedule of one stage. ``milestones`` are fractions of the stage's epochs
    (the original CIFAR recipe's epochs 81 and 122 of 164 are about [0.494, 0.744]). The defaults are
    the trainer's (``svdbench.config.TrainerConfig`` takes them from here): Adam at 0.002, cosine."""

    optimizer: str = "adam"  # sgd | adam
    lr: float = 0.002
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | multistep | constant
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
