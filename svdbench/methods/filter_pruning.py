"""Filter (channel) pruning baselines (docs/method.md 2.2): L1-norm, SFP and FPGM.

All three physically remove whole output filters through Torch-Pruning's ``DependencyGraph``, so
every coupled tensor shrinks with them: the BatchNorm after the conv, the input channels of the
next layer and, where the graph sees a residual addition (torchvision ResNets, option-B
shortcuts), every conv whose output is added to the same stream.

Groups. A group is what the graph couples to the output channels of one ``nn.Conv2d`` (its
root). Channel ``i`` of a group is scored on the concatenation of the ``i``-th output filters of
every conv (and linear) layer in the group whose *output* channels are pruned: for a plain block
conv that is just its own filter, as in the papers. Criteria (:class:`FilterImportance`):

- ``l1``: L1 norm (Li et al., ICLR 2017), lowest pruned;
- ``l2``: L2 norm (SFP, He et al., IJCAI 2018), lowest pruned;
- ``fpgm``: sum of Euclidean distances to the other filters of the group; the filters nearest the
  geometric median (smallest sum) are pruned (FPGM, He et al., CVPR 2019).

Every group of ``C`` channels keeps ``kept_channels(C, ratio) = max(1, floor(C * (1 - ratio)))``
(Torch-Pruning's local-pruning count, with at least one channel left): ``rounding: kept``. With
``rounding: pruned`` it prunes ``floor(C * ratio)`` instead, as the SFP and FPGM code does (one filter
fewer wherever ``C * ratio`` is not whole).

Target. ``ratio`` is that per-group fraction. ``speedup`` is a MAC budget: the ratio is raised in
steps of 1/100 on a copy of the network, pruning it further at each step as Torch-Pruning's
iterative steps do, until dense MACs / pruned MACs (convolutions and linear layers, counted like
fvcore: :func:`weight_macs`) reaches the target; the first such ratio is used. Since the channel
counts depend on the ratio only, the real network pruned at that ratio has the same MACs.

Ignored. The classifier (the last ``nn.Linear``) is never pruned at its output, nor are convs
matched by a ``skip`` pattern, nor the convs the model itself declares fixed (a group with an
ignored conv is left whole). A model declares them with a method ``fixed_output_channels()``
returning conv names: couplings its dependency graph cannot see. The CIFAR ResNets with option-A
shortcuts (zero-padded strided identities, :mod:`svdbench.models.cifar_resnet`) declare the stem
and every block's last conv: pruning the residual stream breaks their forward pass
(docs/pitfalls.md), so only block-internal channels are pruned, as Li et al. did for
ResNet-56/110. The residual stream keeps its width; the reachable speed-up is therefore bounded
(about 2 x the block-internal share of the MACs).

Methods:

- :class:`L1FilterPruning` (``l1_filter``): dense training first (stage ``pretrain`` or
  ``init_from``), no ``train`` stage, ``compress`` prunes once by L1 norm, then ``finetune``.
- :class:`SoftFilterPruning` (``sfp``) and :class:`FPGMPruning` (``fpgm``): during the ``train``
  stage, after every epoch, the selected filters of every group are set to zero (the weights of
  every out-member conv, and its bias) but keep training; ``compress`` removes the filters zeroed
  after the last epoch (or, with no train epoch, those the criterion selects), then ``finetune``.
  A zeroed filter still passes its BatchNorm shift to the next layer; removing it drops that
  constant, which the pipeline's BatchNorm recalibration and the fine-tuning absorb.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Sequence

import torch
from torch import nn

from ..checks import check, check_choice, check_exactly_one
from ..lowrank import round_rank
from ..torch_utils import eval_mode, example_input
from .base import Method, MethodConfig, register_method

CRITERIA = ("l1", "l2", "fpgm")
SPEEDUP_STEPS = 100


def _torch_pruning():
    """Torch-Pruning, imported when a filter-pruning method first needs it (it imports timm: about
    2 s that every other run would pay at start-up)."""
    import torch_pruning

    return torch_pruning


def _plain(idxs) -> list[int]:
    """Torch-Pruning's index objects as plain channel numbers."""
    return [int(i) for i in _torch_pruning()._helpers.to_plain_idxs(idxs)]


ROUNDINGS = ("kept", "pruned")


def kept_channels(channels: int, ratio: float, rounding: str = "kept", round_to: int = 1) -> int:
    """Channels a group of ``channels`` keeps at pruning ``ratio`` (at least one): ``floor(C (1 - ratio))``
    (rounding ``kept``) or ``C - floor(C ratio)`` (rounding ``pruned``), then rounded up to a multiple
    of ``round_to`` (at most ``C``; Torch-Pruning's ``round_to`` likewise keeps widths hardware-friendly)."""
    if rounding == "pruned":
        kept = channels - math.floor(channels * ratio + 1e-9)
    else:
        kept = math.floor(channels * (1.0 - ratio) + 1e-9)
    return max(1, round_rank(max(1, kept), channels, round_to))


