"""SVD training (Yang et al., CVPR-W 2020; docs/method.md section 1).

Stage ``orthogonal`` (``orthogonal_epochs``, default 0): decomposed layers trained on
``task + lambda_o * orthogonality`` only, the authors' first training.
Stage ``train``: decomposed layers trained on ``task + lambda_o * orthogonality + lambda_s * sparsity``.
``compress``: per-layer singular-value pruning at energy ``e`` (or absolute ``threshold``).
Stage ``finetune``: sparsity off, orthogonality on. ``export``: pairs of small layers.
``operating_points``: one more result per energy in ``energies``, pruned from the same trained model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List

import torch
from torch import nn

from .. import lowrank
from ..checks import check, check_choice, check_exactly_one
from ..regularizers import SparsityRegularizer, orthogonality_loss
from .base import Method, MethodConfig, register_method

DECOMPOSITIONS = ("channel", "spatial")


def check_pruning_target(energy: float | None, threshold: float | None) -> None:
    """Exactly one of ``method.energy`` (in [0, 1)) and ``method.threshold`` (>= 0)."""
    check_exactly_one({"method.energy": energy, "method.threshold": threshold})
    check(energy is None or 0 <= energy < 1, "method.energy", f"must be in [0, 1), got {energy}")
    check(threshold is None or threshold >= 0, "method.threshold", f"must be >= 0, got {threshold}")


@dataclass
class LowRankConfig(MethodConfig):
    """Shared by the methods that decompose and prune singular values (SVD training, post-hoc SVD)."""

    decomposition: str = "channel"  # channel (Cout x Cin*k*k) | spatial (Cin*k x Cout*k) reshape of each kernel
    # e: per layer, drop the smallest singular values holding at most this share of sum(s^2)
    # (null with threshold null: the method's default_energy)
    energy: float | None = None
    threshold: float | None = None  # alternative: drop |s| < threshold (leave energy null)
    skip: List[str] = field(default_factory=list)  # fnmatch patterns of module names left dense
    decompose_linear: bool = False  # decompose nn.Linear layers too
    merge_unprofitable: bool = True  # deploy a layer dense where its factor pair costs more MACs
    # round each kept rank up to a multiple of this (at most the full rank): inner widths that kernels tile
    # without a remainder (docs/performance.md); 1 leaves the ranks alone
    round_to: int = 1

    #: the energy used when neither energy nor threshold is given
    default_energy: ClassVar[float] = 0.05
    headline = ("method.decomposition", "method.energy", "method.threshold")
    added = {"round_to": 1}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.decomposition, DECOMPOSITIONS, "method.decomposition")
        if self.energy is None and self.threshold is None:
            self.energy = self.default_energy
        check_pruning_target(self.energy, self.threshold)
        check(self.round_to >= 1, "method.round_to", f"must be >= 1, got {self.round_to}")


@dataclass
class SVDConfig(LowRankConfig):
    # auto: svd when the run starts from trained weights (init_from), else random | random (Kaiming, as the
    # paper) | svd (of the current weights); random with init_from is refused: it would discard them
    init: str = "auto"
    orthogonality: float = 1.0  # lambda_o
    # the sparsity term on s (lambda_s = weight) during "train": the regularizer group, which the command line
    # sets as regularizer=l1 regularizer.weight=0.1 (docs/method.md 1.2); none by default outside the command line
    regularizer: SparsityRegularizer = field(default_factory=lambda: SparsityRegularizer("none", 0.0))
    # epochs of the "orthogonal" stage before "train": decomposed training with orthogonality and no sparsity,
    # with an optimiser and schedule of its own (the official code's first of three trainings)
    orthogonal_epochs: int = 0
    finetune_epochs: int = 3
    # more results from the same trained model: one per energy, each pruned and fine-tuned on its own
    energies: List[float] = field(default_factory=list)

    # After 12 epochs Hoyer concentrates each layer's energy in a few singular values but leaves a long
    # tail that still matters: e = 3e-4 of sum(s^2) removes it at 2.7x fewer MACs (ResNet-8, Fashion-MNIST).
    default_energy: ClassVar[float] = 3e-4
    headline = (
        "method.decomposition",
        "method.regularizer.kind",
        "method.regularizer.weight",
        "method.energy",
        "method.threshold",
    )
    added = {"round_to": 1, "orthogonal_epochs": 0}
    point_keys = ("energies",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.init, ("auto", "random", "svd"), "method.init")
        check(self.orthogonal_epochs >= 0, "method.orthogonal_epochs", f"must be >= 0, got {self.orthogonal_epochs}")
        check(self.orthogonality >= 0, "method.orthogonality", f"must be >= 0, got {self.orthogonality}")
        check(all(0 <= e < 1 for e in self.energies), "method.energies", f"must each be in [0, 1), got {self.energies}")


class LowRankMethod(Method):
    """Decompose every conv, prune singular values, deploy pairs of small layers: what SVD training
    and post-hoc SVD share. ``init_mode`` is how ``prepare`` sets the factors (random or svd)."""

    Config = LowRankConfig
    compresses = True

    def __init__(self, config: LowRankConfig | None = None) -> None:
        super().__init__(config)
        self.ranks_before: dict[str, int] = {}
        self.ranks_unrounded: dict[str, int] = {}
        self.ranks_after: dict[str, int] = {}

    @property
    def init_mode(self) -> str:
        return "svd"

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        c = self.config
        return lowrank.decompose(model, c.decomposition, self.init_mode, skip=c.skip, linear=c.decompose_linear)

    def compress(self, model: nn.Module) -> None:
        c = self.config
        self.ranks_before, self.ranks_unrounded, self.ranks_after = lowrank.prune_recorded(
            model, energy=c.energy, threshold=c.threshold, round_to=c.round_to
        )

    def export(self, model: nn.Module) -> nn.Module:
        return lowrank.export(model, merge_unprofitable=self.config.merge_unprofitable)

    def details(self) -> dict:
        """Every decomposed layer's rank as decomposed, kept by the pruning rule alone and kept after rounding."""
        return {
            "ranks_before": self.ranks_before,
            "ranks_unrounded": self.ranks_unrounded,
            "ranks_after": self.ranks_after,
        }


