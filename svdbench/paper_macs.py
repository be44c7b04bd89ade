"""The second MAC count: the SVD-training authors' convention (their ``print_modules``), recorded beside
fvcore's so that a reproduction compares with the speed-ups their papers print.

Per sample, convolutions only (no linear layer, no matrix product): a plain ``nn.Conv2d`` counts
``H*W*kh*kw*Cin/groups*Cout`` for its ``H x W`` output; every decomposed conv (:class:`LowRankConv2d`)
counts as its factor pair at its current rank (docs/method.md 1.1), channel-wise
``H*W*(kh*kw*Cin*r + r*Cout)`` and spatial-wise ``H*Win*kh*Cin*r + H*W*kw*r*Cout``, even where the pair
costs more than the dense conv (fvcore's count is of the deployed model, which deploys such a layer dense:
``method.merge_unprofitable``). The model is counted before export, as trained.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .lowrank import LowRankConv2d
from .macs import hooked_forward

#: how results.json's ``macs_paper`` was counted (kept in the record)
CONVENTION = "conv layers only; each decomposed conv as its factor pair at its rank (SVD authors' print_modules)"


def paper_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Per-sample MACs of ``model``'s convolutions in the authors' convention (module docstring): one
    forward pass at batch 1, eval mode, no gradients."""
    total = 0

    def count(m: nn.Module, inp, out) -> None:
        nonlocal total
        h, w = out.shape[-2:]
        if isinstance(m, LowRankConv2d):
            total += m.deployed_macs((h, w), inp[0].shape[-1], factored=True)
        else:
            kh, kw = m.kernel_size
            total += h * w * kh * kw * (m.in_channels // m.groups) * m.out_channels

    hooked_forward(model, input_shape, count, types=(nn.Conv2d, LowRankConv2d))
    return int(total)


def paper_record(model: nn.Module, dense_macs: int, input_shape: Sequence[int]) -> dict:
    """results.json's ``macs_paper``: ``{"macs", "dense", "speedup", "convention"}``, ``dense`` being the
    dense model's count in the same convention."""
    macs = paper_macs(model, input_shape)
    return {"macs": macs, "dense": int(dense_macs), "speedup": dense_macs / max(macs, 1), "convention": CONVENTION}
