"""The tiny configuration is one debug preset, conf/debug/tiny.yaml (``python run.py +debug=tiny``): the
overrides the tests and both refactoring guards pass are read from it and are the ones they passed
before it existed (transcribed here), they compose what ``+debug=tiny`` composes, and ``tiny_cfg``
builds the typed config it built before."""

import json

import pytest
from omegaconf import OmegaConf

from svdbench.config import Config, DatasetConfig, ModelConfig, TrainerConfig

#: the overrides of tests/conftest.py and benchmarks/tiny_guard.py before the preset (85b064f's TINY), in order
TINY_BEFORE = [
    "dataset=synthetic", "dataset.shape=[3,16,16]", "dataset.num_train=128", "dataset.num_test=64", "model=resnet8",
    "trainer.epochs=1", "trainer.batch_size=32", "trainer.progress=false", "trainer.bn_recalibration_batches=2",
    "method.finetune_epochs=1", "save_model=false", "measure.latency=false",
]  # fmt: skip
#: benchmarks/report_guard.py's variant before the preset: a validation split, models saved, no epochs
REPORT_BEFORE = [
    "dataset=synthetic", "dataset.shape=[3,16,16]", "dataset.num_train=128", "dataset.num_test=64",
    "dataset.val_size=32", "model=resnet8", "trainer.batch_size=32", "trainer.progress=false",
    "trainer.bn_recalibration_batches=2", "save_model=true", "measure.latency=false",
]  # fmt: skip


def test_the_tests_and_the_guards_pass_the_overrides_they_always_passed(tiny, root, monkeypatch):
    monkeypatch.syspath_prepend(str(root / "benchmarks"))  # the guards import each other as scripts do
    import report_guard
    import tiny_guard

    assert tiny() == tiny_guard.TINY == TINY_BEFORE
    assert report_guard.TINY == REPORT_BEFORE
    assert tiny("trainer.epochs", "save_model") == [o for o in TINY_BEFORE if not o.startswith(("trainer.ep", "save"))]


def resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


@pytest.mark.parametrize("method", ["svd", "dense", "trp", "fpgm"])
def test_the_preset_composes_what_its_overrides_compose(method, tiny, compose_cfg):
    assert resolved(compose_cfg(["+debug=tiny", f"method={method}"])) == resolved(
        compose_cfg([*tiny(), f"method={method}"])
    )


def test_a_value_on_the_command_line_wins_over_the_preset(compose_cfg):
    cfg = compose_cfg(["+debug=tiny", "trainer.epochs=3", "model=resnet20", "dataset.shape=[1,8,8]"])
    got = (cfg.trainer.epochs, cfg.model.name, list(cfg.dataset.shape), cfg.dataset.num_train)
    assert got == (3, "resnet20", [1, 8, 8], 128)


def test_tiny_cfg_is_the_typed_config_it_was(tiny_cfg):
    before = Config(
        model=ModelConfig(name="resnet8"),
        dataset=DatasetConfig(name="synthetic", shape=[3, 16, 16], num_train=128, num_test=64, download=False),
        trainer=TrainerConfig(epochs=1, batch_size=32, progress=False, device="cpu", bn_recalibration_batches=2),
    )
    assert tiny_cfg() == before
    changed = tiny_cfg(dataset={"val_size": 32}, trainer={"epochs": 2}, save_model=False)
    assert (changed.dataset.val_size, changed.trainer.epochs, changed.save_model) == (32, 2, False)


@pytest.mark.slow
def test_people_run_it_as_a_debug_preset(run_py, tmp_path):
    proc = run_py("+debug=tiny", "method=dense", f"hydra.run.dir={tmp_path}", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "completed" and len(res["history"]) == 2  # one training, one fine-tuning epoch
    assert res["config"]["dataset"]["shape"] == [3, 16, 16] and res["config"]["model"]["name"] == "resnet8"
