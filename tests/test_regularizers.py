"""Regularisers against direct formulas; gradients reach U, s and V."""

import math

import pytest
import torch
from torch import nn

import svdbench
from svdbench import regularizers as R


def test_orthogonality_formula_both_orientations():
    a = torch.randn(7, 3, dtype=torch.double)
    g = a.T @ a
    expected = sum((g[i, j] - float(i == j)) ** 2 for i in range(3) for j in range(3)) / 9
    assert R.orthogonality(a).item() == pytest.approx(expected.item())
    assert R.orthogonality(a.T).item() == pytest.approx(expected.item())
    q, _ = torch.linalg.qr(torch.randn(9, 4, dtype=torch.double))
    assert R.orthogonality(q).item() < 1e-20


def test_sparsity_terms_against_formulas():
    s = torch.tensor([3.0, -4.0, 0.0, 1.0], dtype=torch.double)
    l1, l2 = 8.0, math.sqrt(26.0)
    assert R.l1(s).item() == pytest.approx(l1)
    assert R.hoyer(s).item() == pytest.approx(l1 / l2)
    assert R.hoyer_square(s).item() == pytest.approx(l1**2 / 26.0)
    assert R.sparsity(s, "none").item() == 0.0
    # Hoyer is scale invariant, L1 is not
    assert R.hoyer(5 * s).item() == pytest.approx(R.hoyer(s).item())
    assert R.l1(5 * s).item() == pytest.approx(5 * l1)
    with pytest.raises(ValueError, match="unknown sparsity kind"):
        R.sparsity(s, "l2")


def test_model_level_sums_and_gradients():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8, 4))
    svdbench.decompose(net, init="random", linear=True)
    layers = list(svdbench.lowrank.lowrank_layers(net).values())
    assert len(layers) == 3
    with torch.no_grad():
        for m in layers:
            m.U.add_(0.1 * torch.randn_like(m.U))
            m.V.add_(0.1 * torch.randn_like(m.V))
    ortho = svdbench.orthogonality_loss(net)
    expected = sum(R.orthogonality(m.U) + R.orthogonality(m.V) for m in layers)
    assert ortho.item() == pytest.approx(expected.item(), rel=1e-6)
    sp = svdbench.sparsity_loss(net, kind="hoyer")
    assert sp.item() == pytest.approx(sum(R.hoyer(m.s) for m in layers).item(), rel=1e-6)
    (ortho + sp).backward()
    for m in layers:
        assert m.U.grad is not None and m.U.grad.abs().sum() > 0
        assert m.V.grad is not None and m.V.grad.abs().sum() > 0
        assert m.s.grad is not None and m.s.grad.abs().sum() > 0


def test_task_gradient_reaches_factors():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    svdbench.decompose(net)
    net(torch.randn(2, 3, 6, 6)).sum().backward()
    m = net[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (m.U, m.s, m.V))


def test_regularizer_object_validates():
    with pytest.raises(ValueError, match="regularizer.weight"):
        R.SparsityRegularizer("hoyer", -0.1)
    with pytest.raises(ValueError, match="regularizer.kind"):
        R.SparsityRegularizer("l3", 0.1)
    assert not R.SparsityRegularizer("hoyer", 0.0).active
