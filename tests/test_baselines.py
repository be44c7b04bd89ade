"""Baselines (issue 3): TRP, post-hoc SVD, L1 / SFP / FPGM filter pruning.

Unit tests on constructed weights whose answer is known, then every method end to end on tiny
synthetic data (resnet8, 3x16x16), MACs checked three ways: fvcore, Torch-Pruning's counter and
the analytic per-layer formula.
"""

import json

import pytest
import torch
import torch_pruning as tp
from torch import nn

import svdbench
from svdbench.errors import InputError
from svdbench.lowrank import LowRankConv2d
from svdbench.macs import MacModel, analyze_macs, weight_macs
from svdbench.methods import Dense, FilterPruningConfig, FPGMPruning, L1FilterPruning, SoftFilterPruning
from svdbench.methods.svd_posthoc import PosthocSVD, PosthocSVDConfig
from svdbench.methods.trp import TRP, KernelReshape, TRPConfig
from svdbench.models import build_model
from svdbench.pipeline import run_experiment
from svdbench.pruning import ROUNDINGS, FilterPruner, ignored_names, kept_channels, ratio_for_speedup

SHAPE = (1, 3, 16, 16)
METHODS = ("trp", "svd_posthoc", "l1_filter", "sfp", "fpgm")


def resnet8() -> nn.Module:
    return build_model("cifar_resnet", "resnet8", 10, 3)


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


# ---------------------------------------------------------------------------------------------- TRP


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


# ------------------------------------------------------------------------------- filter pruning


def cifar_macs(c1: int, c2: int, c3: int, hw: int = 16, blocks: int = 1) -> int:
    """Analytic conv + linear MACs of a CIFAR ResNet (option A, ``blocks`` per stage, 3 x hw x hw
    input) whose blocks have internal widths c1, c2, c3: H*W*k*k*Cin*Cout per conv, + 64*10."""
    total, cin = hw * hw * 9 * 3 * 16, 16
    for i, (c, width) in enumerate(zip((c1, c2, c3), (16, 32, 64), strict=True)):
        h = hw >> i
        for _ in range(blocks):
            total += h * h * 9 * cin * c + h * h * 9 * c * width
            cin = width
    return total + 64 * 10


resnet8_macs = cifar_macs


def set_filters(conv: nn.Conv2d, rows: torch.Tensor) -> None:
    with torch.no_grad():
        conv.weight.copy_(rows.reshape_as(conv.weight))


def l1_vs_l2_filters(n: int, features: int) -> tuple[torch.Tensor, list[int], list[int]]:
    """Rows whose 4 lowest-L1 and 4 lowest-L2 filters are different known sets."""
    rows = torch.full((n, features), 1.0)
    spiky, flat = [1, 5, 9, 13], [2, 6, 10, 14]
    for i in spiky:  # L1 = 10 (lowest), L2 = 10
        rows[i] = 0.0
        rows[i, 0] = 10.0
    for i in flat:  # L1 = 0.5 * features (above 10), L2 = 0.5 * sqrt(features) (lowest)
        rows[i] = 0.5
    assert rows[spiky].abs().sum(1).max() < rows[flat].abs().sum(1).min()
    assert rows[flat].norm(dim=1).max() < rows[spiky].norm(dim=1).min()
    return rows, spiky, flat


@pytest.mark.parametrize(("cls", "which"), [(L1FilterPruning, "spiky"), (SoftFilterPruning, "flat")])
def test_lowest_norm_filters_are_removed(cls, which):
    model = resnet8()
    conv = model.layer1[0].conv1
    rows, spiky, flat = l1_vs_l2_filters(16, 16 * 9)
    set_filters(conv, rows)
    method = cls.create(ratio=0.25)
    method.prepare(model, SHAPE)
    method.compress(model)
    gone = spiky if which == "spiky" else flat
    kept = [i for i in range(16) if i not in gone]
    assert method.pruned["layer1.0.conv1"] == gone
    assert torch.equal(model.layer1[0].conv1.weight, rows[kept].reshape(12, 16, 3, 3))
    assert model.layer1[0].bn1.num_features == 12 and model.layer1[0].conv2.in_channels == 12
    widths = (kept_channels(16, 0.25), kept_channels(32, 0.25), kept_channels(64, 0.25))
    assert widths == (12, 24, 48)
    assert svdbench.count_macs(model, SHAPE) == resnet8_macs(*widths) == weight_macs(model, SHAPE)
    assert method.details()["channels_after"]["layer2.0.conv1"] == 24


