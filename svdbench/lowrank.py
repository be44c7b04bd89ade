"""Decomposed (SVD-form) layers and the verbs that act on them: decompose, prune, export.

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

from __future__ import annotations

import fnmatch
import math
import warnings
from typing import Iterable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

Decomposition = Literal["channel", "spatial"]
Init = Literal["random", "svd"]
ForwardMode = Literal["auto", "rebuild", "factors"]

__all__ = [
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
]


class LowRankLayer(nn.Module):
    """Base of the decomposed layers: parameters ``U`` (m x r), ``s`` (r), ``V`` (n x r) and ``bias``
    (the dense layer's, or None), with ``W2d = U diag(s) V^T``. ``rank`` is r now (the length of ``s``),
    ``full_rank`` is min(m, n), the rank at decomposition; :meth:`keep` shrinks r. ``forward_mode``:
    ``auto`` (whichever of the two forwards costs fewer MACs for the input), ``rebuild`` (one
    conv/linear with the rebuilt weight) or ``factors`` (the two small layers)."""

    U: nn.Parameter
    s: nn.Parameter
    V: nn.Parameter
    full_rank: int
    forward_mode: str

    def _init_factors(self, w2d: torch.Tensor, bias: torch.Tensor | None) -> None:
        u, s, vh = torch.linalg.svd(w2d.detach().double(), full_matrices=False)
        dtype = w2d.dtype
        self.U = nn.Parameter(u.to(dtype).contiguous())
        self.s = nn.Parameter(s.to(dtype).contiguous())
        self.V = nn.Parameter(vh.T.to(dtype).contiguous())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.full_rank = int(s.numel())

    def _factory(self) -> dict:
        return {"device": self.s.device, "dtype": self.s.dtype}

    @property
    def rank(self) -> int:
        return int(self.s.numel())

    def matrix(self) -> torch.Tensor:
        """``W2d = U diag(s) V^T`` (m x n)."""
        return (self.U * self.s) @ self.V.T

    @torch.no_grad()
    def keep(self, index: torch.Tensor) -> None:
        """Physically keep only the singular triplets in ``index`` (1-D long tensor of positions in
        ``s``, in the order to keep them): ``U``, ``s``, ``V`` become new parameters of rank
        ``len(index)`` (an optimiser made before must be made again). :func:`prune` keeps the largest."""
        index = index.to(self.s.device)
        self.U = nn.Parameter(self.U[:, index].contiguous())
        self.s = nn.Parameter(self.s[index].contiguous())
        self.V = nn.Parameter(self.V[:, index].contiguous())

    def extra_repr(self) -> str:
        return f"rank={self.rank}/{self.full_rank}, forward_mode={self.forward_mode}"


class LowRankConv2d(LowRankLayer):
    """A ``Conv2d`` trained as ``U diag(s) V^T`` (channel-wise or spatial-wise reshape)."""

    def __init__(
        self,
        conv: nn.Conv2d,
        decomposition: Decomposition = "channel",
        init: Init = "svd",
        forward_mode: ForwardMode = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"LowRankConv2d needs an nn.Conv2d, got {type(conv).__name__}")
        if conv.groups != 1:
            raise ValueError(f"grouped convolutions (groups={conv.groups}) cannot be decomposed")
        if decomposition not in ("channel", "spatial"):
            raise ValueError(f"decomposition must be 'channel' or 'spatial', got {decomposition!r}")
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError("only numeric zero padding can be decomposed")
        self.decomposition = decomposition
        self.forward_mode = forward_mode
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = tuple(conv.kernel_size)
        self.stride = tuple(conv.stride)
        self.padding = tuple(conv.padding)
        self.dilation = tuple(conv.dilation)
        weight = _initial_weight(conv, init)
        bias = conv.bias
        if init == "random" and bias is not None:
            bias = torch.zeros_like(bias)
        self._init_factors(self.weight_to_matrix(weight), bias)

    # reshape between the 4-D kernel and the 2-D matrix that is factorised
    def weight_to_matrix(self, w: torch.Tensor) -> torch.Tensor:
        co, ci, kh, kw = w.shape
        if self.decomposition == "channel":
            return w.reshape(co, ci * kh * kw)
        return w.permute(1, 2, 0, 3).reshape(ci * kh, co * kw)

    def matrix_to_weight(self, m: torch.Tensor) -> torch.Tensor:
        co, ci = self.out_channels, self.in_channels
        kh, kw = self.kernel_size
        if self.decomposition == "channel":
            return m.reshape(co, ci, kh, kw)
        return m.reshape(ci, kh, co, kw).permute(2, 0, 1, 3)

    def weight(self) -> torch.Tensor:
        """Dense kernel ``Cout x Cin x kh x kw`` rebuilt from the factors."""
        return self.matrix_to_weight(self.matrix())

    def factor_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernels of the two deployed convolutions (s folded into the second)."""
        r, (kh, kw) = self.rank, self.kernel_size
        ci, co = self.in_channels, self.out_channels
        if self.decomposition == "channel":
            first = self.V.T.reshape(r, ci, kh, kw)
            second = (self.U * self.s).reshape(co, r, 1, 1)
        else:
            first = self.U.T.reshape(r, ci, kh, 1)
            second = (self.V * self.s).reshape(co, kw, r).permute(0, 2, 1).unsqueeze(2)
        return first, second

    def factor_conv_args(self) -> tuple[dict, dict]:
        """Keyword arguments (stride, padding, dilation) of the two deployed convolutions."""
        if self.decomposition == "channel":
            return (
                dict(stride=self.stride, padding=self.padding, dilation=self.dilation),
                dict(stride=1, padding=0, dilation=1),
            )
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        return (
            dict(stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1)),
            dict(stride=(1, sw), padding=(0, pw), dilation=(1, dw)),
        )

    def _cost(self, x: torch.Tensor) -> tuple[float, float]:
        """Multiply-adds of (rebuild + one conv, two factor convs) for input ``x`` (B,C,H,W)."""
        b, _, h, w = x.shape
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        r, ci, co = self.rank, self.in_channels, self.out_channels
        rebuild = co * ci * kh * kw * r + b * ho * wo * kh * kw * ci * co
        if self.decomposition == "channel":
            factors = b * ho * wo * (kh * kw * ci * r + r * co)
        else:
            factors = b * ho * w * kh * ci * r + b * ho * wo * kw * r * co
        return rebuild, factors

    def use_factors(self, x: torch.Tensor) -> bool:
        if self.forward_mode == "auto":
            rebuild, factors = self._cost(x)
            return factors < rebuild
        return self.forward_mode == "factors"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_factors(x):
            (w1, w2), (a1, a2) = self.factor_weights(), self.factor_conv_args()
            return F.conv2d(F.conv2d(x, w1, None, **a1), w2, self.bias, **a2)
        return F.conv2d(x, self.weight(), self.bias, self.stride, self.padding, self.dilation)

    def to_dense(self) -> nn.Conv2d:
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            bias=self.bias is not None,
            **self._factory(),
        )
        with torch.no_grad():
            conv.weight.copy_(self.weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def to_factors(self) -> nn.Sequential:
        (w1, w2), (a1, a2) = self.factor_weights(), self.factor_conv_args()
        first = nn.Conv2d(self.in_channels, self.rank, tuple(w1.shape[2:]), bias=False, **a1, **self._factory())
        second = nn.Conv2d(
            self.rank, self.out_channels, tuple(w2.shape[2:]), bias=self.bias is not None, **a2, **self._factory()
        )
        with torch.no_grad():
            first.weight.copy_(w1)
            second.weight.copy_(w2)
            if self.bias is not None:
                second.bias.copy_(self.bias)
        return nn.Sequential(first, second)

    def deployed_macs(self, out_hw: tuple[int, int], in_w: int, factored: bool = True) -> int:
        """Per-sample MACs of the deployed layer for an output ``H x W`` (docs/method.md 1.1)."""
        (h, w), (kh, kw) = out_hw, self.kernel_size
        r, ci, co = self.rank, self.in_channels, self.out_channels
        if not factored:
            return h * w * kh * kw * ci * co
        if self.decomposition == "channel":
            return h * w * (kh * kw * ci * r + r * co)
        return h * in_w * kh * ci * r + h * w * kw * r * co


class LowRankLinear(LowRankLayer):
    """An ``nn.Linear`` trained as ``U diag(s) V^T`` (U: out x r, V: in x r)."""

    decomposition = "linear"

    def __init__(self, linear: nn.Linear, init: Init = "svd", forward_mode: ForwardMode = "auto") -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"LowRankLinear needs an nn.Linear, got {type(linear).__name__}")
        self.forward_mode = forward_mode
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = _initial_weight(linear, init)
        bias = linear.bias
        if init == "random" and bias is not None:
            bias = torch.zeros_like(bias)
        self._init_factors(weight, bias)

    def weight(self) -> torch.Tensor:
        return self.matrix()

    def use_factors(self, x: torch.Tensor) -> bool:
        if self.forward_mode == "auto":
            rows = x.numel() // self.in_features
            r, i, o = self.rank, self.in_features, self.out_features
            return rows * r * (i + o) < o * r * i + rows * i * o
        return self.forward_mode == "factors"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_factors(x):
            return F.linear(F.linear(x, self.V.T), self.U * self.s, self.bias)
        return F.linear(x, self.matrix(), self.bias)

    def to_dense(self) -> nn.Linear:
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, **self._factory())
        with torch.no_grad():
            lin.weight.copy_(self.matrix())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def to_factors(self) -> nn.Sequential:
        first = nn.Linear(self.in_features, self.rank, bias=False, **self._factory())
        second = nn.Linear(self.rank, self.out_features, bias=self.bias is not None, **self._factory())
        with torch.no_grad():
            first.weight.copy_(self.V.T)
            second.weight.copy_(self.U * self.s)
            if self.bias is not None:
                second.bias.copy_(self.bias)
        return nn.Sequential(first, second)

    def deployed_macs(self, factored: bool = True) -> int:
        r, i, o = self.rank, self.in_features, self.out_features
        return r * (i + o) if factored else i * o


