"""L1-norm, SFP and FPGM filter pruning: unit tests on constructed weights whose answer is known (which
filters each criterion removes, the counts, soft zeroing and regrowth, gradient masking, the
groups on option-A and torchvision ResNets, the speed-up search), the FPGM gradient mask in a run
and a resumed SFP run. MACs are checked against fvcore, svdbench.macs.weight_macs and the analytic
per-layer formula. The criterion registry and a plug-in of the family: test_filter_criteria.py."""

import json

import pytest
import torch
from baseline_nets import SHAPE, cifar_macs, resnet8, resnet8_macs
from torch import nn

import svdbench
from svdbench.macs import MacModel, weight_macs
from svdbench.methods import FPGMPruning, L1FilterPruning, SoftFilterPruning
from svdbench.models import build_model
from svdbench.pipeline import run_experiment
from svdbench.pruning import ROUNDINGS, FilterPruner, ignored_names, kept_channels, ratio_for_speedup


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
def test_resume_replays_compress_from_the_trained_stage(tmp_path, tiny_cfg):
    # stage_train.pt holds the model and the method's masks; a rerun replays compress from them and
    # resumes the fine-tuning on the identically pruned network
    cfg = tiny_cfg(keep_checkpoints=True)
    first = run_experiment(cfg, SoftFilterPruning.create(speedup=1.5, finetune_epochs=1), tmp_path)
    assert (tmp_path / "stage_train.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
    (tmp_path / "results.json").write_text(json.dumps({**first, "status": "running"}))  # killed after the last epoch
    again = run_experiment(cfg, SoftFilterPruning.create(speedup=1.5, finetune_epochs=1), tmp_path)
    assert again["top1"] == first["top1"] and again["macs"] == first["macs"]
    assert again["method_details"] == first["method_details"]
