"""The energy that reaches a MAC target: ``method.speedup`` of the low-rank methods (SVD training,
post-hoc SVD and TRP's final truncation).

The target is ``dense MACs / deployed MACs``, the deployed model being :func:`~.ops.export` of the
model pruned at ONE global energy e (per layer :func:`~.ops.kept_rank`, then :func:`~.ops.round_rank`),
counted by fvcore (:func:`svdbench.macs.analyze_macs`: what results.json records).

Breakpoints. With a layer's ``|s|`` sorted decreasing and ``tail_k = sum_{j >= k} s_j^2`` (k = 0..n-1),
:func:`kept_rank` drops position k iff ``tail_k <= e * sum(s^2)``, so its rank is
``max(1, #{k : b_k > e})`` where ``b_k`` is the smallest float e for which that holds
(``tail_k / sum(s^2)`` up to an ulp, :func:`energy_breakpoints`). Deployed MACs fall monotonically as e
grows (rounding up and merging an unprofitable pair into a dense layer are monotone in the rank) and change
only at breakpoints, so the smallest e reaching the target is 0 or a breakpoint. :func:`energy_for_speedup`
keeps, of the sorted breakpoints, the first of every run giving the same rounded ranks, and bisects them:
about ``log2(#distinct rank vectors) + 1`` fvcore counts (ResNet-8: 7 to 10, ResNet-56: 11 to 13).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checks import rounded_down
from ..macs import analyze_macs
from .ops import export, lowrank_layers, prune

__all__ = ["EnergyFound", "deployed_macs", "energy_breakpoints", "energy_for_speedup", "rank_one_speedup", "ranks_at"]


@dataclass(frozen=True)
class EnergyFound:
    """The search's outcome: the energy, fvcore's speed-up there, the rounded ranks and the counts made."""

    energy: float
    speedup: float
    ranks: dict[str, int]
    counts: int


def energy_breakpoints(s: torch.Tensor) -> np.ndarray:
    """``b`` (n, float64, non-increasing): ``b[k]`` is the smallest float e with which :func:`kept_rank`
    drops position k of the decreasingly sorted ``|s|``, i.e. ``tail_k <= e * sum(s^2)``, computed with
    its own arithmetic (``b[0]`` = 1: the largest value is never dropped). All zero when ``s`` is."""
    a = s.detach().abs().double().sort(descending=True).values
    sq = a.square()
    tail = sq.flip(0).cumsum(0).flip(0).cpu().numpy()
    total = float(sq.sum())  # the product e * total below is the one kept_rank makes, in float64
    if total == 0.0:
        return np.zeros(len(tail))
    b = tail / total
    for _ in range(8):  # up to the first float that drops k (the quotient is within an ulp of it)
        short = ~(tail <= b * total)
        if not short.any():
            break
        b[short] = np.nextafter(b[short], np.inf)
    for _ in range(8):  # ... and no further
        lower = np.nextafter(b, -np.inf)
        over = (tail <= lower * total) & (lower >= 0)
        if not over.any():
            break
        b[over] = lower[over]
    return b


def ranks_at(breakpoints: np.ndarray, energies: np.ndarray, full: int, round_to: int) -> np.ndarray:
    """The rounded rank a layer keeps at each of ``energies``: ``round_rank(max(1, #{k : b_k > e}))``."""
    ascending = breakpoints[::-1]
    kept = np.maximum(1, len(breakpoints) - np.searchsorted(ascending, energies, side="right"))
    return np.minimum(full, -(-kept // round_to) * round_to)


def deployed_macs(model: nn.Module, input_shape: Sequence[int], merge_unprofitable: bool = True) -> int:
    """fvcore's conv + linear MACs of ``export(model)``, per sample."""
    return analyze_macs(export(model, merge_unprofitable), input_shape).macs


def rank_one_speedup(
    model: nn.Module, input_shape: Sequence[int], dense_macs: int, round_to: int = 1, merge_unprofitable: bool = True
) -> float:
    """The largest speed-up pruning can give: ``dense_macs`` / deployed MACs of a copy of the decomposed
    ``model`` with every decomposed layer at rank 1 (rounded up to ``round_to``), pairs merged where
    unprofitable."""
    work = copy.deepcopy(model)
    prune(work, ranks={n: 1 for n in lowrank_layers(work)}, round_to=round_to)
    return dense_macs / max(deployed_macs(work, input_shape, merge_unprofitable), 1)


def energy_for_speedup(
    model: nn.Module,
    input_shape: Sequence[int],
    speedup: float,
    dense_macs: int,
    round_to: int = 1,
    merge_unprofitable: bool = True,
) -> EnergyFound:
    """The smallest energy e whose pruned (``round_to``) and exported copy of the decomposed ``model``
    reaches ``dense_macs / deployed MACs >= speedup`` (fvcore), by bisection over the breakpoints (module
    docstring). ``model`` is not changed. ValueError when every layer at rank 1 falls short."""
    layers = lowrank_layers(model)
    if not layers:
        raise ValueError("no decomposed layer: nothing to prune to a speed-up")
    breakpoints = {n: energy_breakpoints(m.s) for n, m in layers.items()}
    energies = np.unique(np.concatenate([[0.0], *breakpoints.values()]))
    energies = energies[(energies >= 0) & (energies < 1)]
    table = np.stack([ranks_at(b, energies, layers[n].rank, round_to) for n, b in breakpoints.items()], axis=1)
    first = np.ones(len(energies), dtype=bool)
    first[1:] = (table[1:] != table[:-1]).any(axis=1)  # the first energy of every distinct rank vector
    energies, table = energies[first], table[first]
    reached: dict[int, float] = {}

    def speedup_at(i: int) -> float:
        if i not in reached:
            work = copy.deepcopy(model)
            got = prune(work, energy=float(energies[i]), round_to=round_to)
            expected = {n: int(r) for n, r in zip(breakpoints, table[i], strict=True)}
            if got != expected:  # the breakpoints must follow kept_rank exactly
                raise RuntimeError(f"energy {energies[i]!r}: kept_rank gave {got}, the breakpoints {expected}")
            reached[i] = dense_macs / max(deployed_macs(work, input_shape, merge_unprofitable), 1)
        return reached[i]

    lo, hi = 0, len(energies) - 1
    while lo < hi:  # invariant: the answer is in [lo, hi] (hi reaches, or nothing does)
        mid = (lo + hi) // 2
        if speedup_at(mid) >= speedup:
            hi = mid
        else:
            lo = mid + 1
    if speedup_at(lo) < speedup:
        most = reached[lo]
        limit = rounded_down(most)
        raise ValueError(f"method.speedup={speedup} is out of reach: at most {limit}x (every layer at rank 1)")
    ranks = {n: int(r) for n, r in zip(breakpoints, table[lo], strict=True)}
    return EnergyFound(float(energies[lo]), reached[lo], ranks, len(reached))