def _initial_weight(layer: nn.Conv2d | nn.Linear, init: str) -> torch.Tensor:
    """The dense weight to factorise.

    ``svd``: the layer's current weight, so that the full-rank factors reproduce it exactly.
    ``random``: a fresh draw of the layer's own (Kaiming-uniform) initialisation, factorised by
    SVD, so U and V start orthonormal and W has the usual Kaiming scale. (The original code draws
    U and V with Kaiming directly and lets the orthogonality term make them orthonormal; starting
    orthonormal satisfies that term from step one and keeps the same weight distribution.)
    """
    if init == "svd":
        return layer.weight.detach()
    if init == "random":
        w = torch.empty_like(layer.weight)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        return w
    raise ValueError(f"init must be 'random' or 'svd', got {init!r}")


def decompose_layer(
    layer: nn.Module, decomposition: Decomposition = "channel", init: Init = "svd", forward_mode: ForwardMode = "auto"
) -> LowRankLayer:
    """Decompose one ``Conv2d`` (channel or spatial) or ``Linear``; anything else raises."""
    if isinstance(layer, nn.Conv2d):
        return LowRankConv2d(layer, decomposition, init, forward_mode)
    if isinstance(layer, nn.Linear):
        return LowRankLinear(layer, init, forward_mode)
    raise TypeError(f"cannot decompose {type(layer).__name__}: only nn.Conv2d and nn.Linear")


