"""CIFAR ResNet variants (issue 14, faithful reproduction): ``model.shortcut=B`` (1x1 conv +
BatchNorm projections where the shape changes) and ``model.block=bottleneck``, the layout of the
official SVD-training code (yanghr/SVD_Prune_EDLCV, ``CNN/cifar10/origin_resnet.py`` and
``resnet.py``) and of the TRP code (yuhuixu1993/Trained-Rank-Pruning, ``models/cifar/resnet.py``).

The official architecture is restated below as a list of layers, written from the facts of that
file (not its code), and counted by formula, independently of :class:`CifarResNet`:

- stem: 3x3 conv, 3 -> 16, stride 1, no bias, BatchNorm;
- three stages of n = (depth - 2) / 6 blocks, stage widths 16, 32, 64, the first block of stages
  2 and 3 with stride 2; basic blocks below depth 44, bottleneck blocks from 44 on;
- basic block: 3x3 conv (stride) in -> w, BN, 3x3 conv w -> w, BN;
- bottleneck: 1x1 conv in -> w, BN, 3x3 conv (stride) w -> w, BN, 1x1 conv w -> 4w, BN;
- shortcut where the stride is not 1 or the channels change: 1x1 conv (stride) in -> out, no bias, BN;
- 8x8 average pool, then a linear layer (with bias) 64 * expansion -> classes.

Per conv: k*k*Cin*Cout parameters and k*k*Cin*Cout*H*W MACs (H x W its output); per BN 2*C
parameters; the linear layer Cin*Cout + Cout parameters and Cin*Cout MACs. On 3x32x32 with 10
classes this gives (conv + linear MACs):

- official ``ResNet(20)`` (basic blocks, option B): 272,474 parameters, 40,813,184 MACs;
- official ``ResNet(56)`` (bottlenecks, 9 per stage, option B): 869,530 parameters, 127,322,624 MACs.

(He et al.'s option-A ResNet-20, svdbench's default: 269,722 parameters, 40,551,040 MACs.)
"""

import math

import pytest
import torch
from torch import nn

import svdbench
from svdbench import preflight
from svdbench.config import ModelConfig
from svdbench.errors import InputError
from svdbench.methods.filter_pruning import FPGMPruning, L1FilterPruning, SoftFilterPruning, kept_channels, weight_macs
from svdbench.methods.trp import TRP
from svdbench.models import build_model, model_label
from svdbench.pipeline import run_experiment
from svdbench.results import comparable_config

SMALL = (1, 3, 16, 16)
CIFAR = (1, 3, 32, 32)
FILTER_METHODS = {"l1_filter": L1FilterPruning, "sfp": SoftFilterPruning, "fpgm": FPGMPruning}


# ------------------------------------------------------------------------ the official layout, by formula


def official_layers(
    depth: int, num_classes: int = 10, size: int = 32, ch=lambda c: c, bottleneck: bool | None = None
) -> list[tuple]:
    """The official CIFAR ResNet(depth) as ``("conv", k, cin, cout, stride, out_size)``, ``("bn", c)``
    and ``("fc", cin, cout)`` in module order (each block's shortcut after its convs). ``ch`` maps
    every nominal channel count but the input's, e.g. to the widths filter pruning keeps.
    ``bottleneck``: None for the official rule (from depth 44 on), or forced."""
    n = (depth - 2) // 6
    bottleneck = depth >= 44 if bottleneck is None else bottleneck
    expansion = 4 if bottleneck else 1
    layers = [("conv", 3, 3, ch(16), 1, size), ("bn", ch(16))]
    c = 16
    for stage, w in enumerate((16, 32, 64)):
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            out_size, out = size // stride, w * expansion
            if bottleneck:
                layers += [("conv", 1, ch(c), ch(w), 1, size), ("bn", ch(w)),
                           ("conv", 3, ch(w), ch(w), stride, out_size), ("bn", ch(w)),
                           ("conv", 1, ch(w), ch(out), 1, out_size), ("bn", ch(out))]  # fmt: skip
            else:
                layers += [("conv", 3, ch(c), ch(w), stride, out_size), ("bn", ch(w)),
                           ("conv", 3, ch(w), ch(w), 1, out_size), ("bn", ch(w))]  # fmt: skip
            if stride != 1 or c != out:
                layers += [("conv", 1, ch(c), ch(out), stride, out_size), ("bn", ch(out))]
            c, size = out, out_size
    return layers + [("fc", ch(c), num_classes)]