def _hooked_forward(model: nn.Module, input_shape: Sequence[int], hook: Callable) -> None:
    """One batch-1 forward pass in eval mode without gradients, ``hook`` on every conv and linear layer."""
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with eval_mode(model), torch.no_grad():
            model(example_input(model, input_shape))
    finally:
        for h in hooks:
            h.remove()


def weight_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Per-sample multiply-accumulates of every ``nn.Conv2d`` and ``nn.Linear`` (module hooks, one
    forward pass at batch 1, eval mode). Equals :func:`svdbench.count_macs` (fvcore's conv +
    linear operators) on plain CNNs, at a fraction of its cost."""
    total = 0

    def count(m: nn.Module, inp, out) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out[0].numel() * (m.in_channels // m.groups) * kh * kw
        else:
            total += out[0].numel() * m.in_features

    _hooked_forward(model, input_shape, count)
    return int(total)


class MacModel:
    """:func:`weight_macs` without a forward pass: the output size per channel of every conv and
    linear layer is recorded once; channel pruning changes widths, never spatial sizes, so
    ``macs()`` reads the (pruned) widths off the modules and stays exact."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int]) -> None:
        self.sites: dict[nn.Module, int] = {}

        def record(m: nn.Module, inp, out) -> None:
            per_channel = out[0].numel() // (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
            self.sites[m] = per_channel

        _hooked_forward(model, input_shape, record)

    def macs(self) -> int:
        total = 0
        for m, per_channel in self.sites.items():
            if isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                total += per_channel * m.out_channels * (m.in_channels // m.groups) * kh * kw
            else:
                total += per_channel * m.out_features * m.in_features
        return total


def fixed_output_convs(model: nn.Module) -> list[str]:
    """The convs the model declares must keep their output channels (``model.fixed_output_channels()``,
    e.g. the option-A CIFAR ResNets' residual stream); [] for a model that declares none."""
    declare = getattr(model, "fixed_output_channels", None)
    return list(declare()) if callable(declare) else []


def ignored_names(model: nn.Module, skip: Iterable[str] = ()) -> list[str]:
    """Layers whose output channels are never pruned: the classifier, ``skip`` matches, the model's fixed convs."""
    skip = list(skip)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    names = linears[-1:] + [n for n in convs if any(fnmatch.fnmatchcase(n, p) for p in skip)]
    return list(dict.fromkeys(names + fixed_output_convs(model)))


class FilterImportance:
    """Per-channel score of a Torch-Pruning group (lower = pruned first); see the module docstring.

    ``masks`` (root conv name -> bool tensor, True = zeroed) turns it into "prune what was
    zeroed": masked channels score -1, below every criterion value."""

    def __init__(self, criterion: str, graph, masks: dict[str, torch.Tensor] | None = None):
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        self.criterion, self.graph, self.masks = criterion, graph, masks
        self.names = {m: n for n, m in graph.model.named_modules()}

    def filters(self, group) -> torch.Tensor:
        """``C x F``: row i concatenates the i-th output filter of every out-member of ``group``."""
        channels = len(group[0].idxs)
        parts = []
        for i, (dep, idxs) in enumerate(group):
            layer = dep.target.module
            if not isinstance(layer, (nn.Conv2d, nn.Linear)) or not self.graph.is_out_channel_pruning_fn(dep.handler):
                continue
            roots = group[i].root_idxs
            if roots is None or any(r is None for r in roots):
                continue
            w = layer.weight.detach()[_plain(idxs)].flatten(1).double()
            rows = torch.zeros(channels, w.shape[1], dtype=w.dtype, device=w.device)
            rows[torch.as_tensor(list(roots), device=w.device)] = w
            parts.append(rows)
        if not parts:
            raise ValueError(f"group of {group[0].dep.target.module} has no conv or linear output to score")
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        f = self.filters(group)
        if self.criterion == "l1":
            score = f.abs().sum(1)
        elif self.criterion == "l2":
            score = f.norm(dim=1)
        else:
            score = torch.cdist(f.unsqueeze(0), f.unsqueeze(0)).squeeze(0).sum(1)
        if self.masks is not None:
            mask = self.masks.get(self.names[group[0].dep.target.module])
            if mask is not None:
                score = torch.where(mask.to(score.device), torch.full_like(score, -1.0), score)
        return score.cpu()


class FilterPruner:
    """Groups of one model's dependency graph and the verbs on them: select, zero, remove."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int], skip: Iterable[str] = (),
                 rounding: str = "kept", round_to: int = 1) -> None:  # fmt: skip
        self.model, self.input_shape = model, tuple(input_shape)
        self.rounding, self.round_to = rounding, round_to
        self.ignored = ignored_names(model, skip)
        with eval_mode(model):
            graph = _torch_pruning().DependencyGraph()
            self.graph = graph.build_dependency(model, example_inputs=example_input(model, input_shape))
        self.names = {m: n for n, m in model.named_modules()}
        self.initial = {self.root_name(g): len(g[0].idxs) for g in self.groups()}
        if not self.initial:
            raise ValueError("no prunable conv: every group holds an ignored layer (see method.skip)")

    def groups(self) -> list:
        ignored = [self.model.get_submodule(n) for n in self.ignored]
        return list(self.graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d]))

    def root_name(self, group) -> str:
        return self.names[group[0].dep.target.module]

    def members(self, group) -> list[str]:
        """Names of the conv / linear layers whose output channels the group prunes."""
        out = []
        for dep, _ in group:
            m = dep.target.module
            if isinstance(m, (nn.Conv2d, nn.Linear)) and self.graph.is_out_channel_pruning_fn(dep.handler):
                out.append(self.names[m])
        return list(dict.fromkeys(out))

    def select(self, importance, ratio: float) -> dict[str, list[int]]:
        """Root name -> sorted channel indices to prune, the lowest-scored of each group."""
        plan = {}
        for group in self.groups():
            name = self.root_name(group)
            current = len(group[0].idxs)
            n = current - kept_channels(self.initial[name], ratio, self.rounding, self.round_to)
            if n <= 0:
                continue
            order = torch.argsort(importance(group), stable=True)
            plan[name] = sorted(int(i) for i in order[:n])
        return plan

    def _group(self, root: str, idxs: list[int]):
        module = self.model.get_submodule(root)
        return self.graph.get_pruning_group(module, self.graph.get_pruner_of_module(module).prune_out_channels, idxs)

    def filters(self, plan: dict[str, list[int]]) -> list[tuple[nn.Parameter, list[int]]]:
        """(parameter, output-channel indices) of every out-member's weight and bias that ``plan``
        selects: the tensors whose rows :meth:`zero` and :meth:`zero_grad` clear."""
        out = []
        for root, idxs in plan.items():
            for dep, member_idxs in self._group(root, idxs):
                layer = dep.target.module
                if isinstance(layer, (nn.Conv2d, nn.Linear)) and self.graph.is_out_channel_pruning_fn(dep.handler):
                    plain = _plain(member_idxs)
                    out += [(p, plain) for p in (layer.weight, layer.bias) if p is not None]
        return out

    @torch.no_grad()
    def zero(self, plan: dict[str, list[int]]) -> None:
        """Set the planned filters to zero (weights and bias of every out-member), keep the shapes."""
        for param, rows in self.filters(plan):
            param[rows] = 0

    @staticmethod
    @torch.no_grad()
    def zero_grad(filters: list[tuple[nn.Parameter, list[int]]]) -> None:
        """Clear the gradient rows of :meth:`filters`' selection (parameters without one are left)."""
        for param, rows in filters:
            if param.grad is not None:
                param.grad[rows] = 0

    def remove(self, plan: dict[str, list[int]], check: bool = True) -> None:
        """Physically remove the planned channels (and everything coupled to them); with ``check``
        run the pruned model once to make sure it still does."""
        groups = [self._group(root, idxs) for root, idxs in plan.items() if idxs]
        for g in groups:
            if not self.graph.check_pruning_group(g):
                raise ValueError(f"pruning {g[0].dep.target.module} would leave it without channels")
        for g in groups:
            g.prune()
        if not check:
            return
        try:
            with eval_mode(self.model), torch.no_grad():
                self.model(example_input(self.model, self.input_shape))
        except Exception as err:
            msg = f"the pruned model no longer runs ({err}); add the offending layers to method.skip"
            raise RuntimeError(msg) from err


def channel_counts(model: nn.Module) -> dict[str, int]:
    """Output channels of every conv, by name."""
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def ratio_for_speedup(
    model: nn.Module,
    input_shape: Sequence[int],
    speedup: float,
    skip: Iterable[str] = (),
    steps: int = SPEEDUP_STEPS,
    rounding: str = "kept",
    round_to: int = 1,
) -> tuple[float, float]:
    """The smallest ratio ``k / steps`` whose pruned network reaches ``speedup`` (dense / pruned
    weight MACs) and the speed-up it gives, found by pruning a copy further step by step.
    Raises ValueError when even the last step falls short."""
    work = copy.deepcopy(model)
    pruner = FilterPruner(work, input_shape, skip, rounding, round_to)

    def importance(group) -> torch.Tensor:  # any order will do: the counts depend on the ratio only
        return torch.zeros(len(group[0].idxs))

    count = MacModel(work, input_shape)
    dense = count.macs()
    reached = 1.0
    for k in range(1, steps):
        ratio = k / steps
        pruner.remove(pruner.select(importance, ratio), check=False)
        reached = dense / max(count.macs(), 1)
        if reached >= speedup:
            return ratio, reached
    raise ValueError(
        f"method.speedup={speedup} is out of reach: pruning {(steps - 1) / steps:.0%} of every prunable group "
        f"gives {reached:.2f}x (left whole: {', '.join(pruner.ignored) or 'nothing'})"
    )


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
    """Shared by the three filter-pruning methods; subclasses set the criterion and the schedule."""

    Config = FilterPruningConfig
    compresses = True
    criterion = "l1"
    soft = False  # zero the selected filters after every train epoch (SFP, FPGM)

    def __init__(self, config: FilterPruningConfig | None = None) -> None:
        super().__init__(config)
        self.ratio_used: float | None = self.config.ratio
        self.speedup_planned: float | None = None
        self.pruner: FilterPruner | None = None
        self.masks: dict[str, torch.Tensor] = {}
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
        if self.config.speedup is not None:  # raises ValueError when the target is out of reach
            self._ratio_for_speedup(model, input_shape)

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        c = self.config
        self.pruner = FilterPruner(model, input_shape, c.skip, c.rounding, c.round_to)
        self.ignored = list(self.pruner.ignored)
        self.groups = {self.pruner.root_name(g): self.pruner.members(g) for g in self.pruner.groups()}
        self.channels_before = channel_counts(model)
        if self.config.speedup is not None:
            self.ratio_used, self.speedup_planned = self._ratio_for_speedup(model, input_shape)
        return model

    def _plan(self, masks: dict[str, torch.Tensor] | None = None) -> dict[str, list[int]]:
        assert self.pruner is not None, "prepare() first"
        return self.pruner.select(FilterImportance(self.criterion, self.pruner.graph, masks), self.ratio_used)

    def on_epoch_end(self, model: nn.Module, epoch: int, stage: str) -> None:
        if not self.soft or stage != "train":
            return
        plan = self._plan()
        self.pruner.zero(plan)
        self.masks = {}
        for root, idxs in plan.items():
            mask = torch.zeros(self.pruner.initial[root], dtype=torch.bool)
            mask[idxs] = True
            self.masks[root] = mask
        self.soft_epochs += 1

    def compress(self, model: nn.Module) -> dict:
        assert self.pruner is not None and self.pruner.model is model, "compress() needs the prepared model"
        self.pruned = self._plan(self.masks if self.soft and self.masks else None)
        self.pruner.remove(self.pruned)
        self.channels_after = channel_counts(model)
        return self.details()

    def state_dict(self) -> dict:
        return {"masks": {k: v.clone() for k, v in self.masks.items()}, "soft_epochs": self.soft_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.masks = {str(k): v.clone().bool().cpu() for k, v in state.get("masks", {}).items()}
        self.soft_epochs = int(state.get("soft_epochs", 0))

    def details(self) -> dict:
        return {
            **super().details(),
            "criterion": self.criterion,
            "soft": self.soft,
            "ratio": self.config.ratio,
            "speedup": self.config.speedup,
            "ratio_used": self.ratio_used,
            "speedup_planned": self.speedup_planned,
            "skip": list(self.config.skip),
            "ignored": self.ignored,
            "groups": self.groups,
            "soft_epochs": self.soft_epochs,
            "channels_before": self.channels_before,
            "channels_after": self.channels_after,
            "pruned_channels": {k: len(v) for k, v in self.pruned.items()},
        }


@dataclass
class L1FilterConfig(FilterPruningConfig):
    _target_: str = f"{__name__}.L1FilterPruning"


@register_method("l1_filter")
class L1FilterPruning(FilterPruning):
    """Li et al. (ICLR 2017): prune the lowest-L1 filters of a trained network once, fine-tune."""

    Config = L1FilterConfig
    criterion = "l1"
    pretrain_dense = True
    train_epochs = 0


@dataclass
class SFPConfig(FilterPruningConfig):
    _target_: str = f"{__name__}.SoftFilterPruning"


@register_method("sfp")
class SoftFilterPruning(FilterPruning):
    """He et al. (IJCAI 2018): zero the lowest-L2 filters after every epoch, keep training them."""

    Config = SFPConfig
    criterion = "l2"
    soft = True


@dataclass
class FPGMConfig(FilterPruningConfig):
    _target_: str = f"{__name__}.FPGMPruning"
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
