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
        method.before_forward(model, step, stage)
        assert torch.equal(conv.weight, w)
    method.before_forward(model, 10, "train")
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
    method.before_forward(model, 2, "train")  # not due
    conv.weight.grad = grad.clone()
    method.after_backward(model, 2, "train")
    assert torch.equal(conv.weight.grad, grad) and torch.equal(conv.weight, w)
    method.before_forward(model, 8, "train")  # due: truncates to rank 3 and keeps U_3 V_3^T of the weight before
    u3, v3 = u[:, :3], v[:, :3]
    assert torch.allclose(
        conv.weight.double(), shape.matrix_to_weight((u3 * torch.tensor([4.0, 3.0, 2.0])) @ v3.T), atol=1e-5
    )
    conv.weight.grad = grad.clone()
    method.after_backward(model, 8, "train")
    sub = shape.matrix_to_weight(u3 @ v3.T).float()  # rank 3 holds 0.9 of the energy
    assert torch.allclose(conv.weight.grad - grad, 3e-4 * sub, atol=1e-9)
    conv.weight.grad = grad.clone()
    method.after_backward(model, 9, "train")  # once per truncation
    assert torch.equal(conv.weight.grad, grad)


def back(mat, shape, kind):
    """The authors' reshape of an ``NC`` or ``VH`` matrix back to a (Cout, Cin, kh, kw) kernel."""
    co, ci, kh, kw = shape
    return mat.reshape(co, ci, kh, kw) if kind == "NC" else mat.reshape(ci, kh, co, kw).permute(2, 0, 1, 3)


def authors_trp_epoch(model, batches, look_up_table, period, nuclear_weight, opt, kind):
    """One epoch of the authors' TRP training loop (cifar-TRP.py's ``train`` with
    ``low_rank_approx(..., EnergyThreshold(0.9), use_trp=True, type=kind)``), transcribed: at every
    batch index (counted within the epoch) that is a multiple of ``period``, each listed conv's kernel,
    reshaped ``NC`` (Cout x Cin*kh*kw) or ``VH`` (Cin*kh x Cout*kw), is replaced by its truncation to the
    smallest rank whose leading s^2 sum to >= 0.9 of the total, and ``U_r V_r^T`` of that SVD is added,
    times ``nuclear_weight``, to the gradient of the same step, before the optimiser step."""
    for idx, (x, y) in enumerate(batches):
        subs = {}
        if idx % period == 0:
            for name in look_up_table:
                p = model.get_submodule(name).weight.data
                co, ci, kh, kw = p.shape
                mat = p.reshape(co, -1) if kind == "NC" else p.permute(1, 2, 0, 3).reshape(ci * kh, -1)
                n, sigma, c = torch.svd(mat.double(), some=True)
                energy = sigma**2
                valid = next(i + 1 for i in range(len(energy)) if energy[: i + 1].sum() / energy.sum() >= 0.9)
                n, sigma, c = n[:, :valid], sigma[:valid], c[:, :valid].t()
                trunc, sub = (n @ torch.diag(sigma)) @ c, n @ c
                p.copy_(back(trunc, p.shape, kind))
                subs[name] = back(sub, p.shape, kind).float()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        for name, sub in subs.items():
            model.get_submodule(name).weight.grad.add_(nuclear_weight * sub)
        opt.step()


@pytest.mark.parametrize(("decomposition", "kind"), [("channel", "NC"), ("spatial", "VH")])
def test_trp_training_matches_the_authors_update(decomposition, kind):
    """Two epochs of four batches, period 2, through svdbench's training loop and through the
    transcription of the authors' loop from the same weights: the same weights at the end."""
    from svdbench.optim import OptimConfig, make_optimizer
    from svdbench.train import StageOptions, train_stage

    def net():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(),
            nn.Conv2d(12, 10, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=False)
    sgd = dict(lr=0.05, momentum=0.9, weight_decay=1e-4)

    ours = net()
    method = TRP.create(decomposition=decomposition, period=2, energy_kept=0.9, nuclear_weight=0.05)
    ours = method.prepare(ours, (1, 3, 8, 8))
    assert method.layers == ["2", "4"]  # the authors' table: every conv but the first (and 1x1 ones)
    optim = OptimConfig("sgd", schedule="constant", **sgd)
    options = StageOptions(epochs=2, optim=optim, stage="train", progress=False, epoch_eval=())
    train_stage(ours, method, loader, loader, options)

    theirs = net()
    opt = make_optimizer(theirs, optim)  # svdbench's SGD (Nesterov, no decay of 1-D tensors): TRP's update is tested
    for _ in range(2):
        authors_trp_epoch(theirs, loader, ["2", "4"], 2, 0.05, opt, kind)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
    assert method.truncations == 4


def test_trp_skipped_layers_are_untouched():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 6, 3))
    method = TRP.create(period=1, energy_kept=0.5, nuclear_weight=0.1, skip=["3"])
    method.prepare(model, (1, 3, 12, 12))
    assert method.layers == ["2"]  # first conv, the 1x1 conv and the skip pattern stay dense
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    method.before_forward(model, 0, "train")
    method.after_backward(model, 0, "train")
    for name in ("0", "1", "3"):
        assert torch.equal(model.get_submodule(name).weight, before[f"{name}.weight"])
        assert torch.equal(model.get_submodule(name).weight.grad, torch.ones_like(before[f"{name}.weight"]))
    assert not torch.equal(model[2].weight, before["2.weight"])
    assert not torch.equal(model[2].weight.grad, torch.ones_like(model[2].weight))
    method.compress(model)
    assert set(svdbench.lowrank.ranks(model)) == {"2"} and isinstance(model[3], nn.Conv2d)
    assert method.ranks_after["2"] <= method.ranks_before["2"]