def test_rounding_pruned_prunes_floor_c_times_ratio_as_the_authors_code():
    # the SFP/FPGM code zeroes int(C * rate) filters: at 0.4 of 16 that is 6 (10 kept); Torch-Pruning keeps floor(9.6)
    assert [kept_channels(c, 0.4, "pruned") for c in (16, 32, 64)] == [16 - 6, 32 - 12, 64 - 25]
    assert [kept_channels(c, 0.4) for c in (16, 32, 64)] == [9, 19, 38]
    assert [kept_channels(c, 0.25, r) for c in (16, 32) for r in ROUNDINGS] == [12, 12, 24, 24]  # whole: the same
    model = resnet8()
    method = SoftFilterPruning.create(ratio=0.4, rounding="pruned")
    method.prepare(model, SHAPE)
    method.compress(model)
    assert method.details()["channels_after"]["layer1.0.conv1"] == 10
    assert svdbench.count_macs(model, SHAPE) == weight_macs(model, SHAPE)
    with pytest.raises(ValueError, match="method.rounding"):
        SoftFilterPruning.create(ratio=0.4, rounding="up")


def test_fpgm_removes_the_filters_nearest_the_geometric_median():
    model = resnet8()
    conv = model.layer1[0].conv1
    f = 16 * 9
    centre = torch.full((f,), 20.0)
    rows = centre.repeat(16, 1)
    near = [0, 4, 11, 15]
    others = [i for i in range(16) if i not in near]
    for k, i in enumerate(others):  # centre +- 10 e_j: symmetric around the centre, the median
        rows[i, k // 2] += 10.0 if k % 2 == 0 else -10.0
    for k, i in enumerate(near):
        rows[i, 100 + k] += 0.1
    # norm-based criteria would pick the "centre - 10 e_j" filters instead
    assert set(rows.norm(dim=1).argsort()[:4].tolist()).isdisjoint(near)
    set_filters(conv, rows)
    method = FPGMPruning.create(ratio=0.25)
    method.prepare(model, SHAPE)
    method.compress(model)
    assert method.pruned["layer1.0.conv1"] == near
    assert torch.equal(model.layer1[0].conv1.weight, rows[others].reshape(12, 16, 3, 3))


@pytest.mark.parametrize("cls", [SoftFilterPruning, FPGMPruning])
def test_soft_pruning_zeroes_after_an_epoch_and_lets_filters_regrow(cls):
    torch.manual_seed(0)
    model = resnet8()
    method = cls.create(ratio=0.5)
    method.prepare(model, SHAPE)
    method.on_epoch_end(model, 0, "pretrain")  # other stages: nothing
    assert not method.masks
    method.on_epoch_end(model, 0, "train")
    assert set(method.masks) == {"layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1"}
    mask = method.masks["layer2.0.conv1"]
    assert int(mask.sum()) == 16
    w = model.layer2[0].conv1.weight
    assert torch.all(w[mask] == 0) and torch.all(w[~mask].abs().sum((1, 2, 3)) > 0)
    # A zeroed filter's channel leaves its BatchNorm as the shift beta, then ReLU: with beta = 0 (a
    # fresh network) ReLU'(0) = 0 blocks its gradient. After some training beta is not 0; a positive
    # one (as here) passes the gradient, a negative one leaves the revival to SGD's momentum.
    with torch.no_grad():
        for block in (model.layer1[0], model.layer2[0], model.layer3[0]):
            block.bn1.bias.uniform_(0.05, 0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = nn.functional.cross_entropy(model(torch.randn(8, 3, 16, 16)), torch.randint(0, 10, (8,)))
    loss.backward()
    assert torch.all(w.grad[mask].abs().sum((1, 2, 3)) > 0)  # the gradient still flows
    opt.step()
    assert torch.all(w[mask].abs().sum((1, 2, 3)) > 0)  # and they are non-zero again
    # compress removes the filters zeroed after the last epoch, not the lowest ones now
    kept = w.detach()[~mask].clone()
    state = method.state_dict()
    method.masks = {}
    method.load_state_dict(state)
    method.compress(model)
    assert method.pruned["layer2.0.conv1"] == mask.nonzero().flatten().tolist()
    assert torch.equal(model.layer2[0].conv1.weight, kept)


@pytest.mark.parametrize("mask_gradients", [True, False])
def test_fpgm_gradient_masking_keeps_the_selected_filters_zero(mask_gradients):
    """The authors' FPGM clears the selected filters' gradients at every step (method.mask_gradients):
    with plain SGD they stay exactly zero until the next selection; without it they regrow as SFP's."""
    torch.manual_seed(0)
    model = resnet8()
    method = FPGMPruning.create(ratio=0.5, mask_gradients=mask_gradients)
    method.prepare(model, SHAPE)
    method.on_epoch_end(model, 0, "train")
    with torch.no_grad():  # a positive BatchNorm shift lets the gradient reach the zeroed filters
        for block in (model.layer1[0], model.layer2[0], model.layer3[0]):
            block.bn1.bias.uniform_(0.05, 0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    w, mask = model.layer2[0].conv1.weight, method.masks["layer2.0.conv1"]
    for step in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 3, 16, 16)), torch.randint(0, 10, (8,))).backward()
        method.after_backward(model, step, "train")
        opt.step()
    assert bool(torch.all(w[mask] == 0)) is mask_gradients
    assert torch.all(w[~mask].abs().sum((1, 2, 3)) > 0)  # the kept filters train either way
    # fine-tuning (after removal) is never masked
    method.after_backward(model, 0, "finetune")


