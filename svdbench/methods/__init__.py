"""Compression methods, one module each (its config dataclass beside its class), registered by name
in :data:`METHODS`: ``dense``, ``svd`` (SVD training), the baselines ``svd_posthoc``, ``trp``,
``l1_filter``, ``random_filter``, ``sfp``, ``fpgm`` (the filter-pruning ones share a module), and the sanity
baseline ``scratch`` (another run's architecture trained from scratch). Importing this package registers them
all. A filter-pruning method of your own subclasses :class:`FilterPruning` and may name a criterion of its
own (:func:`register_criterion`)."""

from ..pruning import CRITERIA, register_criterion
from .base import METHODS, Method, MethodConfig, method_target, register_method
from .dense import Dense
from .filter_pruning import (
    FilterPruning,
    FilterPruningConfig,
    FPGMConfig,
    FPGMPruning,
    L1FilterPruning,
    RandomFilterPruning,
    SoftFilterPruning,
)
from .scratch import Scratch
from .svd import SVDConfig, SVDTraining
from .svd_posthoc import PosthocSVD, PosthocSVDConfig
from .trp import TRP, TRPConfig

__all__ = [
    "METHODS",
    "Method",
    "MethodConfig",
    "method_target",
    "register_method",
    "Dense",
    "SVDTraining",
    "SVDConfig",
    "PosthocSVD",
    "PosthocSVDConfig",
    "TRP",
    "TRPConfig",
    "Scratch",
    "FilterPruning",
    "FilterPruningConfig",
    "CRITERIA",
    "register_criterion",
    "L1FilterPruning",
    "RandomFilterPruning",
    "SoftFilterPruning",
    "FPGMPruning",
    "FPGMConfig",
]
