"""The deployed model stored as data (svdbench.deployed): rebuilt exactly for every method, never by
unpickling code; ``svdbench latency`` times the rebuilt model, loads an older pickled ``model.pt`` only
with ``--trust`` and leaves a run another process holds alone."""

import copy
import json
import os
import pickle
import re

import pytest
import torch
from torch import nn

import svdbench
from svdbench import cli
from svdbench.deployed import (
    ARCHITECTURE_FILE,
    LEGACY_FILE,
    WEIGHTS_FILE,
    TrustRequired,
    apply_records,
    describe,
    document,
    load_deployed,
    rebuild,
)
from svdbench.macs import analyze_macs, count_params
from svdbench.methods import TRP, Dense, L1FilterPruning, PosthocSVD, SVDTraining
from svdbench.methods.filter_pruning import FPGMPruning, SoftFilterPruning
from svdbench.models import build_model
from svdbench.pipeline import run_experiment
from svdbench.regularizers import SparsityRegularizer
from svdbench.rundir import LOCK, RunLock
from svdbench.stages import StageRunner

SHAPE = (1, 3, 16, 16)
RESNET8 = {"family": "cifar_resnet", "name": "resnet8"}


def resnet8() -> nn.Module:
    return build_model("cifar_resnet", "resnet8", 10, 3)


def low_rank(decomposition: str, linear: bool = False, merge: bool = True) -> nn.Module:
    net = svdbench.decompose(resnet8(), decomposition, init="svd", linear=linear)
    svdbench.prune(net, energy=0.3)
    return svdbench.export(net, merge_unprofitable=merge)


def filter_pruned() -> nn.Module:
    net, method = resnet8(), L1FilterPruning.create(ratio=0.5)
    method.prepare(net, SHAPE)
    method.compress(net)
    return method.export(net)


def assert_same_model(rebuilt: nn.Module, deployed: nn.Module) -> None:
    rebuilt.eval(), deployed.eval()
    x = torch.randn(4, *SHAPE[1:])
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), deployed(x), atol=1e-6, rtol=0)
    assert analyze_macs(rebuilt, SHAPE).as_dict() == analyze_macs(deployed, SHAPE).as_dict()
    assert count_params(rebuilt) == count_params(deployed)


BOTTLENECK = {**RESNET8, "name": "resnet20", "shortcut": "B", "block": "bottleneck"}


def bottleneck() -> nn.Module:
    return build_model("cifar_resnet", "resnet20", 10, 3, shortcut="B", block="bottleneck")


def pruned_bottleneck() -> nn.Module:
    net, method = bottleneck(), L1FilterPruning.create(ratio=0.4)
    method.prepare(net, SHAPE)
    method.compress(net)
    return net


@pytest.mark.parametrize(
    "make, config",
    [
        (lambda: low_rank("channel"), RESNET8),
        (lambda: low_rank("spatial", linear=True, merge=False), RESNET8),
        (filter_pruned, RESNET8),
        (resnet8, RESNET8),
        (pruned_bottleneck, BOTTLENECK),
    ],
    ids=["channel", "spatial-linear", "l1_filter", "dense", "bottleneck-B-pruned"],
)
def test_records_rebuild_the_deployed_model_through_json(make, config):
    deployed = make().eval()
    dense = build_model(
        "cifar_resnet", config["name"], 10, 3, **{k: config[k] for k in ("shortcut", "block") if k in config}
    )
    doc = json.loads(json.dumps(document(deployed, dense, config, 10, 3)))  # through the file format
    assert_same_model(rebuild(doc, deployed.state_dict()), deployed)
    assert (doc["modules"] == []) == (make is resnet8)


