"""Counting MACs and parameters of a (deployed) model: the one place that convention lives.

MACs follow the literature (docs/method.md, "Conventions": "FLOPs" = multiply-accumulates): fvcore's
``FlopCountAnalysis`` counts one multiply-add as one, run on a batch of one sample.
``macs`` sums the weight operators (convolutions, linear layers and matrix products);
``macs_total`` is fvcore's full total, which adds batch norm, pooling and the like.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from .torch_utils import eval_mode, example_input

WEIGHT_OPS = ("conv", "linear", "addmm", "matmul", "bmm", "einsum")


@dataclass
class MacCount:
    macs: int
    macs_total: int
    by_operator: dict[str, int]
    unsupported_ops: dict[str, int] = field(default_factory=dict)
    counter: str = ""

    def as_dict(self) -> dict:
        return {
            "macs": self.macs,
            "macs_total": self.macs_total,
            "by_operator": self.by_operator,
            "unsupported_ops": self.unsupported_ops,
            "counter": self.counter,
        }


def _import_fvcore():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore under torch 2.14: torch.jit.script notice
        import fvcore
        from fvcore.nn import FlopCountAnalysis
    return fvcore, FlopCountAnalysis


def fvcore_version() -> str:
    return _import_fvcore()[0].__version__


def analyze_macs(model: nn.Module, input_shape: Sequence[int]) -> MacCount:
    """Per-sample MAC count of ``model`` on a zero input of ``input_shape`` (batch forced to 1)."""
    fvcore, FlopCountAnalysis = _import_fvcore()
    x = example_input(model, input_shape)
    with eval_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(model, x)
        fca.uncalled_modules_warnings(False)
        fca.unsupported_ops_warnings(False)
        fca.tracer_warnings("none")
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        total = int(fca.total())
        by_op = {k: int(v) for k, v in fca.by_operator().items()}
        unsupported = {k: int(v) for k, v in fca.unsupported_ops().items()}
    macs = sum(v for k, v in by_op.items() if k in WEIGHT_OPS)
    return MacCount(macs, total, by_op, unsupported, f"fvcore {fvcore.__version__}")


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Per-sample multiply-accumulates of the conv / linear / matmul operators of ``model``."""
    return analyze_macs(model, input_shape).macs


def count_params(model: nn.Module) -> int:
    """Number of parameters (unique tensors)."""
    return sum(p.numel() for p in model.parameters())
