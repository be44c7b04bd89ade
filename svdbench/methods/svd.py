"""SVD training (Yang et al., CVPR-W 2020; docs/method.md section 1).

Stage ``orthogonal`` (``orthogonal_epochs``, default 0): decomposed layers trained on
``task + lambda_o * orthogonality`` only, the authors' first training.
Stage ``train``: decomposed layers trained on ``task + lambda_o * orthogonality + lambda_s * sparsity``.
``compress``: per-layer singular-value pruning at energy ``e`` (or absolute ``threshold``).
Stage ``finetune``: sparsity off, orthogonality on. ``export``: pairs of small layers.
``operating_points``: one more result per energy in ``energies`` and per target in ``speedups``, pruned
from the same trained model.

``speedup`` (instead of ``energy`` or ``threshold``): ``compress`` prunes at the smallest global energy
whose deployed model reaches dense MACs / deployed MACs >= speedup (fvcore), :mod:`svdbench.lowrank.search`;
:class:`SpeedupTargets` is that part, shared with post-hoc SVD and TRP.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, List

import torch
from torch import nn

from .. import lowrank
from ..checks import check, check_choice, check_exactly_one, rounded_down
from ..lowrank.search import EnergyFound, energy_for_speedup, rank_one_speedup
from ..macs import analyze_macs
from ..models import roles
from ..regularizers import SparsityRegularizer, orthogonality_loss
from .base import Method, MethodConfig, register_method

DECOMPOSITIONS = ("channel", "spatial")
log = logging.getLogger("svdbench")


def check_pruning_target(energy: float | None, threshold: float | None, speedup: float | None = None) -> None:
    """Exactly one of ``method.energy`` (in [0, 1)), ``method.threshold`` (>= 0) and ``method.speedup`` (> 1)."""
    keys = {"method.energy": energy, "method.threshold": threshold}
    check_exactly_one(keys if speedup is None else {**keys, "method.speedup": speedup})
    check(energy is None or 0 <= energy < 1, "method.energy", f"must be in [0, 1), got {energy}")
    check(threshold is None or threshold >= 0, "method.threshold", f"must be >= 0, got {threshold}")
    check(speedup is None or speedup > 1, "method.speedup", f"must be > 1, got {speedup}")


def speedup_label(target: float) -> str:
    """The operating point of one ``method.speedups`` entry: ``speedup_1.5``, ``speedup_2``."""
    return f"speedup_{target:g}"


def check_speedups(speedups: list[float], main: float | None = None) -> None:
    """``method.speedups``: each > 1, no two with the same label (``[2, 2.0]`` is refused), none the main
    result's target ``main`` (``method.speedup``: the point would train it again)."""
    check(all(x > 1 for x in speedups), "method.speedups", f"must each be > 1, got {speedups}")
    labels = [speedup_label(x) for x in speedups]
    twice = sorted({lab for lab in labels if labels.count(lab) > 1})
    check(not twice, "method.speedups", f"must not repeat a target ({', '.join(twice)} twice), got {speedups}")
    check(
        main is None or speedup_label(main) not in labels,
        "method.speedups",
        f"holds the main result's target (method.speedup={main}), which it would train again: leave it out, got "
        f"{speedups}",
    )