def decompose(
    model: nn.Module,
    decomposition: Decomposition = "channel",
    init: Init = "svd",
    skip: Iterable[str] = (),
    linear: bool = False,
    min_rank: int = 2,
    forward_mode: ForwardMode = "auto",
) -> nn.Module:
    """Replace, in place, every eligible ``Conv2d`` (and ``Linear`` when ``linear``) by its
    decomposed form and return the model.

    ``skip`` holds fnmatch patterns of module names left dense (e.g. ``"conv1"``, ``"*.downsample.*"``).
    Layers whose full rank is below ``min_rank`` (e.g. a 1-channel stem) and grouped or
    non-zero-padded convolutions are left dense with a warning.
    """
    skip = list(skip)
    left: list[str] = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, (nn.Conv2d, nn.Linear)) or isinstance(module, LowRankLayer):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            continue
        if isinstance(module, nn.Linear) and not linear:
            continue
        try:
            new = decompose_layer(module, decomposition, init, forward_mode)
        except ValueError as err:
            left.append(f"{name} ({err})")
            continue
        if new.full_rank < min_rank:
            left.append(f"{name} (full rank {new.full_rank} < {min_rank})")
            continue
        _set_submodule(model, name, new.to(module.weight.device))
    if left:
        warnings.warn("left dense: " + "; ".join(left), stacklevel=2)
    return model


