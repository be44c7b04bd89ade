"""The verbs on decomposed layers: decompose a model, read and prune its ranks, export the deployed model."""

from __future__ import annotations

import copy
import fnmatch
import warnings
from typing import Iterable, NamedTuple

import torch
from torch import nn

from .layers import Decomposition, ForwardMode, Init, LowRankLayer, LowRankLinear, decompose_layer

__all__ = [
    "PrunedRanks",
    "decompose",
    "export",
    "kept_rank",
    "lowrank_layers",
    "prune",
    "prune_layer",
    "prune_recorded",
    "ranks",
    "round_rank",
]


def decompose(
    model: nn.Module,
    decomposition: Decomposition = "channel",
    init: Init = "svd",
    skip: Iterable[str] = (),
    linear: bool = False,
    min_rank: int = 2,
    forward_mode: ForwardMode = "auto",
) -> nn.Module:
    """Replace, in place, every eligible ``Conv2d`` (and ``Linear`` when ``linear``) by its
    decomposed form and return the model.

    ``skip`` holds fnmatch patterns of module names left dense (e.g. ``"conv1"``, ``"*.downsample.*"``).
    Layers whose full rank is below ``min_rank`` (e.g. a 1-channel stem) and grouped or
    non-zero-padded convolutions are left dense with a warning.
    """
    skip = list(skip)
    left: list[str] = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, (nn.Conv2d, nn.Linear)) or isinstance(module, LowRankLayer):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            continue
        if isinstance(module, nn.Linear) and not linear:
            continue
        try:
            new = decompose_layer(module, decomposition, init, forward_mode)
        except ValueError as err:
            left.append(f"{name} ({err})")
            continue
        if new.full_rank < min_rank:
            left.append(f"{name} (full rank {new.full_rank} < {min_rank})")
            continue
        _set_submodule(model, name, new.to(module.weight.device))
    if left:
        warnings.warn("left dense: " + "; ".join(left), stacklevel=2)
    return model


def lowrank_layers(model: nn.Module) -> dict[str, LowRankLayer]:
    """Name -> decomposed layer, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LowRankLayer)}


def ranks(model: nn.Module) -> dict[str, int]:
    return {n: m.rank for n, m in lowrank_layers(model).items()}


def kept_rank(s: torch.Tensor, energy: float | None = None, threshold: float | None = None) -> int:
    """Rank kept from singular values ``s`` (any order, sign ignored).

    ``energy`` e: drop the smallest values whose squared sum is at most ``e * sum(s^2)``.
    ``threshold`` t: drop the values with ``|s| < t``. Always at least 1.
    """
    if (energy is None) == (threshold is None):
        raise ValueError("give exactly one of energy or threshold")
    a = s.detach().abs().double().sort(descending=True).values
    if threshold is not None:
        return max(1, int((a >= threshold).sum()))
    if not 0.0 <= energy < 1.0:
        raise ValueError(f"energy must be in [0, 1), got {energy}")
    sq = a.square()
    tail = sq.flip(0).cumsum(0).flip(0)  # tail[i] = sum of sq[i:]
    droppable = tail <= energy * sq.sum()
    return max(1, int((~droppable).sum()))


def round_rank(rank: int, full: int, multiple: int = 1) -> int:
    """``rank`` rounded *up* to a multiple of ``multiple``, at most ``full``: the energy rule's
    guarantee (the dropped tail holds at most e of sum(s^2)) still holds, and the factor pair's
    inner width becomes one that vector units and GEMM kernels tile without a remainder (its cost:
    fewer MACs saved). ``multiple`` 1 leaves the rank alone."""
    if multiple < 1:
        raise ValueError(f"round_to must be >= 1, got {multiple}")
    return min(full, -(-rank // multiple) * multiple)


def prune_layer(
    layer: LowRankLayer, energy: float | None = None, threshold: float | None = None, round_to: int = 1
) -> int:
    """Keep the largest singular values of one ``layer``: :func:`kept_rank`, then :func:`round_rank`."""
    return _keep_largest(layer, round_rank(kept_rank(layer.s, energy, threshold), layer.rank, round_to))


def _keep_largest(layer: LowRankLayer, r: int) -> int:
    order = layer.s.detach().abs().argsort(descending=True)
    layer.keep(order[:r].sort().values)
    return r


class PrunedRanks(NamedTuple):
    """Name -> rank of every decomposed layer, as :func:`prune_recorded` saw it."""

    before: dict[str, int]  # as decomposed
    unrounded: dict[str, int]  # what the energy (or threshold) rule alone keeps
    after: dict[str, int]  # kept: the rule's rank after :func:`round_rank`


def prune_recorded(
    model: nn.Module,
    energy: float | None = None,
    threshold: float | None = None,
    round_to: int = 1,
    ranks: dict[str, int] | None = None,
) -> PrunedRanks:
    """:func:`prune`, recording each layer's rank before, by the rule alone and after rounding."""
    layers = lowrank_layers(model)
    if ranks is not None:
        if energy is not None or threshold is not None:
            raise ValueError("give one of energy, threshold or ranks")
        unknown = sorted(set(ranks) - set(layers))
        if unknown:
            raise ValueError(f"ranks names layers that are not decomposed: {', '.join(unknown)}")
    rec = PrunedRanks({}, {}, {})
    for n, m in layers.items():
        rec.before[n] = m.rank
        if ranks is None:
            rec.unrounded[n] = kept_rank(m.s, energy, threshold)
        else:
            rec.unrounded[n] = int(ranks.get(n, m.rank))
            if not 1 <= rec.unrounded[n] <= m.rank:
                raise ValueError(f"ranks[{n!r}] = {rec.unrounded[n]} is not in [1, {m.rank}] (its current rank)")
        rec.after[n] = _keep_largest(m, round_rank(rec.unrounded[n], m.rank, round_to))
    return rec