def test_low_rank_and_filter_pruned_records():
    spatial = describe(low_rank("spatial"), resnet8())
    first = {r["name"]: r for r in spatial}
    assert first["conv1"] == {"name": "conv1", "kind": "Sequential", "args": {"children": ["0", "1"]}}
    assert first["conv1.0"]["args"]["kernel_size"] == [3, 1] and first["conv1.1"]["args"]["kernel_size"] == [1, 3]
    pruned = {r["name"]: r for r in describe(filter_pruned(), resnet8())}
    assert pruned["layer1.0.conv1"]["kind"] == "Conv2d" and pruned["layer1.0.bn1"]["kind"] == "BatchNorm2d"
    assert pruned["layer1.0.conv1"]["args"]["out_channels"] == pruned["layer1.0.bn1"]["args"]["num_features"] < 16
    conv2 = pruned["layer1.0.conv2"]["args"]  # its input narrowed; its output (option A's residual stream) kept
    assert (conv2["in_channels"], conv2["out_channels"]) == (pruned["layer1.0.conv1"]["args"]["out_channels"], 16)
    assert "layer1.0.bn2" not in pruned and "fc" not in pruned
    assert all(r["kind"] != "Sequential" for r in pruned.values())


def test_a_module_of_another_kind_is_refused_in_one_line():
    deployed = resnet8()
    deployed.layer1[0].conv1 = svdbench.lowrank.LowRankConv2d(deployed.layer1[0].conv1)
    with pytest.raises(ValueError, match=r"^cannot store module 'layer1.0.conv1' of type LowRankConv2d as data$"):
        describe(deployed, resnet8())
    removed = resnet8()
    del removed.layer1[0].shortcut
    with pytest.raises(ValueError, match="beyond what records express"):
        describe(removed, resnet8())


def test_forged_records_are_refused_before_any_allocation():
    big = {"name": "fc", "kind": "Linear", "args": {"in_features": 10**9, "out_features": 10**9, "bias": True}}
    model = apply_records(resnet8(), [big], device="meta")  # nothing allocated
    assert model.fc.weight.is_meta
    doc = document(resnet8(), resnet8(), RESNET8, 10, 3)
    state = resnet8().state_dict()
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        rebuild({**doc, "modules": [big]}, state)
    for bad, message in [
        ({"name": "fc", "kind": "Eval", "args": {}}, "choose the kind from Conv2d"),
        ({"name": "fc", "kind": "Linear", "args": {"in_features": 1}}, "needs the arguments in_features"),
        ({"name": "nowhere.fc", "kind": "Linear", "args": big["args"]}, "has no module 'nowhere'"),
        ({"name": "depth", "kind": "Linear", "args": big["args"]}, "'depth' is an attribute of CifarResNet"),
        ({"name": "fc", "kind": "Sequential", "args": {"children": "os.system"}}, "list of names"),
    ]:
        with pytest.raises(ValueError, match=message):
            rebuild({**doc, "modules": [bad]}, state)


def test_a_model_named_by_target_needs_trust(tmp_path):
    deployed = resnet8()
    doc = {**document(deployed, resnet8(), RESNET8, 10, 3), "model": {"_target_": "svdbench.models.cifar_resnet",
                                                                       "kwargs": {"depth": 8}}}  # fmt: skip
    with pytest.raises(TrustRequired, match=r"model._target_ 'svdbench.models.cifar_resnet' names code.*--trust"):
        rebuild(doc, deployed.state_dict())
    assert_same_model(rebuild(doc, deployed.state_dict(), trust=True), deployed)


# ---------------------------------------------------------------------- svdbench latency


def fake_run(run_dir, **extra) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    res = {"status": "completed", "method": "dense", "model": "resnet8", "dataset": "synthetic", "seed": 0,
           "config": {"model": RESNET8}, "top1": 10.0, "macs": 100, "macs_dense": 100, "params": 10,
           "params_dense": 10, "input_shape": list(SHAPE), "speedup": 1.0, **extra}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(res))


