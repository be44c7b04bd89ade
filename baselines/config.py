"""Config schemas of the baseline methods, registered in the ``method`` group by ``run.py``
(``svdbench`` never imports ``baselines``).

Each schema checks its ranges in ``__post_init__`` and names the key in the message, like
:class:`svdbench.config.SVDMethodConfig`. The YAML files ``conf/method/<name>.yaml`` extend them.

Importing this module also registers the OmegaConf resolver ``baselines.unless``:
``${baselines.unless:${.ratio},2.0}`` is ``2.0`` while ``ratio`` is null and null once it is set.
The filter-pruning YAMLs use it so that either target can be overridden alone
(``method.ratio=0.4`` or ``method.speedup=3``) and exactly one of the two stays set.
(Hydra carries registered resolvers into joblib and submitit workers with its singleton state.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from omegaconf import OmegaConf

from svdbench.config import MethodConfig

RESOLVER = "baselines.unless"


def _unless(other, default):
    """``default`` when ``other`` is null, else null."""
    return default if other is None else None


if not OmegaConf.has_resolver(RESOLVER):
    OmegaConf.register_new_resolver(RESOLVER, _unless)


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{key} {msg}")


def _check_decomposition(value: str) -> None:
    _check(value in ("channel", "spatial"), "method.decomposition", f"must be channel or spatial, got {value!r}")


def _check_energy_threshold(energy: float | None, threshold: float | None) -> None:
    _check(
        (energy is None) != (threshold is None),
        "method.energy",
        "and method.threshold: set exactly one (the other null)",
    )
    _check(energy is None or 0 <= energy < 1, "method.energy", f"must be in [0, 1), got {energy}")
    _check(threshold is None or threshold >= 0, "method.threshold", f"must be >= 0, got {threshold}")


@dataclass
class TRPMethodConfig(MethodConfig):
    """Trained Rank Pruning (Xu et al., IJCAI 2020; METHOD.md 2.1)."""

    _target_: str = "baselines.trp.TRP"
    decomposition: str = "channel"  # channel | spatial reshape of each conv kernel
    period: int = 10  # iterations between two truncations (and nuclear-norm sub-gradient steps)
    energy_train: float = 0.9  # fraction of sum(s^2) each truncation keeps
    nuclear_weight: float = 3e-4  # lambda of the nuclear-norm sub-gradient U_r V_r^T
    threshold: float | None = 0.05  # final decomposition: drop singular values |s| < threshold
    energy: float | None = None  # alternative: drop the tail holding at most e of sum(s^2)
    skip: List[str] = field(default_factory=list)  # fnmatch patterns of convs left dense
    skip_first: bool = True  # reference code: the first conv stays dense
    skip_1x1: bool = True  # reference code: 1x1 convs stay dense
    merge_unprofitable: bool = True  # deploy a layer dense where its factor pair costs more

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_decomposition(self.decomposition)
        _check(self.period >= 1, "method.period", f"must be >= 1, got {self.period}")
        _check(0 < self.energy_train <= 1, "method.energy_train", f"must be in (0, 1], got {self.energy_train}")
        _check(self.nuclear_weight >= 0, "method.nuclear_weight", f"must be >= 0, got {self.nuclear_weight}")
        _check_energy_threshold(self.energy, self.threshold)


@dataclass
class SVDPosthocMethodConfig(MethodConfig):
    """Post-hoc truncated SVD of a trained dense network (Zhang et al. 2016 channel-wise,
    Jaderberg et al. 2014 spatial-wise; METHOD.md 2.3)."""

    _target_: str = "baselines.svd_posthoc.PosthocSVD"
    decomposition: str = "channel"
    energy: float | None = 0.32  # drop the tail holding at most e of sum(s^2)
    threshold: float | None = None  # alternative: drop |s| < threshold (set energy to null)
    skip: List[str] = field(default_factory=list)
    decompose_linear: bool = False
    merge_unprofitable: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_decomposition(self.decomposition)
        _check_energy_threshold(self.energy, self.threshold)


@dataclass
class FilterPruningConfig(MethodConfig):
    """Common to the filter-pruning methods: the target (a per-layer ratio or a MAC speed-up)."""

    ratio: float | None = None  # fraction of the filters of every prunable conv removed
    speedup: float | None = 2.0  # alternative: dense MACs / pruned MACs to reach
    skip: List[str] = field(default_factory=list)  # fnmatch patterns of convs whose filters stay

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            (self.ratio is None) != (self.speedup is None),
            "method.ratio",
            "and method.speedup: set exactly one (the other null)",
        )
        _check(self.ratio is None or 0 < self.ratio < 1, "method.ratio", f"must be in (0, 1), got {self.ratio}")
        _check(self.speedup is None or self.speedup > 1, "method.speedup", f"must be > 1, got {self.speedup}")


@dataclass
class L1FilterMethodConfig(FilterPruningConfig):
    """L1-norm filter pruning (Li et al., ICLR 2017): once, after dense training, then fine-tune."""

    _target_: str = "baselines.filter_pruning.L1FilterPruning"


@dataclass
class SFPMethodConfig(FilterPruningConfig):
    """Soft filter pruning (He et al., IJCAI 2018): lowest-L2 filters zeroed after every epoch."""

    _target_: str = "baselines.filter_pruning.SoftFilterPruning"


@dataclass
class FPGMMethodConfig(FilterPruningConfig):
    """FPGM (He et al., CVPR 2019): filters nearest the geometric median zeroed after every epoch."""

    _target_: str = "baselines.filter_pruning.FPGMPruning"


METHOD_SCHEMAS: dict[str, type] = {
    "trp_schema": TRPMethodConfig,
    "svd_posthoc_schema": SVDPosthocMethodConfig,
    "l1_filter_schema": L1FilterMethodConfig,
    "sfp_schema": SFPMethodConfig,
    "fpgm_schema": FPGMMethodConfig,
}
