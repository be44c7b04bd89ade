"""TRP: Trained Rank Pruning (Xu et al., IJCAI 2020, arXiv 2004.14566; docs/method.md 2.1).

Stage ``train``: the weights stay dense. Every ``period`` iterations (the iterations whose index
``step`` is a multiple of ``period``, the first one included), for each eligible conv, as the authors'
``cifar-TRP.py`` does:

- ``before_forward``: the SVD ``U diag(s) V^T`` of the kernel reshaped channel-wise
  (``Cout x Cin*k*k``) or spatial-wise (``Cin*kh x Cout*kw``), as trained since the last truncation;
  with ``U_r, s_r, V_r`` the leading singular triplets holding ``energy_kept`` of ``sum(s^2)``, the
  weight is replaced by ``U_r diag(s_r) V_r^T`` and the step's forward runs on it;
- ``after_backward``: the nuclear-norm sub-gradient ``nuclear_weight * U_r V_r^T`` of that same
  (untruncated) SVD is added to the weight gradient.

``period`` counts the stage's iterations; the authors' counter restarts every epoch, which is the
same at period 1 (their default and the presets') and whenever period divides an epoch's batches.

``compress``: every eligible conv becomes a :class:`svdbench.lowrank.LowRankConv2d` (SVD of the
trained weight, so exact at full rank) pruned at the final ``threshold`` on ``|s|`` (reference code:
0.05), ``energy``, or the smallest energy reaching ``speedup`` (:class:`~.svd.SpeedupTargets`; ``speedups``:
one operating point per target from the same training). Stage ``finetune`` trains the factors; ``export``
deploys pairs of small convs.

Eligible: ``nn.Conv2d`` with ``groups == 1`` and numeric zero padding, full rank >= 2, not matched
by a ``skip`` pattern, not the first conv (``skip_first``) and not 1x1 (``skip_1x1``), as in the
reference code; with ``decompose_linear`` also every ``nn.Linear`` of full rank >= 2 (its matrix is its
weight, ``out x in``), except a vision transformer's patch embedding and classifier
(``embedding_head_dense``, :mod:`svdbench.models.roles`).
"""

from __future__ import annotations

import fnmatch
import glob
from dataclasses import dataclass, field
from typing import List, Sequence

import torch
from torch import nn

from .. import lowrank
from ..checks import check, check_choice
from ..lowrank import LowRankConv2d, LowRankLayer
from ..models import roles
from .base import Method, MethodConfig, register_method
from .svd import DECOMPOSITIONS, SpeedupTargets, check_linear_only, check_pruning_target, check_speedups


class KernelReshape:
    """The 4-D kernel <-> 2-D matrix reshape of one conv, borrowed from :class:`LowRankConv2d`
    (its ``weight_to_matrix`` / ``matrix_to_weight`` read only the attributes set here)."""

    weight_to_matrix = LowRankConv2d.weight_to_matrix
    matrix_to_weight = LowRankConv2d.matrix_to_weight

    def __init__(self, conv: nn.Conv2d, decomposition: str) -> None:
        self.decomposition = decomposition
        self.out_channels, self.in_channels = conv.out_channels, conv.in_channels
        self.kernel_size = tuple(conv.kernel_size)

    def full_rank(self) -> int:
        (kh, kw), ci, co = self.kernel_size, self.in_channels, self.out_channels
        return min(co, ci * kh * kw) if self.decomposition == "channel" else min(ci * kh, co * kw)


class LinearReshape:
    """A Linear layer's weight is its matrix (``out x in``): the reshape :class:`KernelReshape` offers for a conv."""

    def __init__(self, linear: nn.Linear) -> None:
        self.out_features, self.in_features = linear.out_features, linear.in_features

    @staticmethod
    def weight_to_matrix(w: torch.Tensor) -> torch.Tensor:
        return w

    @staticmethod
    def matrix_to_weight(m: torch.Tensor) -> torch.Tensor:
        return m

    def full_rank(self) -> int:
        return min(self.out_features, self.in_features)


def reshape_of(layer: nn.Module, decomposition: str) -> KernelReshape | LinearReshape:
    """The 2-D view TRP truncates: a conv's kernel reshaped by ``decomposition``, a Linear's weight as it is."""
    return LinearReshape(layer) if isinstance(layer, nn.Linear) else KernelReshape(layer, decomposition)