@dataclass
class LowRankConfig(MethodConfig):
    """Shared by the methods that decompose and prune singular values (SVD training, post-hoc SVD)."""

    decomposition: str = "channel"  # channel (Cout x Cin*k*k) | spatial (Cin*k x Cout*k) reshape of each kernel
    # e: per layer, drop the smallest singular values holding at most this share of sum(s^2)
    # (null with threshold null: the method's default_energy)
    energy: float | None = None
    threshold: float | None = None  # alternative: drop |s| < threshold (leave energy null)
    # alternative: dense MACs / deployed MACs to reach (> 1), by the smallest global energy that does
    speedup: float | None = None
    speedups: List[float] = field(default_factory=list)  # more results from the same model: one per target
    skip: List[str] = field(default_factory=list)  # fnmatch patterns of module names left dense
    decompose_linear: bool = False  # decompose nn.Linear layers too (a vision transformer's: qkv, proj, fc1, fc2)
    # a vision transformer's patch embedding and classifier stay dense (svdbench.models.roles); false: decomposed
    # too. No effect on CNNs, whose stem and classifier are decomposed as the SVD-training authors do
    embedding_head_dense: bool = True
    merge_unprofitable: bool = True  # deploy a layer dense where its factor pair costs more MACs
    # round each kept rank up to a multiple of this (at most the full rank): inner widths that kernels tile
    # without a remainder (docs/performance.md); 1 leaves the ranks alone
    round_to: int = 1

    #: the energy used when neither energy nor threshold is given
    default_energy: ClassVar[float] = 0.05
    headline = ("method.decomposition", "method.energy", "method.threshold", "method.speedup")
    added = {"round_to": 1, "speedups": [], "embedding_head_dense": True}
    point_keys = ("speedups",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.decomposition, DECOMPOSITIONS, "method.decomposition")
        if self.energy is None and self.threshold is None and self.speedup is None:
            self.energy = self.default_energy
        check_pruning_target(self.energy, self.threshold, self.speedup)
        check_speedups(self.speedups, self.speedup)
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
    # layers compute U diag(|s|) V^T, as the authors' forward (diag(|Sigma|)); false: signed s. The same
    # functions either way; only a value crossing zero differs (it reflects instead of changing sign)
    abs_singular_values: bool = False

    # After 12 epochs Hoyer concentrates each layer's energy in a few singular values but leaves a long
    # tail that still matters: e = 3e-4 of sum(s^2) removes it at 2.7x fewer MACs (ResNet-8, Fashion-MNIST).
    default_energy: ClassVar[float] = 3e-4
    headline = (
        "method.decomposition",
        "method.regularizer.kind",
        "method.regularizer.weight",
        "method.energy",
        "method.threshold",
        "method.speedup",
    )
    added = {
        "round_to": 1,
        "orthogonal_epochs": 0,
        "speedups": [],
        "abs_singular_values": False,
        "embedding_head_dense": True,
    }
    point_keys = ("energies", "speedups")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.init, ("auto", "random", "svd"), "method.init")
        check(self.orthogonal_epochs >= 0, "method.orthogonal_epochs", f"must be >= 0, got {self.orthogonal_epochs}")
        check(self.orthogonality >= 0, "method.orthogonality", f"must be >= 0, got {self.orthogonality}")
        check(all(0 <= e < 1 for e in self.energies), "method.energies", f"must each be in [0, 1), got {self.energies}")
        labels = [f"energy_{e:g}" for e in self.energies]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        check(
            not twice,
            "method.energies",
            f"label two points alike ({', '.join(twice)}): give distinct energies, got {self.energies}",
        )
        if self.energy is not None:
            check(
                f"energy_{self.energy:g}" not in labels,
                "method.energies",
                f"holds the main result's energy (method.energy={self.energy:g}, the default where not given), "
                f"which it would prune and fine-tune again: leave it out or give another method.energy, got "
                f"{self.energies}",
            )


def check_linear_only(model: nn.Module, decompose_linear: bool, decomposition: str) -> None:
    """A vision transformer: ValueError without ``decompose_linear`` (its layers are Linear, nothing else
    would be decomposed); a warning when ``decomposition`` is spatial (a Linear layer has one 2-D view,
    out x in: the channel/spatial choice applies to convolutions only)."""
    if not roles.is_vision_transformer(model):
        return
    if not decompose_linear:
        raise ValueError(
            "this vision transformer's layers are Linear: set method.decompose_linear=true (its patch embedding and "
            "classifier stay dense unless method.embedding_head_dense=false)"
        )
    if decomposition != "channel":
        log.warning(
            "method.decomposition=%s does not apply to Linear layers (each is decomposed as out x in); it acts on "
            "convolutions only",
            decomposition,
        )


