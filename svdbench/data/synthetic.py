"""Generated data: a learnable toy task of any shape and class count, no files needed."""

from __future__ import annotations

from typing import Iterable

import torch

from .splits import TensorSplits, register_dataset


def make_synthetic(
    num_train: int, num_test: int, shape: Iterable[int], num_classes: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """A learnable toy task: each class is a fixed random pattern plus Gaussian noise. Returns train
    images (num_train x C x H x W uint8), labels, test images, labels, all drawn from ``seed``."""
    shape = tuple(shape)
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand((num_classes, *shape), generator=g)

    def draw(n):
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = protos[y] + 0.35 * torch.randn((n, *shape), generator=g)
        return (x.clamp(0, 1) * 255).to(torch.uint8), y

    return (*draw(num_train), *draw(num_test))


@register_dataset("synthetic", keys=("shape", "num_classes", "num_train", "num_test"))
def synthetic_splits(cfg, seed: int) -> TensorSplits:
    """``cfg.num_train``/``cfg.num_test`` samples of shape ``cfg.shape`` in ``cfg.num_classes``
    classes, drawn from the run's ``seed``; normalised with mean = std = 0.5, no augmentation."""
    shape = tuple(cfg.shape)
    xtr, ytr, xte, yte = make_synthetic(cfg.num_train, cfg.num_test, shape, cfg.num_classes, seed)
    half = (0.5,) * shape[0]
    return TensorSplits(train=(xtr, ytr), test=(xte, yte), num_classes=cfg.num_classes, mean=half, std=half)
