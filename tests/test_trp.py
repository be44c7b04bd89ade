"""TRP (trained rank pruning): the kernel reshape shared with LowRankConv2d, the periodic truncation
at the energy kept, the nuclear-norm sub-gradient and the layers left dense; unit tests on
constructed weights whose answer is known."""

import pytest
import torch
from torch import nn

import svdbench
from svdbench.lowrank import LowRankConv2d
from svdbench.methods.trp import TRP, KernelReshape


def with_singular_values(shape: KernelReshape, s: list[float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A kernel whose reshaped matrix has singular values ``s`` (+ zeros): (kernel, U, V)."""
    w = torch.zeros(shape.out_channels, shape.in_channels, *shape.kernel_size)
    m, n = shape.weight_to_matrix(w).shape
    g = torch.Generator().manual_seed(1)
    u = torch.linalg.qr(torch.randn(m, len(s), generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(n, len(s), generator=g, dtype=torch.float64))[0]
    mat = (u * torch.tensor(s, dtype=torch.float64)) @ v.T
    return shape.matrix_to_weight(mat).float(), u, v


def sv(conv: nn.Conv2d, decomposition: str) -> torch.Tensor:
    return torch.linalg.svdvals(KernelReshape(conv, decomposition).weight_to_matrix(conv.weight.detach().double()))


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
def test_trp_reshape_is_lowrank_conv2d_reshape(decomposition):
    conv = nn.Conv2d(3, 5, (3, 2), bias=False)
    ref = LowRankConv2d(conv, decomposition, init="svd")
    shape = KernelReshape(conv, decomposition)
    mat = shape.weight_to_matrix(conv.weight)
    assert torch.equal(mat, ref.weight_to_matrix(conv.weight))
    assert torch.equal(shape.matrix_to_weight(mat), conv.weight)
    assert shape.full_rank() == ref.full_rank


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
@pytest.mark.parametrize(("energy_train", "rank"), [(0.8, 2), (0.9, 3), (0.96, 3), (0.97, 4)])
def test_trp_truncation_keeps_the_rank_holding_the_energy(decomposition, energy_train, rank):
    # s^2 = 16, 9, 4, 1 (sum 30): 0.8 -> 25 >= 24 at rank 2; 0.9 -> 29 >= 27 at rank 3; 0.97 -> rank 4
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 6, 3))
    method = TRP.create(decomposition=decomposition, period=5, energy_kept=energy_train, skip_first=False)
    method.prepare(model, (1, 3, 8, 8))
    conv = model[1]
    w, _, _ = with_singular_values(KernelReshape(conv, decomposition), [4.0, 3.0, 2.0, 1.0])
    with torch.no_grad():
        conv.weight.copy_(w)
    for step, stage in [(3, "train"), (5, "finetune")]:  # not due: untouched
        method.after_step(model, step, stage)
        assert torch.equal(conv.weight, w)
    method.after_step(model, 10, "train")
    expect = torch.tensor([4.0, 3.0, 2.0, 1.0][:rank], dtype=torch.float64)
    s = sv(conv, decomposition)
    assert torch.allclose(s[:rank], expect, atol=1e-5) and torch.all(s[rank:] < 1e-5)
    assert method.ranks_train["1"] == rank and method.truncations == 1


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
def test_trp_adds_the_nuclear_subgradient(decomposition):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 6, 3))
    method = TRP.create(decomposition=decomposition, period=4, energy_kept=0.9, nuclear_weight=3e-4, skip_first=False)
    method.prepare(model, (1, 3, 8, 8))
    conv = model[1]
    shape = KernelReshape(conv, decomposition)
    w, u, v = with_singular_values(shape, [4.0, 3.0, 2.0, 1.0])
    with torch.no_grad():
        conv.weight.copy_(w)
    grad = torch.randn_like(w) * 1e-4  # small, so float32 resolves the 3e-4 * U_r V_r^T term exactly
    conv.weight.grad = grad.clone()
    method.after_backward(model, 2, "train")  # not due
    assert torch.equal(conv.weight.grad, grad)
    method.after_backward(model, 8, "train")
    sub = shape.matrix_to_weight(u[:, :3] @ v[:, :3].T).float()  # rank 3 holds 0.9 of the energy
    assert torch.allclose(conv.weight.grad - grad, 3e-4 * sub, atol=1e-9)
    assert torch.equal(conv.weight, w)  # the gradient hook leaves the weight alone


def test_trp_skipped_layers_are_untouched():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 6, 3))
    method = TRP.create(period=1, energy_kept=0.5, nuclear_weight=0.1, skip=["3"])
    method.prepare(model, (1, 3, 12, 12))
    assert method.layers == ["2"]  # first conv, the 1x1 conv and the skip pattern stay dense
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    method.after_backward(model, 0, "train")
    method.after_step(model, 0, "train")
    for name in ("0", "1", "3"):
        assert torch.equal(model.get_submodule(name).weight, before[f"{name}.weight"])
        assert torch.equal(model.get_submodule(name).weight.grad, torch.ones_like(before[f"{name}.weight"]))
    assert not torch.equal(model[2].weight, before["2.weight"])
    assert not torch.equal(model[2].weight.grad, torch.ones_like(model[2].weight))
    method.compress(model)
    assert set(svdbench.lowrank.ranks(model)) == {"2"} and isinstance(model[3], nn.Conv2d)
    assert method.ranks_after["2"] <= method.ranks_before["2"]