class SpeedupTargets:
    """``method.speedup`` and ``method.speedups`` of a low-rank method (SVD training, post-hoc SVD, TRP):
    the part it shares. ``check`` refuses a target beyond every layer at rank 1; ``prepare`` records the
    input shape and the dense MACs (fvcore) that ``compress`` needs to search the energy
    (:func:`svdbench.lowrank.search.energy_for_speedup`); an operating point made by
    :meth:`speedup_points` reads them from its run's method (``origin``), whose ``prepare`` it shares.
    The host class has ``config`` (``speedup``, ``speedups``, ``round_to``, ``merge_unprofitable``) and
    :meth:`decomposed`."""

    config: Any  # LowRankConfig or TRPConfig
    #: the run's method an operating point comes from (None: this is the run's method)
    origin: SpeedupTargets | None = None
    #: (input shape, dense MACs) as ``prepare`` saw them, where a target is set
    measured: tuple[tuple[int, ...], int] | None = None
    #: what the search found at ``compress`` (``speedup`` set)
    found: EnergyFound | None = None

    def decomposed(self, model: nn.Module) -> nn.Module:
        """``model`` (a copy of the dense one) decomposed in place, as this method will decompose it."""
        raise NotImplementedError

    def targets(self) -> list[float]:
        return [x for x in (self.config.speedup, *self.config.speedups) if x is not None]

    def check_targets(self, model: nn.Module, input_shape) -> None:
        """ValueError naming the largest reachable speed-up (every decomposed layer at rank 1) when a
        target is beyond it; computed on a copy of the dense ``model``."""
        c = self.config
        if not self.targets():
            return
        dense = analyze_macs(model, input_shape).macs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "left dense": prepare warns about those itself
            work = self.decomposed(copy.deepcopy(model))
        most = rank_one_speedup(work, input_shape, dense, c.round_to, c.merge_unprofitable)
        for key, asked in (("method.speedup", [c.speedup]), ("method.speedups", c.speedups)):
            if any(x is not None and x > most for x in asked):
                shown = asked[0] if key == "method.speedup" else asked
                limit = rounded_down(most)
                raise ValueError(f"{key}={shown} is out of reach: at most {limit}x (every layer at rank 1)")

    def remember(self, model: nn.Module, input_shape) -> None:
        """At ``prepare``, on the dense model: the input shape and dense MACs (only where a target is set)."""
        if self.targets():
            self.measured = (tuple(input_shape), analyze_macs(model, input_shape).macs)

    def target_energy(self, model: nn.Module) -> float | None:
        """The smallest energy reaching ``speedup`` on the decomposed ``model`` (None: no target)."""
        c = self.config
        if c.speedup is None:
            return None
        measured = self.measured or (self.origin.measured if self.origin is not None else None)
        if measured is None:
            raise RuntimeError("method.speedup: compress() needs the input shape prepare() records")
        shape, dense = measured
        self.found = energy_for_speedup(model, shape, c.speedup, dense, c.round_to, c.merge_unprofitable)
        return self.found.energy

    def target_details(self) -> dict:
        """``energy_used``, ``speedup_target``, ``speedup_reached`` (fvcore's) where ``speedup`` drove it."""
        if self.found is None:
            return {}
        return {
            "energy_used": self.found.energy,
            "speedup_target": self.config.speedup,
            "speedup_reached": self.found.speedup,
        }

    def speedup_points(self, **changes) -> list[tuple[str, Method]]:
        """One operating point per ``speedups`` target: a copy with that ``speedup``, ``changes`` and no points."""
        points = []
        for x in self.config.speedups:
            point = self.reconfigured(speedup=x, speedups=[], **changes)
            point.origin = self
            points.append((speedup_label(x), point))
        return points


class LowRankMethod(SpeedupTargets, Method):
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

    def skipped(self, model: nn.Module) -> list[str]:
        """``skip``, and a vision transformer's patch embedding and classifier (``embedding_head_dense``)."""
        c = self.config
        return [*c.skip, *(roles.embedding_and_head(model) if c.embedding_head_dense else [])]

    def decomposed(self, model: nn.Module) -> nn.Module:
        c = self.config
        return lowrank.decompose(model, c.decomposition, "svd", skip=self.skipped(model), linear=c.decompose_linear)

    def check(self, model: nn.Module, input_shape) -> None:
        check_linear_only(model, self.config.decompose_linear, self.config.decomposition)
        self.check_targets(model, input_shape)

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        c = self.config
        self.remember(model, input_shape)
        skip = self.skipped(model)
        return lowrank.decompose(model, c.decomposition, self.init_mode, skip=skip, linear=c.decompose_linear)

    def compress(self, model: nn.Module) -> None:
        c = self.config
        energy = self.target_energy(model)
        self.ranks_before, self.ranks_unrounded, self.ranks_after = lowrank.prune_recorded(
            model, energy=c.energy if energy is None else energy, threshold=c.threshold, round_to=c.round_to
        )

    def export(self, model: nn.Module) -> nn.Module:
        return lowrank.export(model, merge_unprofitable=self.config.merge_unprofitable)

    def operating_points(self) -> list[tuple[str, Method]]:
        return self.speedup_points(energy=None, threshold=None)

    def details(self) -> dict:
        """Every decomposed layer's rank as decomposed, kept by the pruning rule alone and kept after
        rounding; with ``speedup`` the energy found and the speed-up it reached."""
        return {
            "ranks_before": self.ranks_before,
            "ranks_unrounded": self.ranks_unrounded,
            "ranks_after": self.ranks_after,
            **self.target_details(),
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

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        """Decomposes (:meth:`LowRankMethod.prepare`); with ``abs_singular_values`` every layer computes
        with ``|s|``."""
        model = super().prepare(model, input_shape)
        for layer in lowrank.lowrank_layers(model).values():
            layer.abs_s = self.config.abs_singular_values
        return model

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
        """One point per ``energies`` entry, then one per ``speedups`` target."""
        c = self.config
        by_energy = [
            (f"energy_{e:g}", self.reconfigured(energy=e, threshold=None, speedup=None, energies=[], speedups=[]))
            for e in c.energies
        ]
        return by_energy + self.speedup_points(energy=None, threshold=None, energies=[])
