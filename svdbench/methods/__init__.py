"""Compression methods (one class each, same protocol). Baselines live in the ``baselines`` package
and are found through the config's ``_target_``."""

from .base import Method
from .dense import Dense
from .svd import SVDTraining

__all__ = ["Method", "Dense", "SVDTraining"]
