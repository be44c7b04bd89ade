"""A model or dataset of one's own (``_target_``): its mistakes are one line before any file is written,
its record holds only the settings it reads, and a validation split it brings is not overridden in
silence. Also ``--cfg job``: it prints the config the run records, as it will run."""

import json
import textwrap

import pytest
import yaml

from svdbench import preflight
from svdbench.errors import InputError

USER_CODE = textwrap.dedent("""
    import torch
    from torch import nn
    from svdbench.data import TensorSplits

    def small(num_classes, in_channels, width=4):
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(width, num_classes))

    def own_val(cfg, seed):
        g = torch.Generator().manual_seed(seed)
        def draw(n):
            return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
        return TensorSplits(train=draw(96), val=draw(40), test=draw(32), num_classes=3, mean=(0.5,), std=(0.5,))

    def broken(cfg, seed):
        raise FileNotFoundError("no such file: /data/mine/train.bin")
""")
MINE = ["dataset.name=mine", "dataset._target_=usermod.own_val"]
FAST = ["trainer.epochs=1", "method=dense", "method.finetune_epochs=0", "trainer.progress=false",
        "measure.latency=false", "save_model=false"]  # fmt: skip


@pytest.fixture()
def user(tmp_path, monkeypatch):
    (tmp_path / "usermod.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return {"PYTHONPATH": str(tmp_path)}


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["model._target_=usermod.small", "model.name=small", "+model.kwargs.widht=8"],
         "config error: model.kwargs: usermod.small() got an unexpected keyword argument 'widht'"),
        (["model._target_=usermod_missing.small", "model.name=small"],
         "config error: model._target_: cannot import 'usermod_missing.small' (No module named 'usermod_missing')"),
        (["dataset.name=mine", "dataset._target_=usermod.nothing"],
         "config error: dataset._target_: cannot import 'usermod.nothing' (module 'usermod' has no attribute "
         "'nothing')"),
    ],
)  # fmt: skip
def test_a_mistake_in_own_code_is_one_line_and_writes_nothing(tmp_path, run_py, user, overrides, line):
    out = tmp_path / "run"
    proc = run_py(*overrides, f"hydra.run.dir={out}", env=user, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == line, proc.stderr[-2000:]
    assert not out.exists()  # neither .hydra/ nor run.log


@pytest.mark.slow
def test_a_failing_dataset_function_is_one_line_naming_no_result(tmp_path, run_py, user):
    out = tmp_path / "run"
    proc = run_py("dataset.name=mine", "dataset._target_=usermod.broken", *FAST, f"hydra.run.dir={out}", env=user)
    assert proc.returncode == 2, proc.stderr[-2000:]
    console = proc.stdout + proc.stderr
    errors = [ln for ln in console.splitlines() if "ERROR" in ln or "error" in ln]
    assert len(errors) == 1 and "dataset 'usermod.broken' failed: FileNotFoundError: no such file" in errors[0]
    assert "results.json" not in console and "Traceback" not in console and not (out / "results.json").exists()


def test_a_dataset_with_its_own_validation_split_refuses_val_size(tmp_path, compose_cfg, user):
    from svdbench.pipeline import run_experiment

    plan = preflight.plan(compose_cfg([*MINE, *FAST, "dataset.val_size=30"]))
    with pytest.raises(InputError, match="dataset.val_size=30, but dataset 'usermod.own_val' brings its own"):
        run_experiment(plan.cfg, plan.method, tmp_path / "a")
    plan = preflight.plan(compose_cfg([*MINE, *FAST]))
    res = run_experiment(plan.cfg, plan.method, tmp_path / "b")
    assert res["config"]["dataset"]["val_size"] == 0 and res["samples"]["val"] == 40  # none held out: its own


def test_val_size_zero_is_recorded_as_zero_and_matches_older_records(compose_cfg):
    from svdbench.checkpoint import resume_key

    config = preflight.plan(compose_cfg(["dataset.val_size=0"])).config
    assert config["dataset"]["val_size"] == 0
    older = json.loads(json.dumps(config))
    older["dataset"]["val_size"] = None  # as recorded before: null for none
    assert resume_key(older, "svd") == resume_key(config, "svd")
    assert resume_key(preflight.plan(compose_cfg([])).config, "svd") != resume_key(config, "svd")  # 5000 is not 0


def test_cfg_job_prints_what_runs_and_only_what_the_model_and_dataset_read(run_py, user):
    proc = run_py("--cfg", "job", "model._target_=usermod.small", "model.name=small", *MINE, env=user, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["model"] == {"name": "small", "_target_": "usermod.small"}
    assert not {"shape", "num_classes", "num_train", "num_test", "image_size"} & cfg["dataset"].keys()
    assert (cfg["method"]["energy"], cfg["method"]["init"]) == (3e-4, "random")  # resolved: what the run uses
    assert "regularizer" not in cfg and cfg["method"]["regularizer"] == {"kind": "hoyer", "weight": 0.05}
    default = yaml.safe_load(run_py("--cfg", "job", timeout=120).stdout)
    assert "shape" not in default["dataset"] and default["model"]["family"] == "cifar_resnet"


def test_a_yaml_syntax_error_in_an_own_config_names_file_line_and_column(tmp_path, run_py):
    conf = tmp_path / "conf" / "method"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("decomposition: [spatial\n")
    proc = run_py("--config-dir", str(tmp_path / "conf"), "method=mine", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and not (tmp_path / "run").exists()
    assert proc.stderr.strip() == (
        f"config error: {conf / 'mine.yaml'}, line 2, column 1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)"
    )