def lowrank_layers(model: nn.Module) -> dict[str, LowRankLayer]:
    """Name -> decomposed layer, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LowRankLayer)}


def ranks(model: nn.Module) -> dict[str, int]:
    return {n: m.rank for n, m in lowrank_layers(model).items()}


def kept_rank(s: torch.Tensor, energy: float | None = None, threshold: float | None = None) -> int:
    """Rank kept from singular values ``s`` (any order, sign ignored).

    ``energy`` e: drop the smallest values whose squared sum is at most ``e * sum(s^2)``.
    ``threshold`` t: drop the values with ``|s| < t``. Always at least 1.
    """
    if (energy is None) == (threshold is None):
        raise ValueError("give exactly one of energy or threshold")
    a = s.detach().abs().double().sort(descending=True).values
    if threshold is not None:
        return max(1, int((a >= threshold).sum()))
    if not 0.0 <= energy < 1.0:
        raise ValueError(f"energy must be in [0, 1), got {energy}")
    sq = a.square()
    tail = sq.flip(0).cumsum(0).flip(0)  # tail[i] = sum of sq[i:]
    droppable = tail <= energy * sq.sum()
    return max(1, int((~droppable).sum()))


def round_rank(rank: int, full: int, multiple: int = 1) -> int:
    """``rank`` rounded *up* to a multiple of ``multiple``, at most ``full``: the energy rule's
    guarantee (the dropped tail holds at most e of sum(s^2)) still holds, and the factor pair's
    inner width becomes one that vector units and GEMM kernels tile without a remainder (its cost:
    fewer MACs saved). ``multiple`` 1 leaves the rank alone."""
    if multiple < 1:
        raise ValueError(f"round_to must be >= 1, got {multiple}")
    return min(full, -(-rank // multiple) * multiple)


def prune_layer(
    layer: LowRankLayer, energy: float | None = None, threshold: float | None = None, round_to: int = 1
) -> int:
    """Keep the largest singular values of one ``layer``: :func:`kept_rank`, then :func:`round_rank`."""
    return _keep_largest(layer, round_rank(kept_rank(layer.s, energy, threshold), layer.rank, round_to))


def _keep_largest(layer: LowRankLayer, r: int) -> int:
    order = layer.s.detach().abs().argsort(descending=True)
    layer.keep(order[:r].sort().values)
    return r


class PrunedRanks(NamedTuple):
    """Name -> rank of every decomposed layer, as :func:`prune_recorded` saw it."""

    before: dict[str, int]  # as decomposed
    unrounded: dict[str, int]  # what the energy (or threshold) rule alone keeps
    after: dict[str, int]  # kept: the rule's rank after :func:`round_rank`


def prune_recorded(
    model: nn.Module,
    energy: float | None = None,
    threshold: float | None = None,
    round_to: int = 1,
    ranks: dict[str, int] | None = None,
) -> PrunedRanks:
    """:func:`prune`, recording each layer's rank before, by the rule alone and after rounding."""
    layers = lowrank_layers(model)
    if ranks is not None:
        if energy is not None or threshold is not None:
            raise ValueError("give one of energy, threshold or ranks")
        unknown = sorted(set(ranks) - set(layers))
        if unknown:
            raise ValueError(f"ranks names layers that are not decomposed: {', '.join(unknown)}")
    rec = PrunedRanks({}, {}, {})
    for n, m in layers.items():
        rec.before[n] = m.rank
        if ranks is None:
            rec.unrounded[n] = kept_rank(m.s, energy, threshold)
        else:
            rec.unrounded[n] = int(ranks.get(n, m.rank))
            if not 1 <= rec.unrounded[n] <= m.rank:
                raise ValueError(f"ranks[{n!r}] = {rec.unrounded[n]} is not in [1, {m.rank}] (its current rank)")
        rec.after[n] = _keep_largest(m, round_rank(rec.unrounded[n], m.rank, round_to))
    return rec


def prune(
    model: nn.Module,
    energy: float | None = None,
    threshold: float | None = None,
    round_to: int = 1,
    ranks: dict[str, int] | None = None,
) -> dict[str, int]:
    """Keep the largest singular values of every decomposed layer, in place; returns name -> rank.

    The rank each layer keeps is set by exactly one rule: ``energy`` e (drop the smallest values whose
    squared sum is at most ``e * sum(s^2)``, :func:`kept_rank`), ``threshold`` t (drop ``|s| < t``) or
    ``ranks`` (layer name -> rank, e.g. a fixed share of ``layer.full_rank``; layers not named keep
    theirs). Then :func:`round_rank` rounds it up to a multiple of ``round_to``. Values are kept in
    their order; ``U``, ``s`` and ``V`` physically shrink (:meth:`LowRankLayer.keep`).
    """
    return prune_recorded(model, energy, threshold, round_to, ranks).after


def export(model: nn.Module, merge_unprofitable: bool = True) -> nn.Module:
    """A copy of ``model`` in which every decomposed layer is a pair of plain layers.

    With ``merge_unprofitable`` a layer whose pair would cost at least as many MACs as the dense
    layer (rank near full) is deployed as one dense layer instead (same function, fewer MACs).
    The copy is numerically equal to ``model`` in eval mode, scriptable and traceable.
    """
    import copy

    deployed = copy.deepcopy(model)
    for name, layer in list(lowrank_layers(deployed).items()):
        dense_cheaper = merge_unprofitable and _factor_cost_ratio(layer) >= 1.0
        _set_submodule(deployed, name, layer.to_dense() if dense_cheaper else layer.to_factors())
    return deployed


def _factor_cost_ratio(layer: LowRankLayer) -> float:
    """Per-output-pixel MACs of the factor pair over the dense layer (stride ignored for spatial)."""
    if isinstance(layer, LowRankLinear):
        return layer.deployed_macs(True) / layer.deployed_macs(False)
    sw = layer.stride[1]
    return layer.deployed_macs((1, 1), sw if layer.decomposition == "spatial" else 1) / layer.deployed_macs(
        (1, 1), 1, factored=False
    )


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
