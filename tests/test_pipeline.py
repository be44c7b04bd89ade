"""End to end: a tiny run writes a complete results.json; input errors write none."""

import json

import pytest
import torch

import svdbench
from svdbench.checkpoint import resume_key
from svdbench.config import DatasetConfig, ModelConfig
from svdbench.deployed import load_deployed
from svdbench.errors import InputError
from svdbench.methods import Dense, SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.plan import record_config
from svdbench.regularizers import SparsityRegularizer
from svdbench.report.load import configuration

REQUIRED = {
    "status", "config", "method", "model", "dataset", "seed", "top1", "macs", "macs_total", "params",
    "macs_dense", "params_dense", "speedup", "stage_top1", "ranks", "wall_time", "versions", "history",
}  # fmt: skip


def hoyer(weight=0.01):
    return SparsityRegularizer("hoyer", weight)


@pytest.mark.slow
def test_run_py_end_to_end_writes_complete_results(tmp_path, run_py, tiny):
    out = tmp_path / "run"
    proc = run_py(*tiny("save_model"), f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert REQUIRED <= res.keys()
    assert res["status"] == "completed" and res["method"] == "svd"
    assert set(res["versions"]) == {"python", "torch", "fvcore", "svdbench"}
    assert {"train", "pruned", "finetune"} <= res["stage_top1"].keys()
    assert {"train", "compress", "finetune", "measure", "total"} <= res["wall_time"].keys()
    assert res["config"]["method"]["regularizer"]["kind"] == "hoyer" and "regularizer" not in res["config"]
    full, after = res["ranks"]["full"], res["ranks"]["after"]
    assert full.keys() == after.keys() and all(after[k] <= full[k] for k in full)
    assert res["speedup"] == pytest.approx(res["macs_dense"] / res["macs"])
    # the saved deployed model is the one that was measured
    deployed = load_deployed(out)  # rebuilt from deployed.json and deployed.pt, nothing unpickled
    assert svdbench.count_macs(deployed, res["input_shape"]) == res["macs"]
    assert svdbench.count_params(deployed) == res["params"]
    assert not svdbench.lowrank.lowrank_layers(deployed)
    assert "results: " in proc.stderr + proc.stdout


@pytest.mark.slow
def test_pipeline_dense_then_svd_from_it(tmp_path, tiny_cfg):
    dense_dir = tmp_path / "dense"
    res = run_experiment(tiny_cfg(), Dense(), dense_dir)
    assert res["status"] == "completed" and res["speedup"] == 1.0 and res["macs"] == res["macs_dense"]
    assert (dense_dir / "dense.pt").is_file()
    sd = torch.load(dense_dir / "dense.pt", weights_only=True)
    method = SVDTraining.create(regularizer=hoyer(), init="svd", energy=0.3)
    svd = run_experiment(tiny_cfg(init_from=str(dense_dir)), method, tmp_path / "svd")
    assert svd["init_from"] == str(dense_dir) and "dense" in svd["stage_top1"]
    assert svd["stage_top1"]["dense"] == pytest.approx(res["top1"])
    assert sum(svd["ranks"]["after"].values()) < sum(svd["ranks"]["full"].values())
    assert sd  # a plain state_dict


@pytest.mark.slow
def test_energy_sweep_writes_one_result_per_energy(tmp_path, tiny_cfg):
    method = SVDTraining.create(regularizer=hoyer(), energy=0.05, energies=[0.1, 0.5])
    res = run_experiment(tiny_cfg(), method, tmp_path)
    entries = {p["label"]: p for p in res["operating_points"]}
    assert list(entries) == ["energy_0.1", "energy_0.5"]
    pts = {e["settings"]["method.energy"]: json.loads((tmp_path / label / "results.json").read_text())
           for label, e in entries.items()}  # fmt: skip
    assert set(pts) == {0.1, 0.5}
    assert pts[0.5]["macs"] <= pts[0.1]["macs"] <= res["macs"]
    for e, p in pts.items():
        assert p["status"] == "completed" and p["config"]["method"]["energy"] == e
        assert p["point_of"] == str(tmp_path) and entries[f"energy_{e:g}"]["macs"] == p["macs"]
        # every point starts from the same trained model
        assert p["stage_top1"]["train"] == res["stage_top1"]["train"]


@pytest.mark.slow
def test_input_errors_write_nothing(tmp_path, tiny_cfg):
    cfg = tiny_cfg(init_from=str(tmp_path / "missing"))
    with pytest.raises(InputError, match="no dense checkpoint"):
        run_experiment(cfg, Dense(), tmp_path / "a")
    cfg = tiny_cfg()
    cfg.dataset = DatasetConfig(name="fashion_mnist", root=str(tmp_path), download=False)
    with pytest.raises(InputError, match="Fashion-MNIST files not found"):
        run_experiment(cfg, Dense(), tmp_path / "b")
    cfg.dataset = DatasetConfig(name="cifar10", root=str(tmp_path), download=False)
    with pytest.raises(InputError, match="cifar10 not found"):
        run_experiment(cfg, Dense(), tmp_path / "b")
    cfg = tiny_cfg()
    cfg.model = ModelConfig(family="timm", name="no_such_model_xyz")
    with pytest.raises(InputError, match="is not a timm model"):
        run_experiment(cfg, Dense(), tmp_path / "c")
    assert not list(tmp_path.rglob("results.json"))


@pytest.mark.slow
def test_same_seed_same_result(tmp_path, tiny_cfg):
    a = run_experiment(tiny_cfg(), SVDTraining.create(regularizer=hoyer()), tmp_path / "a")
    b = run_experiment(tiny_cfg(), SVDTraining.create(regularizer=hoyer()), tmp_path / "b")
    assert a["top1"] == b["top1"] and a["macs"] == b["macs"] and a["history"] == b["history"]


@pytest.mark.slow
def test_finetune_stage_takes_its_own_lr_and_schedule(tmp_path, monkeypatch, tiny_cfg):
    """trainer.finetune_lr / finetune_schedule reach the fine-tuning stage only (Li et al. fine-tune
    at a constant small rate after a multistep training)."""
    import svdbench.stages as stages

    seen = {}
    real = stages.train_stage

    def spy(*args, **kw):
        seen[kw["options"].stage] = kw["options"].optim
        return real(*args, **kw)

    monkeypatch.setattr(stages, "train_stage", spy)
    cfg = tiny_cfg()
    cfg.trainer.schedule, cfg.trainer.lr = "multistep", 0.05
    cfg.trainer.finetune_schedule, cfg.trainer.finetune_lr = "constant", 0.001
    run_experiment(cfg, SVDTraining.create(regularizer=hoyer(), energy=0.3), tmp_path)
    assert (seen["train"].schedule, seen["train"].lr) == ("multistep", 0.05)
    assert (seen["finetune"].schedule, seen["finetune"].lr) == ("constant", 0.001)


def test_completed_run_recorded_before_a_new_optional_key_is_kept(tmp_path):
    """A key added later at its null default (here trainer.finetune_schedule) does not make a
    completed run directory look like another configuration; a set value does."""
    old = {"trainer": {"lr": 0.1, "progress": True}, "measure": {"latency": True}, "seed": 0}
    new = {"trainer": {"lr": 0.1, "progress": False, "finetune_schedule": None}, "measure": {}, "seed": 0}
    assert resume_key(old, "svd") == resume_key(new, "svd")
    new["trainer"]["finetune_schedule"] = "constant"
    assert resume_key(old, "svd") != resume_key(new, "svd")


def test_results_of_the_previous_layout_are_the_same_experiment(compose_cfg, build):
    """Completed runs recorded before the plug-in redesign (baselines.* targets, TRP's energy_train,
    a regularizer group recorded at the top level for every method, not inside SVD training's config,
    no model/dataset _target_ keys) still count as completed for the resume check and as the same
    configuration for the report."""
    for overrides, name in [(["method=trp", "method.energy_kept=0.95"], "trp"), (["method=dense"], "dense"),
                            (["method=l1_filter", "method.ratio=0.4"], "l1_filter"),
                            (["method=svd", "regularizer=l1", "regularizer.weight=0.2"], "svd")]:  # fmt: skip
        typed, method = build(compose_cfg(overrides))
        new = record_config(typed, method)
        old = {k: v for k, v in new.items()}
        old["model"] = {k: v for k, v in new["model"].items() if k not in ("_target_", "kwargs")}
        old["dataset"] = {k: v for k, v in new["dataset"].items() if k not in ("_target_", "kwargs")}
        reg = new["method"].get("regularizer", {"kind": "hoyer", "weight": 0.05})
        old["regularizer"] = {"_target_": "svdbench.regularizers.SparsityRegularizer", **reg}
        old["method"] = dict(new["method"], _target_=f"baselines.{name}.Old")
        old["method"].pop("regularizer", None)
        if name == "trp":
            old["method"]["energy_train"] = old["method"].pop("energy_kept")
        assert resume_key(old, name) == resume_key(new, name)
        assert configuration(old, name) == configuration(new, name)