def prune(
    model: nn.Module,
    energy: float | None = None,
    threshold: float | None = None,
    round_to: int = 1,
    ranks: dict[str, int] | None = None,
) -> dict[str, int]:
    """Keep the largest singular values of every decomposed layer, in place; returns name -> rank.

    The rank each layer keeps is set by exactly one rule: ``energy`` e (drop the smallest values whose
    squared sum is at most ``e * sum(s^2)``, :func:`kept_rank`), ``threshold`` t (drop ``|s| < t``) or
    ``ranks`` (layer name -> rank, e.g. a fixed share of ``layer.full_rank``; layers not named keep
    theirs). Then :func:`round_rank` rounds it up to a multiple of ``round_to``. Values are kept in
    their order; ``U``, ``s`` and ``V`` physically shrink (:meth:`LowRankLayer.keep`).
    """
    return prune_recorded(model, energy, threshold, round_to, ranks).after


def export(model: nn.Module, merge_unprofitable: bool = True) -> nn.Module:
    """A copy of ``model`` in which every decomposed layer is a pair of plain layers.

    With ``merge_unprofitable`` a layer whose pair would cost at least as many MACs as the dense
    layer (rank near full) is deployed as one dense layer instead (same function, fewer MACs).
    The copy is numerically equal to ``model`` in eval mode, scriptable and traceable.
    """
    deployed = copy.deepcopy(model)
    for name, layer in list(lowrank_layers(deployed).items()):
        dense_cheaper = merge_unprofitable and _factor_cost_ratio(layer) >= 1.0
        _set_submodule(deployed, name, layer.to_dense() if dense_cheaper else layer.to_factors())
    return deployed


def _factor_cost_ratio(layer: LowRankLayer) -> float:
    """Per-output-pixel MACs of the factor pair over the dense layer (stride ignored for spatial)."""
    if isinstance(layer, LowRankLinear):
        return layer.deployed_macs(True) / layer.deployed_macs(False)
    sw = layer.stride[1]
    return layer.deployed_macs((1, 1), sw if layer.decomposition == "spatial" else 1) / layer.deployed_macs(
        (1, 1), 1, factored=False
    )


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
