"""Compression methods, one module each (its config dataclass beside its class), registered by name
in :data:`METHODS`: ``dense``, ``svd`` (SVD training), and the baselines ``svd_posthoc``, ``trp``,
``l1_filter``, ``sfp``, ``fpgm``. Importing this package registers them all."""

from .base import METHODS, Method, MethodConfig, method_target, register_method
from .dense import Dense, DenseConfig
from .filter_pruning import FPGMPruning, L1FilterPruning, SoftFilterPruning
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
    "DenseConfig",
    "SVDTraining",
    "SVDConfig",
    "PosthocSVD",
    "PosthocSVDConfig",
    "TRP",
    "TRPConfig",
    "L1FilterPruning",
    "SoftFilterPruning",
    "FPGMPruning",
]
