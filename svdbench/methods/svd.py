"""SVD training (Yang et al., CVPR-W 2020; METHOD.md section 1).

Stage ``train``: decomposed layers trained on ``task + lambda_o * orthogonality + lambda_s * sparsity``.
``compress``: per-layer singular-value pruning at energy ``e`` (or absolute ``threshold``).
Stage ``finetune``: sparsity off, orthogonality on. ``export``: pairs of small layers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .. import lowrank
from ..regularizers import SparsityRegularizer, orthogonality_loss
from .base import Method


class SVDTraining(Method):
    name = "svd"
    compresses = True

    def __init__(
        self,
        decomposition: str = "channel",
        init: str = "random",
        orthogonality: float = 1.0,
        energy: float | None = 0.05,
        threshold: float | None = None,
        finetune_epochs: int = 0,
        skip: Sequence[str] = (),
        decompose_linear: bool = False,
        merge_unprofitable: bool = True,
        energies: Sequence[float] = (),
        regularizer: SparsityRegularizer | None = None,
        **unused,
    ) -> None:
        super().__init__(finetune_epochs)
        if decomposition not in ("channel", "spatial"):
            raise ValueError(f"method.decomposition must be channel or spatial, got {decomposition!r}")
        if init not in ("random", "svd"):
            raise ValueError(f"method.init must be random or svd, got {init!r}")
        if orthogonality < 0:
            raise ValueError(f"method.orthogonality must be >= 0, got {orthogonality}")
        if (energy is None) == (threshold is None):
            raise ValueError("give exactly one of method.energy and method.threshold")
        if energy is not None and not 0.0 <= energy < 1.0:
            raise ValueError(f"method.energy must be in [0, 1), got {energy}")
        self.decomposition, self.init = decomposition, init
        self.lambda_o, self.energy, self.threshold = float(orthogonality), energy, threshold
        self.skip, self.decompose_linear = list(skip), bool(decompose_linear)
        self.merge_unprofitable = merge_unprofitable
        if any(not 0.0 <= e < 1.0 for e in energies):
            raise ValueError(f"method.energies must each be in [0, 1), got {list(energies)}")
        self.energies = [float(e) for e in energies]
        self.regularizer = regularizer or SparsityRegularizer("none", 0.0)
        self.ranks_before: dict[str, int] = {}
        self.ranks_after: dict[str, int] = {}

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        return lowrank.decompose(model, self.decomposition, self.init, skip=self.skip, linear=self.decompose_linear)

    def regularization(self, model: nn.Module, stage: str) -> torch.Tensor | None:
        reg = self.lambda_o * orthogonality_loss(model) if self.lambda_o else None
        if stage == "train" and self.regularizer.active:
            s = self.regularizer(model)
            reg = s if reg is None else reg + s
        return reg

    def compress(self, model: nn.Module) -> dict:
        self.ranks_before = lowrank.ranks(model)
        self.ranks_after = lowrank.prune(model, energy=self.energy, threshold=self.threshold)
        return self.details()

    def export(self, model: nn.Module) -> nn.Module:
        return lowrank.export(model, merge_unprofitable=self.merge_unprofitable)

    def details(self) -> dict:
        return {
            **super().details(),
            "decomposition": self.decomposition,
            "init": self.init,
            "orthogonality": self.lambda_o,
            "energy": self.energy,
            "threshold": self.threshold,
            "regularizer": self.regularizer.kind,
            "regularizer_weight": self.regularizer.weight,
            "skip": self.skip,
            "decompose_linear": self.decompose_linear,
            "merge_unprofitable": self.merge_unprofitable,
            "ranks_before": self.ranks_before,
            "ranks_after": self.ranks_after,
        }
