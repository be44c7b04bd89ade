"""The decomposed layers: a ``Conv2d`` or ``Linear`` held as ``U diag(s) V^T`` (docs/method.md 1.1),
trained in that form and deployed as a pair of small plain layers (:meth:`to_factors`)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Decomposition = Literal["channel", "spatial"]
Init = Literal["random", "svd"]
ForwardMode = Literal["auto", "rebuild", "factors"]

__all__ = ["Decomposition", "ForwardMode", "Init", "LowRankConv2d", "LowRankLayer", "LowRankLinear", "decompose_layer"]


class LowRankLayer(nn.Module):
    """Base of the decomposed layers: parameters ``U`` (m x r), ``s`` (r), ``V`` (n x r) and ``bias``
    (the dense layer's, or None), with ``W2d = U diag(s) V^T``. ``rank`` is r now (the length of ``s``),
    ``full_rank`` is min(m, n), the rank at decomposition; :meth:`keep` shrinks r. ``forward_mode``:
    ``auto`` (whichever of the two forwards costs fewer MACs for the input), ``rebuild`` (one
    conv/linear with the rebuilt weight) or ``factors`` (the two small layers). With ``abs_s`` the
    layer computes ``U diag(|s|) V^T`` (the SVD-training authors' forward; s keeps its sign as a
    parameter, so a value crossing zero reflects instead of turning its direction round)."""

    U: nn.Parameter
    s: nn.Parameter
    V: nn.Parameter
    full_rank: int
    forward_mode: str
    abs_s: bool = False

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

    def scale(self) -> torch.Tensor:
        """The singular values the layer computes with: ``s``, or ``|s|`` with ``abs_s`` (r)."""
        return self.s.abs() if self.abs_s else self.s

    def matrix(self) -> torch.Tensor:
        """``W2d = U diag(s) V^T`` (m x n)."""
        return (self.U * self.scale()) @ self.V.T

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
        text = f"rank={self.rank}/{self.full_rank}, forward_mode={self.forward_mode}"
        return text + (", abs_s" if self.abs_s else "")


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
            second = (self.U * self.scale()).reshape(co, r, 1, 1)
        else:
            first = self.U.T.reshape(r, ci, kh, 1)
            second = (self.V * self.scale()).reshape(co, kw, r).permute(0, 2, 1).unsqueeze(2)
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
            return F.linear(F.linear(x, self.V.T), self.U * self.scale(), self.bias)
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
            second.weight.copy_(self.U * self.scale())
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