def test_sfp_zeroes_the_lowest_l2_filters():
    model = resnet8()
    rows, _, flat = l1_vs_l2_filters(16, 16 * 9)
    set_filters(model.layer1[0].conv1, rows)
    method = SoftFilterPruning.create(ratio=0.25)
    method.prepare(model, SHAPE)
    method.on_epoch_end(model, 0, "train")
    assert method.masks["layer1.0.conv1"].nonzero().flatten().tolist() == flat


def test_option_a_resnet_prunes_only_block_internal_channels():
    model = build_model("cifar_resnet", "resnet20", 10, 3)
    ignored = ignored_names(model)
    assert ignored[:2] == ["fc", "conv1"] and len(ignored) == 2 + 9
    assert all(n.endswith(".conv2") for n in ignored[2:])
    method = L1FilterPruning.create(ratio=0.5)
    method.prepare(model, (1, 3, 32, 32))
    assert sorted(method.groups) == sorted(f"layer{i}.{j}.conv1" for i in (1, 2, 3) for j in range(3))
    method.compress(model)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    for stage, width in ((model.layer1, 16), (model.layer2, 32), (model.layer3, 64)):
        for block in stage:  # the residual stream and the zero-padded shortcuts keep their widths
            assert block.conv2.out_channels == width and block.conv1.out_channels == width // 2
    # docs/pitfalls.md: ResNet-20 at ratio 0.5 goes from 40.55 M to 20.50 M conv + linear MACs
    assert cifar_macs(16, 32, 64, hw=32, blocks=3) == 40_550_400 + 640
    assert svdbench.count_macs(model, (1, 3, 32, 32)) == cifar_macs(8, 16, 32, hw=32, blocks=3) == 20_497_024


