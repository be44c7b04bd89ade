"""Generated data: a learnable toy task of any shape and class count, no files needed."""

from __future__ import annotations

from typing import Iterable

import torch


def make_synthetic(
    num_train: int, num_test: int, shape: Iterable[int], num_classes: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """A learnable toy task: each class is a fixed random pattern plus Gaussian noise, as uint8."""
    shape = tuple(shape)
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand((num_classes, *shape), generator=g)

    def draw(n):
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = protos[y] + 0.35 * torch.randn((n, *shape), generator=g)
        return (x.clamp(0, 1) * 255).to(torch.uint8), y

    return (*draw(num_train), *draw(num_test))
