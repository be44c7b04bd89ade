"""Counting MACs and parameters of a (deployed) model: the one place that convention lives.

MACs follow the literature (docs/method.md, "Conventions": "FLOPs" = multiply-accumulates): fvcore's
``FlopCountAnalysis`` counts one multiply-add as one, run on a batch of one sample.
``macs`` sums the weight operators (convolutions, linear layers and matrix products, attention's
included);
``macs_total`` is fvcore's full total, which adds batch norm, pooling and the like.

fvcore has no handle for ``aten::scaled_dot_product_attention`` (PyTorch's fused attention, which timm's
vision transformers call by default): without one its two matrix products would land in
``unsupported_ops`` and drop out of the count. :func:`analyze_macs` registers
:func:`_sdpa_macs`, which counts them (Q K^T and A V) under the operator key
``scaled_dot_product_attention``, so a fused model counts the same as the unfused one (explicit
``matmul``s).

:func:`weight_macs` and :class:`MacModel` count the same convention with module hooks instead of
a trace: every ``nn.Conv2d`` and ``nn.Linear``, per sample, and nothing else. On a plain CNN (no
functional matrix products) they equal :func:`count_macs` at a fraction of its cost, which is what
filter pruning's speed-up search needs (:mod:`svdbench.pruning.speedup`). On a transformer they are
lower: attention's matrix products (and any other functional ``matmul``) are no modules.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .torch_utils import eval_mode, example_input

WEIGHT_OPS = ("conv", "linear", "addmm", "matmul", "bmm", "einsum", "scaled_dot_product_attention")


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


def _sdpa_macs(inputs, outputs) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention(q, k, v, ...)``: the MACs of its two matrix
    products, Q K^T and A V. With q of shape (..., Lq, E), k (..., Lk, E) and v (..., Lk, Ev), every
    leading (batch, head) slice costs Lq*Lk*E + Lq*Lk*Ev. The leading dims are the output's (q's
    after broadcasting; with grouped-query attention q's heads), q's where the trace has no output shape.
    Scaling, masking, softmax and dropout are no multiply-accumulates and are not counted."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    out = get_shape(outputs[0]) if outputs else None
    lead = (out or q)[:-2]
    lq, e = q[-2], q[-1]
    lk, ev = k[-2], v[-1]
    n = 1
    for d in lead:
        n *= d
    return n * lq * lk * (e + ev)


def analyze_macs(model: nn.Module, input_shape: Sequence[int]) -> MacCount:
    """Per-sample MAC count of ``model`` on a zero input of ``input_shape`` (batch forced to 1)."""
    fvcore, FlopCountAnalysis = _import_fvcore()
    x = example_input(model, input_shape)
    with eval_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(model, x)
        fca.set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs)
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


def hooked_forward(
    model: nn.Module, input_shape: Sequence[int], hook: Callable, types: tuple[type, ...] = (nn.Conv2d, nn.Linear)
) -> None:
    """One batch-1 forward pass in eval mode without gradients, ``hook`` on every module of ``types``
    (default: every conv and linear layer)."""
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, types)]
    try:
        with eval_mode(model), torch.no_grad():
            model(example_input(model, input_shape))
    finally:
        for h in hooks:
            h.remove()


def weight_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Per-sample multiply-accumulates of every ``nn.Conv2d`` and ``nn.Linear`` (module hooks, one
    forward pass at batch 1, eval mode). Equals :func:`count_macs` (fvcore's conv + linear
    operators) on plain CNNs, at a fraction of its cost.

    Conv2d and Linear only: matrix products outside those modules are not counted, so on a transformer
    this is lower than :func:`count_macs` by attention's Q K^T and A V (``scaled_dot_product_attention``
    or explicit ``matmul``), which are no modules."""
    total = 0

    def count(m: nn.Module, inp, out) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out[0].numel() * (m.in_channels // m.groups) * kh * kw
        else:
            total += out[0].numel() * m.in_features

    hooked_forward(model, input_shape, count)
    return int(total)


class MacModel:
    """:func:`weight_macs` without a forward pass: the output size per channel of every conv and
    linear layer is recorded once; channel pruning changes widths, never spatial sizes, so
    ``macs()`` reads the (pruned) widths off the modules and stays exact.

    Like :func:`weight_macs` it counts Conv2d and Linear only: attention's matrix products (no modules)
    are left out, so on a transformer it is lower than :func:`count_macs`."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int]) -> None:
        self.sites: dict[nn.Module, int] = {}

        def record(m: nn.Module, inp, out) -> None:
            per_channel = out[0].numel() // (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
            self.sites[m] = per_channel

        hooked_forward(model, input_shape, record)

    def macs(self) -> int:
        total = 0
        for m, per_channel in self.sites.items():
            if isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                total += per_channel * m.out_channels * (m.in_channels // m.groups) * kh * kw
            else:
                total += per_channel * m.out_features * m.in_features
        return total