def test_torchvision_resnet_prunes_coupled_residual_channels():
    model = build_model("torchvision", "resnet18", 10, 3)
    shape = (1, 3, 32, 32)
    method = SoftFilterPruning.create(ratio=0.25)
    method.prepare(model, shape)
    count = MacModel(model, shape)
    assert ignored_names(model) == ["fc"]
    assert sorted(method.groups["conv1"]) == ["conv1", "layer1.0.conv2", "layer1.1.conv2"]
    method.on_epoch_end(model, 0, "train")
    mask = method.masks["conv1"]  # coupled filters are zeroed together
    for name in ("conv1", "layer1.0.conv2", "layer1.1.conv2"):
        assert torch.all(model.get_submodule(name).weight[mask] == 0)
    method.compress(model)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.conv1.out_channels == model.layer1[1].conv2.out_channels == 48
    assert model.layer4[0].downsample[0].out_channels == model.fc.in_features == 384
    assert svdbench.count_macs(model, shape) == weight_macs(model, shape) == count.macs()


def test_speedup_target_picks_the_smallest_ratio_that_reaches_it():
    model = resnet8()
    ratio, reached = ratio_for_speedup(model, SHAPE, 2.0)
    dense = resnet8_macs(16, 32, 64)
    widths = lambda r: [kept_channels(c, r) for c in (16, 32, 64)]  # noqa: E731
    assert dense / resnet8_macs(*widths(ratio)) == pytest.approx(reached) and reached >= 2.0
    assert dense / resnet8_macs(*widths(ratio - 0.01)) < 2.0
    method = L1FilterPruning.create(speedup=2.0)
    method.prepare(model, SHAPE)
    method.compress(model)
    assert method.ratio_used == ratio
    assert dense / svdbench.count_macs(model, SHAPE) == pytest.approx(reached)
    with pytest.raises(ValueError, match="method.speedup=50.0 is out of reach"):
        ratio_for_speedup(resnet8(), SHAPE, 50.0)