def truncated_svd(matrix: torch.Tensor, energy_kept: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U_r, s_r, Vh_r`` of ``matrix`` (computed in float64) where r is the smallest rank whose
    singular values hold at least ``energy_kept`` of ``sum(s^2)`` (at least 1)."""
    u, s, vh = torch.linalg.svd(matrix.detach().double(), full_matrices=False)
    r = lowrank.kept_rank(s, energy=max(0.0, 1.0 - energy_kept))
    return u[:, :r], s[:r], vh[:r]


def eligible_convs(
    model: nn.Module,
    decomposition: str,
    skip: Sequence[str] = (),
    skip_first: bool = True,
    skip_1x1: bool = True,
    linear: bool = False,
) -> list[str]:
    """Names of the convs (and with ``linear`` the Linear layers) TRP acts on (see the module docstring),
    in module order."""
    names, first = [], True
    for name, m in model.named_modules():
        if linear and isinstance(m, nn.Linear) and not isinstance(m, LowRankLayer):
            if not any(fnmatch.fnmatchcase(name, p) for p in skip) and LinearReshape(m).full_rank() >= 2:
                names.append(name)
            continue
        if not isinstance(m, nn.Conv2d) or isinstance(m, LowRankLayer):
            continue
        is_first, first = first, False
        if skip_first and is_first:
            continue
        if skip_1x1 and tuple(m.kernel_size) == (1, 1):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            continue
        if m.groups != 1 or isinstance(m.padding, str) or m.padding_mode != "zeros":
            continue
        if KernelReshape(m, decomposition).full_rank() < 2:
            continue
        names.append(name)
    return names


@dataclass
class TRPConfig(MethodConfig):
    decomposition: str = "channel"  # channel | spatial reshape of each conv kernel
    period: int = 10  # iterations between two truncations (each with its nuclear-norm sub-gradient); docs: 1 to 20
    # share of sum(s^2) each truncation KEEPS (reference code: 0.9). It sets the MAC reduction: ResNet-8 on
    # Fashion-MNIST, 4 epochs from the dense checkpoint: 0.9 -> 3.31x, 0.95 -> 2.05x, 0.96 -> 1.78x.
    energy_kept: float = 0.9
    nuclear_weight: float = 3e-4  # lambda of the nuclear-norm sub-gradient U_r V_r^T
    threshold: float | None = None  # final decomposition: drop |s| < threshold (null with energy null: 0.05)
    energy: float | None = None  # alternative: drop the tail holding at most this share of sum(s^2)
    speedup: float | None = None  # alternative: the smallest energy whose deployed model reaches this speed-up
    speedups: List[float] = field(default_factory=list)  # more results from the same training: one per target
    finetune_epochs: int = 3
    skip: List[str] = field(default_factory=list)  # fnmatch patterns of convs left dense
    skip_first: bool = True  # reference code: the first conv stays dense
    skip_1x1: bool = True  # reference code: 1x1 convs stay dense
    decompose_linear: bool = False  # act on nn.Linear layers too (a vision transformer's qkv, proj, fc1, fc2)
    embedding_head_dense: bool = True  # a vision transformer's patch embedding and classifier stay dense
    merge_unprofitable: bool = True  # deploy a layer dense where its factor pair costs more
    round_to: int = 1  # round each final rank up to a multiple of this (at most full rank); 1: off

    headline = ("method.decomposition", "method.period", "method.energy_kept", "method.threshold", "method.speedup")
    renamed = {"energy_train": "energy_kept"}
    added = {"round_to": 1, "speedups": [], "decompose_linear": False, "embedding_head_dense": True}
    point_keys = ("speedups",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.decomposition, DECOMPOSITIONS, "method.decomposition")
        check(self.period >= 1, "method.period", f"must be >= 1, got {self.period}")
        check(0 < self.energy_kept <= 1, "method.energy_kept", f"must be in (0, 1], got {self.energy_kept}")
        check(self.nuclear_weight >= 0, "method.nuclear_weight", f"must be >= 0, got {self.nuclear_weight}")
        check(self.round_to >= 1, "method.round_to", f"must be >= 1, got {self.round_to}")
        if self.threshold is None and self.energy is None and self.speedup is None:
            self.threshold = 0.05
        check_pruning_target(self.energy, self.threshold, self.speedup)
        check_speedups(self.speedups, self.speedup)


@register_method("trp")
class TRP(SpeedupTargets, Method):
    """Give the final ``threshold``, ``energy`` or ``speedup``; with none, ``threshold`` is 0.05."""

    Config = TRPConfig
    compresses = True

    def __init__(self, config: TRPConfig | None = None) -> None:
        super().__init__(config)
        self.layers: list[str] = []
        self.truncations = 0
        self.ranks_train: dict[str, int] = {}
        self.ranks_before: dict[str, int] = {}
        self.ranks_unrounded: dict[str, int] = {}
        self.ranks_after: dict[str, int] = {}
        self._subgradients: dict[str, torch.Tensor] = {}  # U_r V_r^T of this step's truncation, by conv

    def eligible(self, model: nn.Module) -> list[str]:
        c = self.config
        skip = [*c.skip, *(roles.embedding_and_head(model) if c.embedding_head_dense else [])]
        return eligible_convs(model, c.decomposition, skip, c.skip_first, c.skip_1x1, c.decompose_linear)

    def decomposed(self, model: nn.Module) -> nn.Module:
        return self.decompose(model, self.eligible(model))

    def decompose(self, model: nn.Module, layers: list[str]) -> nn.Module:
        """``layers`` of the dense ``model`` as :class:`LowRankConv2d` (SVD of their weights), in place."""
        keep = set(layers)
        left = [
            glob.escape(n) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in keep
        ]
        return lowrank.decompose(
            model, self.config.decomposition, "svd", skip=left, linear=self.config.decompose_linear
        )

    def check(self, model: nn.Module, input_shape) -> None:
        check_linear_only(model, self.config.decompose_linear, self.config.decomposition)
        self.check_targets(model, input_shape)

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        self.layers = self.eligible(model)
        self.remember(model, input_shape)
        return model

    def _due(self, step: int, stage: str) -> bool:
        return stage == "train" and step % self.config.period == 0

    def _convs(self, model: nn.Module):
        for name in self.layers:
            layer = model.get_submodule(name)
            yield name, layer, reshape_of(layer, self.config.decomposition)

    @torch.no_grad()
    def before_forward(self, model: nn.Module, step: int, stage: str) -> None:
        self._subgradients = {}
        if not self._due(step, stage):
            return
        for name, conv, shape in self._convs(model):
            u, s, vh = truncated_svd(shape.weight_to_matrix(conv.weight), self.config.energy_kept)
            conv.weight.copy_(shape.matrix_to_weight((u * s) @ vh))
            if self.config.nuclear_weight:
                self._subgradients[name] = shape.matrix_to_weight(u @ vh)
            self.ranks_train[name] = int(s.numel())
        self.truncations += 1

    @torch.no_grad()
    def after_backward(self, model: nn.Module, step: int, stage: str) -> None:
        """Adds the sub-gradients :meth:`before_forward` kept for this step (none on steps not due)."""
        for name, sub in self._subgradients.items():
            conv = model.get_submodule(name)
            if conv.weight.grad is not None:
                conv.weight.grad.add_(sub.to(conv.weight.grad.dtype), alpha=self.config.nuclear_weight)
        self._subgradients = {}

    def compress(self, model: nn.Module) -> None:
        if self.origin is not None:  # an operating point: its run's eligible convs and training record
            self.layers = list(self.origin.layers)
            self.truncations, self.ranks_train = self.origin.truncations, dict(self.origin.ranks_train)
        self.decompose(model, self.layers)
        c = self.config
        energy = self.target_energy(model)
        self.ranks_before, self.ranks_unrounded, self.ranks_after = lowrank.prune_recorded(
            model, energy=c.energy if energy is None else energy, threshold=c.threshold, round_to=c.round_to
        )

    def export(self, model: nn.Module) -> nn.Module:
        return lowrank.export(model, merge_unprofitable=self.config.merge_unprofitable)

    def operating_points(self) -> list[tuple[str, Method]]:
        """One point per ``speedups`` target, from the same trained dense weights."""
        return self.speedup_points(energy=None, threshold=None)

    def state_dict(self) -> dict:
        return {"truncations": self.truncations, "ranks_train": dict(self.ranks_train)}

    def load_state_dict(self, state: dict) -> None:
        self.truncations = int(state.get("truncations", 0))
        self.ranks_train = {str(k): int(v) for k, v in state.get("ranks_train", {}).items()}

    def details(self) -> dict:
        """The eligible convs, the truncations done, the ranks the last truncation kept
        (``ranks_train``) and the final ranks as decomposed, by the rule alone and after rounding; with
        ``speedup`` the energy found and the speed-up it reached."""
        return {
            "layers": list(self.layers),
            "truncations": self.truncations,
            "ranks_train": dict(self.ranks_train),
            "ranks_before": dict(self.ranks_before),
            "ranks_unrounded": dict(self.ranks_unrounded),
            "ranks_after": dict(self.ranks_after),
            **self.target_details(),
        }
