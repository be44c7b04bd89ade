"""Filter-pruning criteria: a registry of scoring functions, one per name (``l1``, ``l2``,
``fpgm``, ``random``, and any a plug-in adds with :func:`register_criterion`).

The contract. A criterion is ``fn(filters: Tensor[C, F]) -> Tensor[C]``: the per-filter scores
of ONE group, **higher kept** (the lowest-scored channels are pruned first; of equal scores, the
lower index first). Row ``i`` of ``filters`` is the ``i``-th output filter of every conv / linear
layer whose output channels the group prunes, flattened and concatenated
(:meth:`.FilterPruner.filter_matrix`); ``C`` is the group's current number of channels.
``filters`` is a detached float64 tensor on the weights' device; the criterion runs under
``torch.no_grad()`` and must return ``C`` finite numbers (any float dtype, any device).

It sees one group at a time and knows nothing of the ratio, the masks or the schedule: how many
channels go is the count rule's (:func:`.kept_channels`), and SFP's / FPGM's "the channels zeroed
after the last epoch are removed first" is the filter-pruning family's
(:class:`svdbench.methods.FilterPruning`), whatever the scores say. Randomness, if a criterion
needs it, comes from torch's default generator (``torch.rand(C)``, or ``device=filters.device``;
no generator of its own): svdbench seeds it per run and saves it in every checkpoint, so a run
and its resumption draw the same numbers.

A plug-in adds one where it is defined::

    @register_criterion("weight_variance")
    def weight_variance(filters: torch.Tensor) -> torch.Tensor:
        return filters.var(dim=1)

and names it in a :class:`~svdbench.methods.FilterPruning` subclass (``criterion = "weight_variance"``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..registry import Registry

__all__ = ["CRITERIA", "Criterion", "register_criterion", "score"]

Criterion = Callable[[torch.Tensor], torch.Tensor]

#: every registered criterion, by name
CRITERIA: Registry[Criterion] = Registry("filter-pruning criterion")


def register_criterion(name: str) -> Callable[[Criterion], Criterion]:
    """Decorator: register ``fn(filters: Tensor[C, F]) -> Tensor[C]`` (higher kept) as criterion
    ``name`` (see the module docstring for the contract)."""
    return CRITERIA.register(name)


@torch.no_grad()
def score(name: str, filters: torch.Tensor) -> torch.Tensor:
    """The scores criterion ``name`` gives the ``C`` rows of ``filters``, on the CPU; a ValueError
    naming the criterion when they are not ``C`` finite numbers."""
    scores = CRITERIA.get(name)(filters)
    channels = filters.shape[0]
    if not (isinstance(scores, torch.Tensor) and tuple(scores.shape) == (channels,)):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"filter-pruning criterion {name!r} must return {channels} scores, one per filter, got {got}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"filter-pruning criterion {name!r} returned a score that is not finite")
    return scores.cpu()


@register_criterion("l1")
def l1_norm(filters: torch.Tensor) -> torch.Tensor:
    """L1 norm of each filter (Li et al., ICLR 2017): the smallest are pruned."""
    return filters.abs().sum(1)


@register_criterion("l2")
def l2_norm(filters: torch.Tensor) -> torch.Tensor:
    """L2 norm of each filter (SFP, He et al., IJCAI 2018): the smallest are pruned."""
    return filters.norm(dim=1)


@register_criterion("fpgm")
def geometric_median_distance(filters: torch.Tensor) -> torch.Tensor:
    """Sum of the Euclidean distances to the group's other filters (FPGM, He et al., CVPR 2019): the
    filters nearest the geometric median (smallest sum) are the most replaceable and are pruned."""
    return torch.cdist(filters.unsqueeze(0), filters.unsqueeze(0)).squeeze(0).sum(1)


@register_criterion("random")
def random_scores(filters: torch.Tensor) -> torch.Tensor:
    """One uniform draw per filter from torch's default CPU generator (seeded per run and checkpointed by
    svdbench, and the same on every device): a random choice of the filters, the control that tells
    whether a criterion matters."""
    return torch.rand(filters.shape[0], dtype=torch.float64)
