"""The Torch-Pruning adapter: the filter groups of one model and the verbs on them (select, zero,
remove), with the count rule every group follows.

Groups. Filters are removed physically through Torch-Pruning's ``DependencyGraph``, so every
coupled tensor shrinks with them: the BatchNorm after the conv, the input channels of the next
layer and, where the graph sees a residual addition (torchvision ResNets, option-B shortcuts),
every conv whose output is added to the same stream. A group is what the graph couples to the
output channels of one ``nn.Conv2d`` (its root). Row ``i`` of a group's filter matrix
(:meth:`FilterPruner.filter_matrix`) concatenates the ``i``-th output filters of every conv (and
linear) layer in the group whose *output* channels are pruned: for a plain block conv that is just
its own filter, as in the papers. The criteria that score those rows: :mod:`.criteria`.

Counts. Every group of ``C`` channels keeps ``kept_channels(C, ratio) = max(1, floor(C * (1 - ratio)))``
(Torch-Pruning's local-pruning count, with at least one channel left): ``rounding: kept``. With
``rounding: pruned`` it prunes ``floor(C * ratio)`` instead, as the SFP and FPGM code does (one
filter fewer wherever ``C * ratio`` is not whole).

Roots. A group's root is an ``nn.Conv2d`` or an ``nn.Linear``: in a vision transformer the
groups are the MLP hidden neurons (``fc1``'s outputs with ``fc2``'s inputs).

Ignored. The classifier (the last ``nn.Linear``) is never pruned at its output, nor are layers
matched by a ``skip`` pattern, nor the convs the model itself declares fixed (a group with an
ignored layer is left whole), nor, in a vision transformer (:mod:`svdbench.models.roles`), the
patch embedding (its outputs are the residual stream, which the class token and position
embedding share) and the attention ``qkv`` projections (their outputs are split into heads by a
reshape: heads are not pruned). A model declares them with a method ``fixed_output_channels()``
returning conv names: couplings its dependency graph cannot see. The CIFAR ResNets with option-A
shortcuts (zero-padded strided identities, :mod:`svdbench.models.cifar_resnet`) declare the stem
and every block's last conv: pruning the residual stream breaks their forward pass
(docs/pitfalls.md), so only block-internal channels are pruned, as Li et al. did for
ResNet-56/110. The residual stream keeps its width; the reachable speed-up is therefore bounded
(about 2 x the block-internal share of the MACs).
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from ..errors import one_line
from ..lowrank import round_rank
from ..models import roles
from ..torch_utils import eval_mode, example_input

__all__ = ["ROUNDINGS", "FilterPruner", "kept_channels", "channel_counts", "ignored_names", "fixed_output_convs"]

ROUNDINGS = ("kept", "pruned")


def _torch_pruning():
    """Torch-Pruning, imported when a filter-pruning method first needs it (it imports timm: about
    2 s that every other run would pay at start-up)."""
    import torch_pruning

    return torch_pruning


def _plain(idxs) -> list[int]:
    """Torch-Pruning's index objects as plain channel numbers."""
    return [int(i) for i in _torch_pruning()._helpers.to_plain_idxs(idxs)]


def kept_channels(channels: int, ratio: float, rounding: str = "kept", round_to: int = 1) -> int:
    """Channels a group of ``channels`` keeps at pruning ``ratio`` (at least one): ``floor(C (1 - ratio))``
    (rounding ``kept``) or ``C - floor(C ratio)`` (rounding ``pruned``), then rounded up to a multiple
    of ``round_to`` (at most ``C``; Torch-Pruning's ``round_to`` likewise keeps widths hardware-friendly)."""
    if rounding == "pruned":
        kept = channels - math.floor(channels * ratio + 1e-9)
    else:
        kept = math.floor(channels * (1.0 - ratio) + 1e-9)
    return max(1, round_rank(max(1, kept), channels, round_to))


