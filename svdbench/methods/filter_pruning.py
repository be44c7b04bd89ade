"""The filter (channel) pruning methods (docs/method.md 2.2): L1-norm, SFP, FPGM, and their shared
base :class:`FilterPruning`, the extension point of the family.

All of them remove whole output filters through Torch-Pruning (:mod:`svdbench.pruning.groups`:
groups, the count rule, what is never pruned), choose them by a registered criterion
(:mod:`svdbench.pruning.criteria`: per-filter scores of one group, higher kept) and reach a MAC
budget by the speed-up search (:mod:`svdbench.pruning.speedup`). ``ratio`` is the per-group
fraction removed; ``speedup`` a MAC budget that picks the ratio.

Methods:

- :class:`L1FilterPruning` (``l1_filter``): dense training first (stage ``pretrain`` or
  ``init_from``), no ``train`` stage, ``compress`` prunes once by L1 norm, then ``finetune``.
- :class:`RandomFilterPruning` (``random_filter``): as L1-norm, the filters drawn at random per group
  (criterion ``random``: the same counts, torch's default generator).
- :class:`SoftFilterPruning` (``sfp``) and :class:`FPGMPruning` (``fpgm``): during the ``train``
  stage, after every epoch, the selected filters of every group are set to zero (the weights of
  every out-member conv, and its bias) but keep training; ``compress`` removes the filters zeroed
  after the last epoch (or, with no train epoch, those the criterion selects), then ``finetune``.
  A zeroed filter still passes its BatchNorm shift to the next layer; removing it drops that
  constant, which the pipeline's BatchNorm recalibration and the fine-tuning absorb.

A method of your own with a criterion of your own::

    @register_criterion("weight_variance")
    def weight_variance(filters):  # C x F -> C, higher kept
        return filters.var(dim=1)

    @register_method("variance_filter")
    class VarianceFilterPruning(FilterPruning):
        criterion = "weight_variance"
        pretrain_dense = True  # one-shot, as L1-norm; or soft = True, as SFP
        train_epochs = 0
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar, List

import torch
from torch import nn

from ..checks import check, check_choice, check_exactly_one
from ..macs import weight_macs
from ..pruning import CRITERIA, ROUNDINGS, FilterPruner, channel_counts, kept_channels, ratio_for_speedup, score
from .base import Method, MethodConfig, register_method

# weight_macs and kept_channels are re-exported for the callers of the former layout (tests/test_model_variants.py)
__all__ = [
    "FilterPruningConfig",
    "FilterPruning",
    "L1FilterPruning",
    "RandomFilterPruning",
    "SoftFilterPruning",
    "FPGMConfig",
    "FPGMPruning",
    "kept_channels",
    "weight_macs",
]


@dataclass
class FilterPruningConfig(MethodConfig):
    """Common to the filter-pruning methods: the target, a per-layer ratio or a MAC speed-up."""

    ratio: float | None = None  # fraction of the filters of every prunable conv removed
    speedup: float | None = None  # alternative: dense MACs / pruned MACs to reach (null with ratio null: 2.0)
    finetune_epochs: int = 3
    skip: List[str] = field(default_factory=list)  # fnmatch patterns of convs whose filters stay
    # per group of C: keep floor(C (1 - ratio)) (kept, Torch-Pruning's count) or prune floor(C ratio) (pruned, as
    # the SFP/FPGM code)
    rounding: str = "kept"
    round_to: int = 1  # round every kept width up to a multiple of this (at most the full width); 1: off

    headline = ("method.ratio", "method.speedup")
    added = {"round_to": 1, "rounding": "kept"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ratio is None and self.speedup is None:
            self.speedup = 2.0
        check_exactly_one({"method.ratio": self.ratio, "method.speedup": self.speedup})
        check(self.ratio is None or 0 < self.ratio < 1, "method.ratio", f"must be in (0, 1), got {self.ratio}")
        check(self.speedup is None or self.speedup > 1, "method.speedup", f"must be > 1, got {self.speedup}")
        check_choice(self.rounding, ROUNDINGS, "method.rounding")
        check(self.round_to >= 1, "method.round_to", f"must be >= 1, got {self.round_to}")


class FilterPruning(Method):
    """The filter-pruning family, and its extension point: a subclass names a registered criterion
    (``criterion``) and a schedule, and inherits the rest (the target, the speed-up search, the soft
    masks, compress, checkpoints, details). One-shot as L1-norm: ``pretrain_dense = True`` and
    ``train_epochs = 0``; soft as SFP / FPGM: ``soft = True``. An unknown criterion is refused when
    the subclass is defined."""

    Config = FilterPruningConfig
    compresses = True
    #: a name in :data:`svdbench.pruning.CRITERIA`: per-filter scores of one group, higher kept
    criterion: ClassVar[str] = "l1"
    #: zero the selected filters after every train epoch and remove those at compress (SFP, FPGM)
    soft: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        CRITERIA.get(cls.criterion)  # an unknown name: a one-line InputError naming the registered ones

    def __init__(self, config: FilterPruningConfig | None = None) -> None:
        super().__init__(config)
        self.ratio_used: float | None = self.config.ratio
        self.speedup_planned: float | None = None
        self.pruner: FilterPruner | None = None
        self.masks: dict[str, torch.Tensor] = {}  # root conv -> bool per channel, True = zeroed (soft)
        self.soft_epochs = 0
        self.groups: dict[str, list[str]] = {}
        self.ignored: list[str] = []
        self.channels_before: dict[str, int] = {}
        self.channels_after: dict[str, int] = {}
        self.pruned: dict[str, list[int]] = {}
        self._searched: tuple | None = None  # (architecture key, ratio_for_speedup's answer)

    def _ratio_for_speedup(self, model: nn.Module, input_shape) -> tuple[float, float]:
        """:func:`ratio_for_speedup`, searched once per architecture and input shape (check() and
        prepare() see the same one: the counts depend on the shapes only, not on the weights)."""
        key = (tuple(channel_counts(model).items()), tuple(input_shape))
        if self._searched is None or self._searched[0] != key:
            c = self.config
            found = ratio_for_speedup(model, input_shape, c.speedup, c.skip, rounding=c.rounding, round_to=c.round_to)
            self._searched = (key, found)
        return self._searched[1]

    def check(self, model: nn.Module, input_shape) -> None:
        """The model's channels can be traced (ValueError otherwise), and a speed-up target is within reach."""
        if self.config.speedup is not None:  # raises ValueError when the target is out of reach
            self._ratio_for_speedup(model, input_shape)
        else:
            c = self.config
            FilterPruner(copy.deepcopy(model), input_shape, c.skip, c.rounding, c.round_to)

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        c = self.config
        self.pruner = FilterPruner(model, input_shape, c.skip, c.rounding, c.round_to)
        self.ignored = list(self.pruner.ignored)
        self.groups = {self.pruner.root_name(g): self.pruner.members(g) for g in self.pruner.groups()}
        self.channels_before = channel_counts(model)
        if self.config.speedup is not None:
            self.ratio_used, self.speedup_planned = self._ratio_for_speedup(model, input_shape)
        return model

    def _select(self, masks: dict[str, torch.Tensor] | None = None) -> dict[str, list[int]]:
        """Root conv -> the channels to prune at ``ratio_used``: the lowest-scored by the criterion,
        after the channels ``masks`` marks (those zeroed after the last soft epoch), which go first."""
        assert self.pruner is not None, "prepare() first"
        pruner = self.pruner

        def order(group) -> torch.Tensor:
            ranked = torch.argsort(score(self.criterion, pruner.filter_matrix(group)), stable=True)
            mask = masks.get(pruner.root_name(group)) if masks else None
            return ranked if mask is None else torch.cat([mask.nonzero().flatten(), ranked[~mask[ranked]]])

        return pruner.select(self.ratio_used, order)

    def on_epoch_end(self, model: nn.Module, epoch: int, stage: str) -> None:
        if not self.soft or stage != "train":
            return
        plan = self._select()
        self.pruner.zero(plan)
        self.masks = {}
        for root, idxs in plan.items():
            mask = torch.zeros(self.pruner.initial[root], dtype=torch.bool)
            mask[idxs] = True
            self.masks[root] = mask
        self.soft_epochs += 1

    def compress(self, model: nn.Module) -> None:
        assert self.pruner is not None and self.pruner.model is model, "compress() needs the prepared model"
        self.pruned = self._select(self.masks if self.soft and self.masks else None)
        self.pruner.remove(self.pruned)
        self.channels_after = channel_counts(model)

    def state_dict(self) -> dict:
        return {"masks": {k: v.clone() for k, v in self.masks.items()}, "soft_epochs": self.soft_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.masks = {str(k): v.clone().bool().cpu() for k, v in state.get("masks", {}).items()}
        self.soft_epochs = int(state.get("soft_epochs", 0))

    def details(self) -> dict:
        """The criterion and schedule the class runs, the ratio used (searched for a ``speedup``) and
        the speed-up planned, the layers left whole, the groups, the soft epochs, every conv's
        channels before and after, and how many channels each group lost; ``speedup_target`` where a
        ``speedup`` drove it."""
        target = {} if self.config.speedup is None else {"speedup_target": self.config.speedup}
        return {
            "criterion": self.criterion,
            "soft": self.soft,
            "ratio_used": self.ratio_used,
            "speedup_planned": self.speedup_planned,
            "ignored": self.ignored,
            "groups": self.groups,
            "soft_epochs": self.soft_epochs,
            "channels_before": self.channels_before,
            "channels_after": self.channels_after,
            "pruned_channels": {k: len(v) for k, v in self.pruned.items()},
            **target,
        }


@register_method("l1_filter")
class L1FilterPruning(FilterPruning):
    """Li et al. (ICLR 2017): prune the lowest-L1 filters of a trained network once, fine-tune."""

    criterion = "l1"
    pretrain_dense = True
    train_epochs = 0


@register_method("random_filter")
class RandomFilterPruning(FilterPruning):
    """L1-norm's schedule and counts with the filters drawn at random per group (seeded per run): the
    control for the criteria."""

    criterion = "random"
    pretrain_dense = True
    train_epochs = 0


@register_method("sfp")
class SoftFilterPruning(FilterPruning):
    """He et al. (IJCAI 2018): zero the lowest-L2 filters after every epoch, keep training them."""

    criterion = "l2"
    soft = True


@dataclass
class FPGMConfig(FilterPruningConfig):
    # the official code's behaviour: the gradients of the selected (zeroed) filters are cleared at
    # every training step, so they stay zero until the next selection; false: soft, as the paper
    # describes and as SFP does (only momentum could move them with true)
    mask_gradients: bool = False


@register_method("fpgm")
class FPGMPruning(FilterPruning):
    """He et al. (CVPR 2019): like SFP, zeroing the filters nearest the geometric median; with
    ``mask_gradients`` their gradients are cleared at every training step, as the authors' code does."""

    Config = FPGMConfig
    criterion = "fpgm"
    soft = True

    def __init__(self, config: FPGMConfig | None = None) -> None:
        super().__init__(config)
        self._masked: tuple[dict, list] | None = None  # (the masks it was made from, their filters)

    def after_backward(self, model: nn.Module, step: int, stage: str) -> None:
        if not (self.config.mask_gradients and stage == "train" and self.masks and self.pruner is not None):
            return
        if self._masked is None or self._masked[0] is not self.masks:  # a new selection (or a resumed one)
            plan = {root: mask.nonzero().flatten().tolist() for root, mask in self.masks.items()}
            self._masked = (self.masks, self.pruner.filters(plan))
        self.pruner.zero_grad(self._masked[1])