class Marker:
    """Unpickling it creates a file: what a crafted model.pt could do instead."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


LATENCY = ["--batch-sizes", "2", "--max-seconds", "0.02", "--threads", "1"]


def test_a_crafted_pickle_is_never_loaded_without_trust(tmp_path, capsys):
    run, marker = tmp_path / "shared" / "run", tmp_path / "marker"
    fake_run(run)
    torch.save(Marker(marker), run / LEGACY_FILE)
    assert cli.main(["latency", str(tmp_path / "shared"), *LATENCY]) == 1
    out = capsys.readouterr().out
    assert not marker.exists()
    assert "skipped: model.pt is a pickled module" in out and "--trust to load it, only for files you made" in out
    with pytest.raises(TrustRequired):
        load_deployed(run)
    assert cli.main(["latency", str(run), *LATENCY, "--trust"]) == 1  # loaded (it is no model): the marker appears
    assert marker.exists()


def test_latency_rebuilds_from_data_and_an_old_model_pt_with_trust(tmp_path, capsys):
    deployed = filter_pruned().eval()
    new, old = tmp_path / "new", tmp_path / "old"
    fake_run(new)
    torch.save(deployed.state_dict(), new / WEIGHTS_FILE)
    (new / ARCHITECTURE_FILE).write_text(json.dumps(document(deployed, resnet8(), RESNET8, 10, 3)))
    fake_run(old)
    torch.save(deployed, old / LEGACY_FILE)
    assert cli.main(["latency", str(new), *LATENCY]) == 0
    assert re.search(r"pytorch-eager/cpu: \d+\.\d\dx at batch 2", capsys.readouterr().out)
    assert "runs" in json.loads((new / "results.json").read_text())["latency"]
    assert cli.main(["latency", str(old), *LATENCY, "--trust"]) == 0
    assert_same_model(load_deployed(old, trust=True), deployed)
    assert not (new / LOCK).exists() and not (old / LOCK).exists()


def test_latency_skips_a_run_whose_lock_is_held(tmp_path, capsys):
    fake_run(tmp_path / "run")
    with RunLock(tmp_path / "run"):
        assert cli.main(["latency", str(tmp_path / "run"), *LATENCY]) == 0
    got = capsys.readouterr()
    assert f"skipped (in use by another svdbench process, pid {os.getpid()}:" in got.out
    assert got.err == ""  # the training run's refusal ("use another run directory") is not latency's
    assert "latency" not in json.loads((tmp_path / "run" / "results.json").read_text())


# ---------------------------------------------------------------------- every built-in method, end to end

HOYER = SparsityRegularizer("hoyer", 0.01)
METHODS = {
    "svd_channel": lambda: SVDTraining.create(
        regularizer=HOYER, decomposition="channel", energy=0.3, finetune_epochs=1
    ),
    "svd_spatial": lambda: SVDTraining.create(
        regularizer=HOYER, decomposition="spatial", energy=0.3, finetune_epochs=1
    ),
    "svd_posthoc": lambda: PosthocSVD.create(finetune_epochs=1),
    "trp": lambda: TRP.create(finetune_epochs=1),
    "l1_filter": lambda: L1FilterPruning.create(finetune_epochs=1),
    "sfp": lambda: SoftFilterPruning.create(ratio=0.3, finetune_epochs=1),
    "fpgm": lambda: FPGMPruning.create(finetune_epochs=1),
    "dense": lambda: Dense.create(finetune_epochs=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_every_method_saves_a_model_rebuilt_exactly(name, tmp_path, tiny_cfg, monkeypatch):
    kept = {}
    save = StageRunner.save

    def keep(self, leg, deployed):
        kept["model"] = copy.deepcopy(deployed)
        save(self, leg, deployed)

    monkeypatch.setattr(StageRunner, "save", keep)
    method = METHODS[name]()
    res = run_experiment(tiny_cfg(save_model=True), method, tmp_path)
    assert res["model_path"] == str(tmp_path / ARCHITECTURE_FILE) and not (tmp_path / LEGACY_FILE).exists()
    rebuilt = load_deployed(tmp_path)
    assert_same_model(rebuilt, kept["model"])
    assert analyze_macs(rebuilt, SHAPE).macs == res["macs"] and count_params(rebuilt) == res["params"]
    assert not svdbench.lowrank.lowrank_layers(rebuilt)


def test_a_raw_pickle_as_deployed_pt_is_one_line_without_torchs_warning(tmp_path, capsys, recwarn):
    run = tmp_path / "run"
    fake_run(run)
    deployed = filter_pruned().eval()
    (run / ARCHITECTURE_FILE).write_text(json.dumps(document(deployed, resnet8(), RESNET8, 10, 3)))
    (run / WEIGHTS_FILE).write_bytes(pickle.dumps({"a": 1}, protocol=4))  # not torch.save's zip archive
    assert cli.main(["latency", str(run), *LATENCY, "--force"]) == 1
    out = capsys.readouterr()
    assert "not timed: " in out.out and "not a torch file" in out.out
    assert not [w for w in recwarn if "weights_only" in str(w.message) or "pickle" in str(w.message)]
