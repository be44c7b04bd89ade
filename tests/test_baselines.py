"""Every baseline (TRP, post-hoc SVD, L1-norm, SFP, FPGM): config checks that name the key, Hydra
composition, and every method end to end on tiny synthetic data (resnet8, 3x16x16) with MACs
checked three ways: fvcore, Torch-Pruning's counter and the analytic per-layer formula. The
methods' own unit tests: test_trp.py, test_filter_pruning.py, test_filter_criteria.py."""

import json

import pytest
import torch
import torch_pruning as tp
from baseline_nets import resnet8_macs
from torch import nn

import svdbench
from svdbench.deployed import load_deployed
from svdbench.errors import InputError
from svdbench.macs import analyze_macs, weight_macs
from svdbench.methods import (
    Dense,
    FilterPruningConfig,
    FPGMPruning,
    L1FilterPruning,
    SoftFilterPruning,
    method_target,
)
from svdbench.methods.svd_posthoc import PosthocSVD, PosthocSVDConfig
from svdbench.methods.trp import TRP, TRPConfig
from svdbench.pipeline import run_experiment
from svdbench.pruning import kept_channels

METHODS = ("trp", "svd_posthoc", "l1_filter", "sfp", "fpgm")

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
@pytest.mark.parametrize("name", METHODS)
def test_end_to_end_writes_complete_results(name, tmp_path, tiny_cfg):
    method = make(name)
    res = run_experiment(tiny_cfg(), method, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["status"] == "completed" and REQUIRED <= saved.keys()
    assert saved["method"] == name and saved["config"]["method"]["finetune_epochs"] == 1
    assert saved["config"]["method"]["_target_"] == method_target(type(method))  # supplied for a Python run too
    assert {"pruned", "finetune"} <= saved["stage_top1"].keys()
    assert ("pretrain" in saved["wall_time"]) == (name in ("svd_posthoc", "l1_filter"))
    assert saved["speedup"] == pytest.approx(saved["macs_dense"] / saved["macs"])
    deployed = load_deployed(tmp_path)
    assert svdbench.count_macs(deployed, res["input_shape"]) == res["macs"]
    assert not svdbench.lowrank.lowrank_layers(deployed)
    assert_counters_agree(deployed, res["input_shape"])
    d = saved["method_details"]
    if name == "trp":
        assert d["truncations"] == 4 and saved["config"]["method"]["period"] == 1 and "conv1" not in d["layers"]
        assert d["ranks_train"] and d["ranks_after"].keys() == d["ranks_before"].keys()
        assert saved["speedup"] > 1.0
    elif name == "svd_posthoc":
        assert all(d["ranks_after"][k] <= d["ranks_before"][k] for k in d["ranks_before"])
    else:
        c = d["channels_after"]
        assert c["layer1.0.conv2"] == 16 and c["layer1.0.conv1"] < 16
        assert saved["macs"] == resnet8_macs(c["layer1.0.conv1"], c["layer2.0.conv1"], c["layer3.0.conv1"])
        settings = saved["config"]["method"]
        if name == "sfp":
            assert settings["speedup"] == 1.5 and saved["speedup"] >= 1.5 and d["soft_epochs"] == 1
        else:
            assert c["layer3.0.conv1"] == kept_channels(64, settings["ratio"]) and d["ratio_used"] == settings["ratio"]


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
    assert res["config"]["method"]["_target_"] == "svdbench.methods.filter_pruning.FPGMPruning"
    assert res["config"]["method"]["ratio"] == 0.25 and res["config"]["method"]["speedup"] is None
    assert "regularizer" not in res["config"]  # filter pruning takes no sparsity term and records none
    assert res["method_details"]["channels_after"]["layer3.0.conv1"] == 48
