"""Regularisers of SVD training (docs/method.md 1.2).

Per-tensor terms:
- ``orthogonality(A) = ||G - I||_F^2 / g^2`` with ``G`` the smaller Gram matrix of ``A`` (``A^T A`` for
  a tall m x r ``A``, ``A A^T`` for a wide one) and ``g`` its size, so either orientation works.
- ``l1(s) = sum |s|``; ``hoyer(s) = ||s||_1 / ||s||_2``; ``hoyer_square(s) = ||s||_1^2 / ||s||_2^2``.

Model-level sums (over decomposed layers, not averaged): ``orthogonality_loss`` adds the term of
``U`` and of ``V`` of every layer; ``sparsity_loss`` adds the chosen term of every ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .lowrank import lowrank_layers

EPS = 1e-12
SPARSITY_KINDS = ("none", "l1", "hoyer", "hoyer_square")


def orthogonality(a: torch.Tensor) -> torch.Tensor:
    """``||G - I||_F^2 / g^2`` for the g x g Gram matrix ``G`` of the smaller side of 2-D ``a``."""
    gram = a.T @ a if a.shape[0] >= a.shape[1] else a @ a.T
    g = gram.shape[0]
    eye = torch.eye(g, dtype=a.dtype, device=a.device)
    return (gram - eye).square().sum() / g**2


def l1(s: torch.Tensor) -> torch.Tensor:
    return s.abs().sum()


def hoyer(s: torch.Tensor) -> torch.Tensor:
    return s.abs().sum() / (s.square().sum().sqrt() + EPS)


def hoyer_square(s: torch.Tensor) -> torch.Tensor:
    return s.abs().sum().square() / (s.square().sum() + EPS)


def sparsity(s: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "none":
        return s.new_zeros(())
    try:
        fn = {"l1": l1, "hoyer": hoyer, "hoyer_square": hoyer_square}[kind]
    except KeyError:
        raise ValueError(f"unknown sparsity kind {kind!r}; choose from {SPARSITY_KINDS}") from None
    return fn(s)


def orthogonality_loss(model: nn.Module) -> torch.Tensor:
    """``sum_layers [orthogonality(U) + orthogonality(V)]`` (0 for a model with no decomposed layer)."""
    terms = [orthogonality(m.U) + orthogonality(m.V) for m in lowrank_layers(model).values()]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def sparsity_loss(model: nn.Module, kind: str = "hoyer") -> torch.Tensor:
    """``sum_layers sparsity(s, kind)``."""
    terms = [sparsity(m.s, kind) for m in lowrank_layers(model).values()]
    return torch.stack(terms).sum() if terms else torch.zeros(())


@dataclass
class SparsityRegularizer:
    """``weight * sparsity_loss(model, kind)``: the ``regularizer`` config group as an object."""

    kind: str = "hoyer"
    weight: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SPARSITY_KINDS:
            raise ValueError(f"regularizer.kind must be one of {SPARSITY_KINDS}, got {self.kind!r}")
        if self.weight < 0:
            raise ValueError(f"regularizer.weight must be >= 0, got {self.weight}")

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.weight > 0

    def __call__(self, model: nn.Module) -> torch.Tensor:
        return self.weight * sparsity_loss(model, self.kind)