# ------------------------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    ("schema", "kw", "key"),
    [
        (TRPConfig, {"period": 0}, "method.period"),
        (TRPConfig, {"energy_kept": 0.0}, "method.energy_kept"),
        (TRPConfig, {"nuclear_weight": -1.0}, "method.nuclear_weight"),
        (TRPConfig, {"energy": 0.1, "threshold": 0.05}, "method.energy"),  # both targets set
        (TRPConfig, {"decomposition": "tucker"}, "method.decomposition"),
        (PosthocSVDConfig, {"energy": 1.0}, "method.energy"),
        (PosthocSVDConfig, {"finetune_epochs": -1}, "method.finetune_epochs"),
        (FilterPruningConfig, {"ratio": 0.3, "speedup": 2.0}, "method.ratio"),  # both targets set
        (FilterPruningConfig, {"ratio": 1.0}, "method.ratio"),
        (FilterPruningConfig, {"speedup": 1.0}, "method.speedup"),
    ],
)
def test_schemas_check_ranges_naming_the_key(schema, kw, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        schema(**kw)


def test_methods_compose_and_either_target_can_be_set_alone(compose_cfg, build):
    for name in METHODS:
        typed, method = build(compose_cfg([f"method={name}"]))
        assert method.name == name and typed.method.finetune_epochs == method.finetune_epochs == 3
    typed, method = build(compose_cfg(["method=sfp", "method.ratio=0.4"]))
    assert (typed.method.ratio, typed.method.speedup) == (0.4, None) == (method.config.ratio, method.config.speedup)
    typed, method = build(compose_cfg(["method=fpgm", "method.speedup=3"]))
    assert (method.config.ratio, method.config.speedup) == (None, 3.0)
    typed, method = build(compose_cfg(["method=trp", "method.energy=0.1"]))
    assert (method.config.energy, method.config.threshold) == (0.1, None)
    with pytest.raises(InputError, match="set exactly one"):
        build(compose_cfg(["method=l1_filter", "method.ratio=0.4", "method.speedup=3"]))


@pytest.mark.slow
def test_run_py_config_error_is_one_line(run_py, tmp_path):
    proc = run_py("method=trp", "method.period=-1", f"hydra.run.dir={tmp_path}", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["config error: method.period must be >= 1, got -1"]
    assert not list(tmp_path.rglob("results.json"))


# ------------------------------------------------------------------------------- end to end

REQUIRED = {
    "status", "config", "method", "model", "dataset", "seed", "top1", "macs", "macs_total", "params",
    "macs_dense", "params_dense", "speedup", "stage_top1", "ranks", "wall_time", "versions", "history",
    "method_details", "mac_counter",
}  # fmt: skip


def make(name: str):
    return {
        "trp": lambda: TRP.create(period=1, finetune_epochs=1),
        "svd_posthoc": lambda: PosthocSVD.create(energy=0.3, finetune_epochs=1),
        "l1_filter": lambda: L1FilterPruning.create(ratio=0.5, finetune_epochs=1),
        "sfp": lambda: SoftFilterPruning.create(speedup=1.5, finetune_epochs=1),
        "fpgm": lambda: FPGMPruning.create(ratio=0.3, finetune_epochs=1),
    }[name]()


def assert_counters_agree(deployed: nn.Module, input_shape) -> None:
    """fvcore and Torch-Pruning agree operator by operator. Torch-Pruning's hooks add the bias
    additions to conv/linear, count nn.ReLU and pooling *modules* (fvcore skips ReLU and max
    pooling) and miss functional calls (F.adaptive_avg_pool2d in the CIFAR ResNets)."""
    fv = analyze_macs(deployed, input_shape)
    ops, _, layer_ops, _ = tp.utils.count_ops_and_params(deployed, torch.zeros(input_shape), layer_wise=True)
    per = {"weights": 0, "bias": 0, "bn": 0, "pool": 0, "other": 0}
    bias = {}

    def count_bias(m, inp, out):
        bias[m] = out[0].numel() if m.bias is not None else 0

    hooks = [m.register_forward_hook(count_bias) for m in deployed.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        deployed.eval()(torch.zeros(input_shape))
    for h in hooks:
        h.remove()
    for m, n in layer_ops.items():
        if n is None or list(m.children()):
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            per["weights"] += int(n) - bias[m]
            per["bias"] += bias[m]
        elif isinstance(m, nn.BatchNorm2d):
            per["bn"] += int(n)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            per["pool"] += int(n)
        else:
            per["other"] += int(n)
    assert per["weights"] == fv.macs == weight_macs(deployed, input_shape)
    assert per["bn"] == fv.by_operator.get("batch_norm", 0)
    assert int(ops) == sum(per.values())
    if per["other"] == 0 and per["pool"] == 0:  # CIFAR ResNet: exact total relation
        assert int(ops) == fv.macs_total - fv.by_operator.get("adaptive_avg_pool2d", 0) + per["bias"]


@pytest.mark.slow
def test_fpgm_masks_gradients_in_a_run_from_the_second_train_epoch(tmp_path, tiny_cfg, monkeypatch):
    """The pipeline calls the hook: no selection before the first epoch's end, so masking starts in
    epoch 2 (4 steps of 32 images each epoch here) and never touches fine-tuning."""
    calls = []
    original = FilterPruner.zero_grad
    monkeypatch.setattr(FilterPruner, "zero_grad", staticmethod(lambda f: (calls.append(len(f)), original(f))))
    cfg = tiny_cfg(trainer={"epochs": 2}, save_model=False)
    res = run_experiment(cfg, FPGMPruning.create(ratio=0.5, mask_gradients=True, finetune_epochs=1), tmp_path)
    assert res["status"] == "completed" and res["config"]["method"]["mask_gradients"] is True
    assert len(calls) == 4 and all(n > 0 for n in calls)


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_end_to_end_writes_complete_results(name, tmp_path, tiny_cfg):
    method = make(name)
    res = run_experiment(tiny_cfg(), method, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["status"] == "completed" and REQUIRED <= saved.keys()
    assert saved["method"] == name and saved["method_details"]["finetune_epochs"] == 1
    assert {"pruned", "finetune"} <= saved["stage_top1"].keys()
    assert ("pretrain" in saved["wall_time"]) == (name in ("svd_posthoc", "l1_filter"))
    assert saved["speedup"] == pytest.approx(saved["macs_dense"] / saved["macs"])
    deployed = torch.load(tmp_path / "model.pt", weights_only=False)
    assert svdbench.count_macs(deployed, res["input_shape"]) == res["macs"]
    assert not svdbench.lowrank.lowrank_layers(deployed)
    assert_counters_agree(deployed, res["input_shape"])
    d = saved["method_details"]
    if name == "trp":
        assert d["truncations"] == 4 and d["period"] == 1 and "conv1" not in d["layers"]
        assert d["ranks_train"] and d["ranks_after"].keys() == d["ranks_before"].keys()
        assert saved["speedup"] > 1.0
    elif name == "svd_posthoc":
        assert all(d["ranks_after"][k] <= d["ranks_before"][k] for k in d["ranks_before"])
    else:
        c = d["channels_after"]
        assert c["layer1.0.conv2"] == 16 and c["layer1.0.conv1"] < 16
        assert saved["macs"] == resnet8_macs(c["layer1.0.conv1"], c["layer2.0.conv1"], c["layer3.0.conv1"])
        if name == "sfp":
            assert d["speedup"] == 1.5 and saved["speedup"] >= 1.5 and d["soft_epochs"] == 1
        else:
            assert c["layer3.0.conv1"] == kept_channels(64, d["ratio"])


@pytest.mark.slow
def test_baselines_start_from_a_dense_run(tmp_path, tiny_cfg):
    dense = run_experiment(tiny_cfg(), Dense(), tmp_path / "dense")
    for name in ("l1_filter", "trp"):
        res = run_experiment(tiny_cfg(init_from=str(tmp_path / "dense")), make(name), tmp_path / name)
        assert res["status"] == "completed" and res["init_from"] == str(tmp_path / "dense")
        assert "pretrain" not in res["wall_time"]
        assert res["stage_top1"]["dense"] == pytest.approx(dense["top1"])


@pytest.mark.slow
def test_run_py_composes_a_baseline(run_py, tmp_path):
    out = tmp_path / "run"
    args = ["method=fpgm", "method.ratio=0.25", "dataset=synthetic", "dataset.shape=[3,16,16]",
            "dataset.num_train=64", "dataset.num_test=32", "trainer.epochs=1", "trainer.batch_size=32",
            "trainer.progress=false", "trainer.bn_recalibration_batches=1", "method.finetune_epochs=1"]  # fmt: skip
    proc = run_py(*args, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "completed" and res["method"] == "fpgm"
    assert res["config"]["method"]["ratio"] == 0.25 and res["config"]["method"]["speedup"] is None
    assert "regularizer" not in res["config"]  # filter pruning takes no sparsity term and records none
    assert res["method_details"]["channels_after"]["layer3.0.conv1"] == 48


@pytest.mark.slow
def test_resume_replays_compress_from_the_trained_stage(tmp_path, tiny_cfg):
    # stage_train.pt holds the model and the method's masks; a rerun replays compress from them and
    # resumes the fine-tuning on the identically pruned network
    cfg = tiny_cfg(keep_checkpoints=True)
    first = run_experiment(cfg, make("sfp"), tmp_path)
    assert (tmp_path / "stage_train.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
    (tmp_path / "results.json").unlink()
    again = run_experiment(cfg, make("sfp"), tmp_path)
    assert again["top1"] == first["top1"] and again["macs"] == first["macs"]
    assert again["method_details"] == first["method_details"]