def channel_counts(model: nn.Module) -> dict[str, int]:
    """Output channels of every conv and output features of every Linear but the classifier (the last), by name."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:-1]
    return {
        n: m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) or n in linears
    }


def fixed_output_convs(model: nn.Module) -> list[str]:
    """The convs the model declares must keep their output channels (``model.fixed_output_channels()``,
    e.g. the option-A CIFAR ResNets' residual stream); [] for a model that declares none."""
    declare = getattr(model, "fixed_output_channels", None)
    return list(declare()) if callable(declare) else []


def ignored_names(model: nn.Module, skip: Iterable[str] = ()) -> list[str]:
    """Layers whose output channels are never pruned: the classifier, ``skip`` matches, the model's fixed
    convs; in a vision transformer its patch embedding and ``qkv`` projections."""
    skip = list(skip)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    names = linears[-1:] + [n for n in layers if any(fnmatch.fnmatchcase(n, p) for p in skip)]
    vit = ["patch_embed.proj", *roles.attention_inputs(model)] if roles.is_vision_transformer(model) else []
    return list(dict.fromkeys(names + fixed_output_convs(model) + vit))


class FilterPruner:
    """Groups of one model's dependency graph and the verbs on them: select, zero, remove."""

    def __init__(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        skip: Iterable[str] = (),
        rounding: str = "kept",
        round_to: int = 1,
    ) -> None:
        self.model, self.input_shape = model, tuple(input_shape)
        self.rounding, self.round_to = rounding, round_to
        self.ignored = ignored_names(model, skip)
        with eval_mode(model), warnings.catch_warnings():
            # a ViT's class token and position embedding: Torch-Pruning warns that it would prune their last
            # dimension, the residual stream's, which the ignored patch embedding keeps whole
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
            graph = _torch_pruning().DependencyGraph()
            try:
                self.graph = graph.build_dependency(model, example_inputs=example_input(model, input_shape))
            except Exception as err:  # a model Torch-Pruning cannot trace (a ViT of depth 0: ZeroDivisionError)
                raise ValueError(f"Torch-Pruning cannot trace the model's channels ({one_line(err, with_type=True)})"
                                 ) from None  # fmt: skip
        self.names = {m: n for n, m in model.named_modules()}
        self.initial = {self.root_name(g): len(g[0].idxs) for g in self.groups()}
        if not self.initial:
            raise ValueError("no prunable layer: every group holds an ignored layer (see method.skip)")

    def groups(self) -> list:
        ignored = [self.model.get_submodule(n) for n in self.ignored]
        return list(self.graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]))

    def root_name(self, group) -> str:
        return self.names[group[0].dep.target.module]

    def _out_pruned(self, dep) -> bool:
        """Whether ``dep`` prunes the output channels of a conv or linear layer."""
        layer = dep.target.module
        return isinstance(layer, (nn.Conv2d, nn.Linear)) and self.graph.is_out_channel_pruning_fn(dep.handler)

    def members(self, group) -> list[str]:
        """Names of the conv / linear layers whose output channels the group prunes."""
        return list(dict.fromkeys(self.names[dep.target.module] for dep, _ in group if self._out_pruned(dep)))

    def filter_matrix(self, group) -> torch.Tensor:
        """``C x F`` (float64, the weights' device, detached): row i concatenates the i-th output filter
        of every out-member of ``group``; C is the group's current number of channels."""
        channels = len(group[0].idxs)
        parts = []
        for i, (dep, idxs) in enumerate(group):
            if not self._out_pruned(dep):
                continue
            roots = group[i].root_idxs
            if roots is None or any(r is None for r in roots):
                continue
            w = dep.target.module.weight.detach()[_plain(idxs)].flatten(1).double()
            rows = torch.zeros(channels, w.shape[1], dtype=w.dtype, device=w.device)
            rows[torch.as_tensor(list(roots), device=w.device)] = w
            parts.append(rows)
        if not parts:
            raise ValueError(f"group of {group[0].dep.target.module} has no conv or linear output to score")
        return torch.cat(parts, dim=1)

    def select(self, ratio: float, order: Callable[[object], torch.Tensor] | None = None) -> dict[str, list[int]]:
        """Root name -> sorted channel indices to prune at ``ratio``: of each group, the first
        channels of ``order(group)`` (every channel index, those to prune first first); None: the
        lowest indices (any choice gives the same counts)."""
        plan = {}
        for group in self.groups():
            name = self.root_name(group)
            current = len(group[0].idxs)
            n = current - kept_channels(self.initial[name], ratio, self.rounding, self.round_to)
            if n <= 0:
                continue
            ranked = torch.arange(current) if order is None else order(group)
            plan[name] = sorted(int(i) for i in ranked[:n])
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
                if self._out_pruned(dep):
                    layer, plain = dep.target.module, _plain(member_idxs)
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