@register_method("svd")
class SVDTraining(LowRankMethod):
    Config = SVDConfig

    @property
    def init_mode(self) -> str:
        return "random" if self.config.init == "auto" else self.config.init  # auto unresolved: the paper's

    def starting_from(self, trained: bool) -> SVDTraining:
        """``init: auto`` becomes svd (from trained weights) or random; random from trained weights is
        refused: the decomposition would redraw every layer while BatchNorm kept the loaded values."""
        if self.config.init == "random" and trained:
            raise ValueError(
                "method.init=random would discard the trained weights of init_from (every layer redrawn): "
                "use method.init=auto or svd"
            )
        if self.config.init == "auto":
            return self.reconfigured(init="svd" if trained else "random")
        return self

    def stages_before_train(self) -> list[tuple[str, int]]:
        epochs = self.config.orthogonal_epochs
        return [("orthogonal", epochs)] if epochs else []

    def regularization(self, model: nn.Module, stage: str) -> torch.Tensor | None:
        """``lambda_o * orthogonality`` in every stage, plus ``lambda_s * sparsity`` in ``train`` only."""
        lambda_o = self.config.orthogonality
        reg = lambda_o * orthogonality_loss(model) if lambda_o else None
        sparsity = self.config.regularizer
        if stage == "train" and sparsity.active:
            s = sparsity(model)
            reg = s if reg is None else reg + s
        return reg

    def operating_points(self) -> list[tuple[str, Method]]:
        points = self.config.energies
        return [(f"energy_{e:g}", self.reconfigured(energy=e, threshold=None, energies=[])) for e in points]
