"""The authors' per-network settings, which the reproduction presets look up.

SVD training's official CIFAR-10 commands (yanghr/SVD_Prune_EDLCV, ``CNN/cifar10/Start up code.md``)
use another lambda_s and pruning energy for every network x decomposition x regulariser. A preset
reads them with the ``published`` resolver, keyed by the config's own choices::

    regularizer:
      weight: ${published:svd_cifar10,weight}     # looked up by model.name, method.decomposition, regularizer.kind

so ``-m model=resnet20,resnet56 method.decomposition=channel,spatial regularizer=hoyer,l1`` runs each
combination with its own values, and a value given on the command line still wins. The baselines' presets
(TRP, SFP, FPGM, L1-norm on CIFAR-10 and ImageNet) read theirs the same way, keyed by ``model.name``
alone, from the table named after the preset (:data:`BASELINES`)::

    method:
      ratio: ${published:sfp_cifar10,ratio}       # 0.4 for model=resnet56, 0.3 for the other three

A network a table does not name is refused in one line.
``${required:WHAT}`` marks a value the user must give (a preset that trains from a trained dense model
names ``init_from`` so). How each value was read from the authors' file, where its commands disagree,
is in docs/experiments.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from omegaconf import OmegaConf

__all__ = [
    "SVDSetting",
    "SVD_CIFAR10",
    "OFFICIAL_BLOCK",
    "BaselineSetting",
    "BASELINES",
    "published",
    "required",
    "register_resolver",
]


@dataclass(frozen=True)
class SVDSetting:
    """lambda_s and the pruning rule of one official SVD-training run: ``energy`` (share of sum(s^2)
    dropped per layer) or, where the authors pruned by an absolute value, ``threshold`` on |s|.

    The rule applied (the same for every row): the run is the one whose pruned model the file's
    fine-tuning command loads; ``weight`` is that run's lambda_s (its folder name); the pruning value is
    that of the command that wrote the pruned model, normally the run's training command, which prunes at
    its end. Where no command writes it, the value is ``borrowed``: taken from the test command of
    another run of the same network, decomposition and regulariser, which ``borrowed`` names.
    ``consistent`` is False where the file's training, test and fine-tuning commands do not all name
    that one run (``note`` says how they differ); the rule above still gives the values."""

    weight: float
    energy: float | None = None
    threshold: float | None = None
    consistent: bool = True
    note: str = ""
    borrowed: str = ""  # where the pruning value comes from another run's command: which one


_S = SVDSetting
_MIXED = "the test command prunes another run than the one fine-tuned"
_THREE = "three commands, three lambda_s"
#: (model, decomposition, regularizer kind) -> setting. Rule: lambda_s of the run the fine-tuning
#: command loads; the energy of the command that wrote the pruned model it loads, or, where none did, of
#: the test command ``borrowed`` names (SVDSetting; docs/experiments.md). The file's commands for
#: ResNet-32 pre-training pass ``--depth 110`` to the channel-wise run (``pretrained_model32``), a typo:
#: every later ResNet-32 command loads it as a 32-layer model.
SVD_CIFAR10: dict[tuple[str, str, str], SVDSetting] = {
    ("resnet20", "channel", "hoyer"): _S(0.1, 3e-6, note="the training command shows 0.07"),
    ("resnet20", "channel", "hoyer_square"): _S(0.01, threshold=0.1, consistent=False, note=_MIXED),
    ("resnet20", "channel", "l1"): _S(0.3, 0.1),
    ("resnet20", "spatial", "hoyer"): _S(0.01, 0.1, note="the training command shows 0.1"),
    ("resnet20", "spatial", "hoyer_square"): _S(0.01, threshold=0.1),
    ("resnet20", "spatial", "l1"): _S(0.3, 0.1),
    ("resnet32", "channel", "hoyer"): _S(0.01, 5e-3, consistent=False, note=f"{_THREE} (0.03, 3e-3, 0.01)",
                                         borrowed="the test command of Hoyer_Model32/0003 (lambda_s 3e-3)"),
    ("resnet32", "channel", "hoyer_square"): _S(1e-3, 1e-3, note="the training command shows 7e-3"),
    ("resnet32", "channel", "l1"): _S(0.03, 0.05, consistent=False, note=f"{_THREE} (0.1, 0.3, 0.03)",
                                      borrowed="the test command of L1_Model32/03 (lambda_s 0.3)"),
    ("resnet32", "spatial", "hoyer"): _S(1e-3, 5e-4, note="the training command shows 5e-3"),
    ("resnet32", "spatial", "hoyer_square"): _S(3e-4, 5e-3),
    ("resnet32", "spatial", "l1"): _S(0.1, 0.01),
    ("resnet56", "channel", "hoyer"): _S(1e-3, 5e-3),
    ("resnet56", "channel", "hoyer_square"): _S(1e-4, 7e-3),
    ("resnet56", "channel", "l1"): _S(0.1, 0.1, note="the training command shows 0.3"),
    ("resnet56", "spatial", "hoyer"): _S(3e-3, 1e-3, consistent=False, note=_MIXED),
    ("resnet56", "spatial", "hoyer_square"): _S(1e-4, 0.1),
    ("resnet56", "spatial", "l1"): _S(0.03, 0.1, note="the training command shows 0.1"),
    ("resnet110", "channel", "hoyer"): _S(1e-3, 0.01),
    ("resnet110", "channel", "hoyer_square"): _S(3e-4, 1e-3),
    ("resnet110", "channel", "l1"): _S(0.03, 0.3, note="the training command shows 0.1"),
    ("resnet110", "spatial", "hoyer"): _S(1e-3, 1e-3, note="the training command shows 0.01"),
    ("resnet110", "spatial", "hoyer_square"): _S(3e-4, 1e-3),
    ("resnet110", "spatial", "l1"): _S(0.03, 0.05, note="the training command shows 0.3"),
}  # fmt: skip

#: the residual block of the official CIFAR ResNets (SVD training's and TRP's code): bottleneck from depth 44 on
OFFICIAL_BLOCK = {"resnet20": "basic", "resnet32": "basic", "resnet56": "bottleneck", "resnet110": "bottleneck"}


@dataclass(frozen=True)
class BaselineSetting:
    """The per-network values of a baseline preset (None: not one its method takes): SFP's and FPGM's
    ``ratio`` (the share of every prunable conv's filters pruned), L1-norm's MAC ``speedup`` (the budget a
    uniform ratio is searched for), TRP's ``energy_kept``, ``nuclear_weight`` and ``threshold``.
    ``published`` is False where the authors report no result for this network and the values are another
    network's (an extrapolation, which ``note`` names); ``note`` also says where a derived value comes from,
    or that the published number was not checked here."""

    ratio: float | None = None
    speedup: float | None = None
    energy_kept: float | None = None
    nuclear_weight: float | None = None
    threshold: float | None = None
    published: bool = True
    note: str = ""


_B = BaselineSetting
#: TRP's values (the paper's, and its CIFAR code's): the same for every network
_TRP = _B(energy_kept=0.9, nuclear_weight=3e-4, threshold=0.05)
_UNCHECKED = "no number checked here"
_L1_56, _L1_34 = "ResNet-56 pruned-B's 27.6 % fewer FLOPs", "ResNet-34 pruned-B's 24.2 % fewer FLOPs"
#: preset -> model -> its values, read as ``${published:<preset>,<field>}``. Sources: docs/experiments.md
#: (TRP, IJCAI 2019; SFP, IJCAI 2018 and FPGM, CVPR 2019, Tables 1 and 2; Li et al., ICLR 2017).
BASELINES: dict[str, dict[str, BaselineSetting]] = {
    "trp_cifar10": {
        "resnet20": _TRP,
        "resnet32": _TRP,
        "resnet56": replace(_TRP, note=_UNCHECKED),
        "resnet110": replace(_TRP, published=False, note="no published TRP result: ResNet-20's values"),
    },
    "trp_imagenet": {"resnet18": replace(_TRP, note=_UNCHECKED), "resnet50": _TRP},
    "l1_filter_cifar10": {
        "resnet20": _B(speedup=1.38, published=False, note=f"not pruned by Li et al.: {_L1_56}"),
        "resnet32": _B(speedup=1.38, published=False, note=f"not pruned by Li et al.: {_L1_56}"),
        "resnet56": _B(speedup=1.38, note="pruned-B: 27.6 % fewer FLOPs"),
        "resnet110": _B(speedup=1.63, note="pruned-B: 38.6 % fewer FLOPs"),
    },
    "l1_filter_imagenet": {
        "resnet18": _B(speedup=1.32, published=False, note=f"not pruned by Li et al.: {_L1_34}"),
        "resnet50": _B(speedup=1.32, published=False, note=f"not pruned by Li et al.: {_L1_34}"),
    },
    "sfp_cifar10": {"resnet20": _B(ratio=0.3), "resnet32": _B(ratio=0.3), "resnet56": _B(ratio=0.4),
                    "resnet110": _B(ratio=0.3)},
    "sfp_imagenet": {"resnet18": _B(ratio=0.3), "resnet50": _B(ratio=0.3)},
    "fpgm_cifar10": {"resnet20": _B(ratio=0.4), "resnet32": _B(ratio=0.4), "resnet56": _B(ratio=0.4),
                     "resnet110": _B(ratio=0.4)},
    "fpgm_imagenet": {"resnet18": _B(ratio=0.3), "resnet50": _B(ratio=0.3)},
}  # fmt: skip


def _choice(root: Any, key: str) -> Any:
    value = OmegaConf.select(root, key)
    if value is None:
        raise ValueError(f"the published settings are looked up by {key}, which is not set")
    return value


def published(table: str, field: str, *, _root_: Any) -> Any:
    """Resolver ``${published:TABLE,FIELD}``: FIELD of the official setting of this config's choices.
    TABLE ``svd_cifar10`` (fields of :class:`SVDSetting`, by model, decomposition and regularizer),
    ``cifar_block`` (the official residual block of ``model.name``) or a baseline preset's name (fields
    of :class:`BaselineSetting`, by ``model.name``: :data:`BASELINES`)."""
    model = _choice(_root_, "model.name")
    if table == "cifar_block":
        if model not in OFFICIAL_BLOCK:
            raise ValueError(f"no official network for model={model}: one of {', '.join(OFFICIAL_BLOCK)}")
        return OFFICIAL_BLOCK[model]
    if table in BASELINES:
        setting = BASELINES[table].get(model)
        if setting is None:
            raise ValueError(f"no published {table} setting for model={model}: one of {', '.join(BASELINES[table])}")
        value = getattr(setting, field)
        if value is None:
            raise ValueError(f"the published {table} settings have no {field}")
        return value
    if table != "svd_cifar10":
        raise ValueError(f"no published table {table!r}: svd_cifar10, cifar_block or one of {', '.join(BASELINES)}")
    key = (model, _choice(_root_, "method.decomposition"), _choice(_root_, "regularizer.kind"))
    setting = SVD_CIFAR10.get(key)
    if setting is None:
        models = sorted({k[0] for k in SVD_CIFAR10}, key=lambda m: int(m[6:]))
        raise ValueError(
            f"the authors published no SVD-training run for model={key[0]}, decomposition={key[1]}, "
            f"regularizer={key[2]}: models {'/'.join(models)}, channel/spatial, "
            "hoyer/hoyer_square/l1"
        )
    return getattr(setting, field)


def required(what: str) -> Any:
    """Resolver ``${required:WHAT}``: the value was not given; fails naming what the preset needs."""
    raise ValueError(f"this preset needs {what}")


def register_resolver() -> None:
    """Make ``${published:...}`` and ``${required:...}`` known to OmegaConf (idempotent)."""
    OmegaConf.register_new_resolver("published", published, replace=True)
    OmegaConf.register_new_resolver("required", required, replace=True)
