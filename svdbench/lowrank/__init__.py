"""Decomposed (SVD-form) layers (:mod:`.layers`) and the verbs that act on them (:mod:`.ops`):
decompose, prune, export; and the search of the energy that reaches a MAC target (:mod:`.search`).

A decomposed layer holds ``U`` (m x r), ``s`` (r) and ``V`` (n x r) with
``W2d = U diag(s) V^T`` for a 2-D reshape ``W2d`` (m x n) of the dense weight
(docs/method.md section 1.1):

=============  ==========================================  ==============================================
decomposition  reshape of the kernel ``Cout x Cin x kh x kw``  deployed as
=============  ==========================================  ==============================================
channel        ``Cout x (Cin*kh*kw)``                      kh x kw conv Cin->r, then 1x1 conv r->Cout (+bias)
spatial        ``(Cin*kh) x (Cout*kw)`` (permuted Cin,kh,    kh x 1 conv Cin->r (stride (sh,1)), then
               Cout,kw)                                    1 x kw conv r->Cout (stride (1,sw)) (+bias)
linear         ``out x in``                                Linear in->r (no bias), Linear r->out (+bias)
=============  ==========================================  ==============================================
"""

from .layers import Decomposition, ForwardMode, Init, LowRankConv2d, LowRankLayer, LowRankLinear, decompose_layer
from .ops import (
    PrunedRanks,
    decompose,
    export,
    kept_rank,
    lowrank_layers,
    prune,
    prune_layer,
    prune_recorded,
    ranks,
    round_rank,
)
from .search import EnergyFound, energy_breakpoints, energy_for_speedup, rank_one_speedup

__all__ = [
    "Decomposition",
    "ForwardMode",
    "Init",
    "LowRankLayer",
    "LowRankConv2d",
    "LowRankLinear",
    "decompose",
    "decompose_layer",
    "prune",
    "prune_layer",
    "prune_recorded",
    "PrunedRanks",
    "round_rank",
    "kept_rank",
    "export",
    "lowrank_layers",
    "ranks",
    "EnergyFound",
    "energy_breakpoints",
    "energy_for_speedup",
    "rank_one_speedup",
]
