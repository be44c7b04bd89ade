"""svdbench: a benchmark harness for low-rank (SVD-trained) and pruned CNNs.

Public verbs: ``decompose``, ``orthogonality_loss``, ``sparsity_loss``, ``prune``, ``export``,
``count_macs``, ``count_params``; models under ``svdbench.models``.
"""

__version__ = "0.1.0"

from . import lowrank, models, regularizers  # noqa: E402
from .lowrank import LowRankConv2d, LowRankLinear, decompose, export, prune, ranks  # noqa: E402
from .macs import analyze_macs, count_macs, count_params  # noqa: E402
from .regularizers import orthogonality_loss, sparsity_loss  # noqa: E402

__all__ = [
    "LowRankConv2d",
    "LowRankLinear",
    "analyze_macs",
    "count_macs",
    "count_params",
    "decompose",
    "export",
    "lowrank",
    "models",
    "orthogonality_loss",
    "prune",
    "ranks",
    "regularizers",
    "sparsity_loss",
]