def official_counts(layers: list[tuple]) -> tuple[int, int]:
    """(parameters, conv + linear MACs) of a layer list."""
    params = macs = 0
    for kind, *a in layers:
        if kind == "conv":
            k, cin, cout, _, hw = a
            params += k * k * cin * cout
            macs += k * k * cin * cout * hw * hw
        elif kind == "bn":
            params += 2 * a[0]
        else:
            cin, cout = a
            params += cin * cout + cout
            macs += cin * cout
    return params, macs


def conv_list(model: nn.Module) -> list[tuple]:
    return [("conv", m.kernel_size[0], m.in_channels, m.out_channels, m.stride[0])
            for m in model.modules() if isinstance(m, nn.Conv2d)]  # fmt: skip


OFFICIAL = [  # (svdbench model, shortcut, block), official depth, parameters, MACs on 3x32x32
    (("resnet20", "B", "basic"), 20, 272_474, 40_813_184),
    (("resnet56", "B", "bottleneck"), 56, 869_530, 127_322_624),
]


@pytest.mark.parametrize("variant, depth, params, macs", OFFICIAL, ids=["resnet20-B", "resnet56-B-bottleneck"])
def test_variant_matches_the_official_resnet(variant, depth, params, macs):
    name, shortcut, block = variant
    layers = official_layers(depth)
    assert official_counts(layers) == (params, macs)
    model = build_model("cifar_resnet", name, 10, 3, shortcut=shortcut, block=block)
    assert conv_list(model) == [layer[:5] for layer in layers if layer[0] == "conv"]
    assert svdbench.count_params(model) == params
    assert weight_macs(model, CIFAR) == svdbench.count_macs(model, CIFAR) == macs
    assert model.fc.in_features == (256 if block == "bottleneck" else 64)


def test_default_is_still_he_et_al_option_a():
    model = build_model("cifar_resnet", "resnet20", 10, 3)
    assert not any("shortcut" in n for n, _ in model.named_parameters())
    assert svdbench.count_params(model) == 269_722 and weight_macs(model, CIFAR) == 40_551_040
    torch.manual_seed(0)
    a = build_model("cifar_resnet", "resnet20", 10, 3).state_dict()
    torch.manual_seed(0)
    b = svdbench.models.cifar_resnet(20, 10, 3, shortcut="A", block="basic").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fixed_output_channels_follow_the_shortcut():
    a = build_model("cifar_resnet", "resnet20", 10, 3)
    assert a.fixed_output_channels() == ["conv1", *(f"layer{i}.{j}.conv2" for i in (1, 2, 3) for j in range(3))]
    a_bottleneck = build_model("cifar_resnet", "resnet44", 10, 3, block="bottleneck")
    assert a_bottleneck.fixed_output_channels()[:2] == ["conv1", "layer1.0.conv3"]
    assert len(a_bottleneck.fixed_output_channels()) == 1 + 3 * 7
    assert a_bottleneck(torch.randn(2, *SMALL[1:])).shape == (2, 10)
    for block in ("basic", "bottleneck"):
        assert build_model("cifar_resnet", "resnet44", 10, 3, shortcut="B", block=block).fixed_output_channels() == []


# ------------------------------------------------------------------------------- methods on the variants

VARIANTS = [("resnet20", "B", "basic"), ("resnet44", "B", "bottleneck")]


def variant(name: str, shortcut: str, block: str) -> nn.Module:
    torch.manual_seed(0)
    return build_model("cifar_resnet", name, 10, 3, shortcut=shortcut, block=block)


