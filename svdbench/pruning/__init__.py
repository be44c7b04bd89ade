"""Filter (channel) pruning below the methods: the Torch-Pruning adapter (:mod:`.groups`: groups,
the count rule, select / zero / remove), the criteria that score a group's filters (:mod:`.criteria`,
a registry a plug-in adds to) and the speed-up search (:mod:`.speedup`). The methods built on them
(L1-norm, SFP, FPGM and their shared base ``FilterPruning``) are in :mod:`svdbench.methods.filter_pruning`;
nothing here imports :mod:`svdbench.methods`."""

from .criteria import CRITERIA, register_criterion, score
from .groups import ROUNDINGS, FilterPruner, channel_counts, fixed_output_convs, ignored_names, kept_channels
from .speedup import SPEEDUP_STEPS, ratio_for_speedup

__all__ = [
    "CRITERIA",
    "register_criterion",
    "score",
    "ROUNDINGS",
    "FilterPruner",
    "channel_counts",
    "fixed_output_convs",
    "ignored_names",
    "kept_channels",
    "SPEEDUP_STEPS",
    "ratio_for_speedup",
]
