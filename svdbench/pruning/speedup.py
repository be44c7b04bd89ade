"""The speed-up search: the pruning ratio that reaches a MAC budget.

``method.speedup`` is a budget of dense MACs / pruned MACs (fvcore's count,
:func:`svdbench.macs.count_macs`: the convolutions and linear layers, counted by module hooks,
:class:`svdbench.macs.MacModel`, plus what those do not see, such as a transformer's attention
products, which filter pruning leaves unchanged). The ratio is raised in steps of 1/100 on a copy of
the network, pruning it further at each step as Torch-Pruning's iterative steps do, until the budget
is reached; the first such ratio is used. Since the channel counts depend on the ratio only
(:func:`.kept_channels`), the real network pruned at that ratio by any criterion has the same MACs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

from torch import nn

from ..checks import rounded_down
from ..macs import MacModel, count_macs
from .groups import FilterPruner

__all__ = ["SPEEDUP_STEPS", "ratio_for_speedup"]

SPEEDUP_STEPS = 100


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
    weight MACs) and the speed-up it gives, found by pruning a copy further step by step (which
    channels go does not matter: the counts depend on the ratio only). Raises ValueError when even
    the last step falls short."""
    work = copy.deepcopy(model)
    pruner = FilterPruner(work, input_shape, skip, rounding, round_to)
    count = MacModel(work, input_shape)
    dense = count_macs(work, input_shape)
    other = dense - count.macs()  # attention products: no module, no channel of a pruned group
    reached = 1.0
    for k in range(1, steps):
        ratio = k / steps
        pruner.remove(pruner.select(ratio), check=False)
        reached = dense / max(count.macs() + other, 1)
        if reached >= speedup:
            return ratio, reached
    raise ValueError(
        f"method.speedup={speedup} is out of reach: pruning {(steps - 1) / steps:.0%} of every prunable group "
        f"gives {rounded_down(reached)}x (left whole: {', '.join(pruner.ignored) or 'nothing'})"
    )