def deployed_check(net: nn.Module, deployed: nn.Module, dense_macs: int) -> int:
    x = torch.randn(2, *SMALL[1:])
    net.eval(), deployed.eval()
    with torch.no_grad():
        assert deployed(x).shape == (2, 10)
        assert torch.allclose(deployed(x), net(x), atol=1e-4, rtol=1e-4)
    macs = weight_macs(deployed, SMALL)
    assert macs < dense_macs
    return macs


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
@pytest.mark.parametrize("spec", VARIANTS, ids=["resnet20-B", "resnet44-B-bottleneck"])
def test_decompose_prune_export(spec, decomposition):
    net = variant(*spec)
    dense = weight_macs(net, SMALL)
    svdbench.decompose(net, decomposition=decomposition, init="svd")
    assert any(n.endswith("shortcut.0") for n in svdbench.lowrank.ranks(net))  # the projections too
    svdbench.prune(net, energy=0.3)
    deployed_check(net, svdbench.export(net), dense)


@pytest.mark.parametrize("spec", VARIANTS, ids=["resnet20-B", "resnet44-B-bottleneck"])
def test_trp(spec):
    net = variant(*spec)
    dense = weight_macs(net, SMALL)
    method = TRP.create(period=1, energy_kept=0.5)
    method.prepare(net, SMALL)
    assert method.layers and all(net.get_submodule(n).kernel_size == (3, 3) for n in method.layers)
    x, y = torch.randn(4, *SMALL[1:]), torch.randint(0, 10, (4,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    method.before_forward(net, 0, "train")  # truncation at energy_kept 0.5, then one step from it
    loss = nn.functional.cross_entropy(net.train()(x), y)
    loss.backward()
    method.after_backward(net, 0, "train")
    opt.step()
    method.before_forward(net, 1, "train")  # truncated again: compress sees low-rank weights
    method.compress(net)
    deployed_check(net, method.export(net), dense)


@pytest.mark.parametrize("method_name", list(FILTER_METHODS))
@pytest.mark.parametrize("spec", VARIANTS, ids=["resnet20-B", "resnet44-B-bottleneck"])
def test_filter_pruning_prunes_every_conv(spec, method_name):
    """Option B: nothing is fixed, the residual stream (stem, projections, block outputs) shrinks
    with its coupled convs, and every conv keeps ``kept_channels(C, 0.4)`` of its C filters: the
    MACs are the official layout's with every width c -> floor(0.6 c)."""
    name, _, block = spec
    net = variant(*spec)
    dense = weight_macs(net, SMALL)
    method = FILTER_METHODS[method_name].create(ratio=0.4)
    method.prepare(net, SMALL)
    assert method.ignored == ["fc"]
    method.on_epoch_end(net, 0, "train")  # SFP / FPGM zero their filters here
    method.compress(net)
    macs = deployed_check(net, method.export(net), dense)
    depth = int(name.removeprefix("resnet"))
    pruned = official_layers(depth, size=16, ch=kept, bottleneck=block == "bottleneck")
    assert conv_list(net) == [layer[:5] for layer in pruned if layer[0] == "conv"]
    assert macs == official_counts(pruned)[1]


def kept(c: int) -> int:
    return kept_channels(c, 0.4)


@pytest.mark.slow
@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_sfp_ratio_04_on_resnet56_option_b(block):
    """SFP at ratio 0.4 on ResNet-56 with option-B shortcuts, 3x32x32 (the SFP paper reports a
    52.6 % FLOP reduction for ResNet-56): every width c -> floor(0.6 c), about 66 % fewer MACs."""
    net = variant("resnet56", "B", block)
    dense = svdbench.count_macs(net, CIFAR)
    method = SoftFilterPruning.create(ratio=0.4)
    method.prepare(net, CIFAR)
    method.on_epoch_end(net, 0, "train")
    method.compress(net)
    pruned = svdbench.count_macs(method.export(net), CIFAR)
    layout = dict(bottleneck=block == "bottleneck")
    assert dense == official_counts(official_layers(56, **layout))[1]
    assert pruned == official_counts(official_layers(56, ch=kept, **layout))[1]
    assert 0.65 < 1 - pruned / dense < 0.67


# ------------------------------------------------------------------------------------------- bad values

BAD = [
    ("model.shortcut=C", "model.shortcut must be A or B, got 'C'"),
    ("model.block=x", "model.block must be basic or bottleneck, got 'x'"),
    ("model.family=torchvision model.shortcut=B", "model.shortcut is an option of model.family=cifar_resnet only"),
    ("model=resnet18 model.block=bottleneck", "model.block is an option of model.family=cifar_resnet only"),
]


@pytest.mark.parametrize("args, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_value_is_one_line(args, fragment, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        preflight.preflight(["run.py", *args.split(), f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert exit_.value.code == 2 and len(lines) == 1, err
    assert lines[0].startswith("config error: ") and fragment in lines[0] and "Traceback" not in err, lines[0]
    assert not (tmp_path / "run").exists()


def test_good_variants_pass_preflight(tmp_path, capsys):
    preflight.preflight(["run.py", "model=resnet56", "model.shortcut=B", "model.block=bottleneck",
                   f"hydra.run.dir={tmp_path / 'run'}"])  # fmt: skip
    assert capsys.readouterr().err == ""


def test_build_model_refuses_options_a_family_does_not_take():
    with pytest.raises(InputError, match=r"^model.shortcut is an option of model.family=cifar_resnet only, got 'B'"):
        build_model("torchvision", "resnet18", 10, 3, shortcut="B")
    with pytest.raises(InputError, match=r"model.block is an option .* with model._target_"):
        build_model("cifar_resnet", "x", 10, 3, target="svdbench.models.cifar_resnet", block="bottleneck")
    with pytest.raises(ValueError, match="shortcut must be A or B"):
        svdbench.models.cifar_resnet(20, shortcut="C")


def test_default_options_compare_equal_to_a_config_recorded_before_them():
    old = {"model": {"family": "cifar_resnet", "name": "resnet56", "kwargs": {}}}
    new = {"model": {**old["model"], "shortcut": "A", "block": "basic"}}
    assert comparable_config(old, "svd") == comparable_config(new, "svd")
    b = {"model": {**new["model"], "shortcut": "B"}}
    assert comparable_config(b, "svd")["model"]["shortcut"] == "B"


def test_official_figures_by_hand():
    """ResNet-20 option B = option A + the two projections (16->32 at 16x16, 32->64 at 8x8) and their BN."""
    assert 272_474 == 269_722 + 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    assert 40_813_184 == 40_551_040 + 16 * 32 * 16 * 16 + 32 * 64 * 8 * 8
    assert math.isclose(official_counts(official_layers(56))[1] / 1e6, 127.32, abs_tol=0.01)


@pytest.mark.slow
def test_pipeline_builds_the_configured_variant(tiny_cfg, tmp_path):
    """``model.shortcut`` / ``model.block`` reach the model the pipeline trains and prunes."""
    cfg = tiny_cfg(dataset={"num_train": 64, "num_test": 32}, save_model=False)
    cfg.model, cfg.measure.latency = ModelConfig(name="resnet8", shortcut="B"), False
    res = run_experiment(cfg, SoftFilterPruning.create(ratio=0.4, finetune_epochs=1), tmp_path / "run")
    dense = build_model("cifar_resnet", "resnet8", 10, 3, shortcut="B")
    assert res["status"] == "completed" and res["config"]["model"]["shortcut"] == "B"
    assert res["model"] == "resnet8-B"  # the label shows the variant; at the defaults it is the name
    assert model_label("resnet56", shortcut="B", block="bottleneck") == "resnet56-B-bottleneck"
    assert model_label("resnet56", shortcut="A", block="basic") == model_label("resnet56") == "resnet56"
    assert res["params_dense"] == svdbench.count_params(dense)
    assert res["macs_dense"] == official_counts(official_layers(8, size=16))[1]
    assert res["macs"] == official_counts(official_layers(8, size=16, ch=kept))[1]
    assert res["method_details"]["ignored"] == ["fc"]
