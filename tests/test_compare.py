"""The head-to-head presets (+experiment=compare_*): one dense start per seed, every method from it
with one budget, and a report when the sweep ends."""

import json
import logging
import os

import pytest
from conftest import tensors_digest
from omegaconf import OmegaConf, open_dict

from svdbench import preflight
from svdbench.sweep_report import ReportAtEnd

PRESETS = ("compare_cifar10_resnet20", "compare_cifar10_resnet56", "compare_imagenet_resnet50")
ARMS = ("svd_channel", "svd_spatial", "svd_posthoc", "trp", "l1_filter", "sfp", "fpgm")
METHOD = {"svd_channel": "svd", "svd_spatial": "svd", "svd_posthoc": "svd_posthoc"}


@pytest.mark.parametrize("preset", PRESETS)
def test_every_arm_starts_from_the_dense_model_of_its_seed_with_one_budget(preset, compose_cfg, build, tmp_path):
    dense_arm = "dense_imagenet" if "imagenet" in preset else "dense_cifar10"
    for split in ("train", "val"):  # where ImageNet's trees are looked for before any work
        (tmp_path / split).mkdir()
    composed = compose_cfg([f"+experiment={preset}", f"dataset.root={tmp_path}"], hydra=True)
    assert composed.hydra.sweeper.params.compare.split(",") == [dense_arm, *ARMS]  # the dense model first
    assert composed.hydra.callbacks.report._target_ == "svdbench.sweep_report.ReportAtEnd"
    budgets = set()
    for arm in (dense_arm, *ARMS):
        cfg = compose_cfg([f"+experiment={preset}", f"compare={arm}", "seed=3", f"dataset.root={tmp_path}"], hydra=True)
        assert cfg.hydra.sweep.dir == f"outputs/{preset}"
        subdir = cfg.hydra.sweep.subdir
        reads = preflight._hydra_reads(cfg)  # ${hydra:sweep.dir}, as preflight and the job resolve it
        with open_dict(cfg):
            for key, value in reads.items():
                OmegaConf.update(cfg, key, value, merge=False)
            del cfg["hydra"]
        typed, method = build(cfg)
        if arm == dense_arm:
            assert method.name == "dense" and typed.init_from is None and typed.trainer.budget is None
            assert subdir == "dense_seed3"
            continue
        assert method.name == METHOD.get(arm, arm) and subdir == f"{arm}_seed3"
        assert typed.init_from == os.path.abspath(f"outputs/{preset}/dense_seed3")  # the dense run of its seed
        budgets.add((typed.trainer.budget, typed.trainer.epochs, typed.trainer.lr, typed.trainer.batch_size))
        assert typed.trainer.finetune_lr is None  # fine-tuning at the stages' lr 0.01, as docs/experiments.md says
        if arm.startswith("svd_"):
            assert typed.method.decomposition == ("spatial" if arm == "svd_spatial" else "channel")
    assert len(budgets) == 1  # one budget and one optimiser for every compressing arm


def test_the_report_callback_names_its_command_and_never_fails_the_sweep(tmp_path, caplog):
    cb = ReportAtEnd(split=["method.decomposition"])
    assert cb.command("out/x") == ["report", "--out=out/x/report", "--split", "method.decomposition", "--", "out/x"]
    config = type("C", (), {"hydra": type("H", (), {"sweep": type("S", (), {"dir": str(tmp_path)})})})
    with caplog.at_level(logging.WARNING, logger="svdbench"):
        cb.on_multirun_end(config)  # nothing to report on: a warning, not an exception
    assert "the report could not be made (exit 1); make it with: svdbench report" in caplog.text


def test_every_sweep_ends_with_its_report_unless_turned_off(tmp_path, compose_cfg, caplog):
    report = compose_cfg(["seed=0"], hydra=True).hydra.callbacks.report
    assert report._target_ == "svdbench.sweep_report.ReportAtEnd" and report.enabled is True
    config = type("C", (), {"hydra": type("H", (), {"sweep": type("S", (), {"dir": str(tmp_path)})})})
    with caplog.at_level(logging.WARNING, logger="svdbench"):
        ReportAtEnd(enabled=False).on_multirun_end(config)
    assert caplog.text == "" and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_one_command_runs_every_arm_from_one_dense_start_and_ends_with_a_report(tmp_path, run_py):
    proc = run_py("-m", "+experiment=compare_cifar10_resnet56", "dataset=synthetic", "dataset.shape=[3,16,16]",
                  "dataset.num_train=160", "dataset.num_test=64", "dataset.val_size=32", "model=resnet20",
                  "model.block=basic", "trainer.epochs=1", "trainer.budget=1", "trainer.batch_size=32",
                  "trainer.bn_recalibration_batches=1", "measure.latency=false", "save_model=false",
                  "hydra.sweep.dir=mine", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "mine"  # the arms start from this sweep's dense job, wherever hydra.sweep.dir puts it
    digest = tensors_digest(out / "dense_seed0" / "dense.pt")
    for arm in ARMS:
        res = json.loads((out / f"{arm}_seed0" / "results.json").read_text())
        assert res["status"] == "completed" and res["method"] == METHOD.get(arm, arm)
        assert (res["dense_start"], res["epochs_after_start"]) == (digest, 1)
    report = (out / "report" / "report.md").read_text()
    assert "budget" not in proc.stderr and "dense start" not in proc.stderr  # no mixed-budget warning
    assert "svd (channel)" in report and "fpgm" in report


def test_the_report_callbacks_options_are_checked_and_one_key_is_a_key(tmp_path, tiny, capsys):
    assert ReportAtEnd(split="method.decomposition").split == ["method.decomposition"]
    with pytest.raises(SystemExit):
        preflight.preflight(["run.py", "-m", *tiny(), "seed=0,1", f"hydra.sweep.dir={tmp_path}",
                             "hydra.callbacks.report.enabled=off"])  # fmt: skip
    assert (
        capsys.readouterr().err.strip()
        == "config error: hydra.callbacks.report.enabled must be true or false, got 'off'"
    )


@pytest.mark.slow
def test_a_sweep_into_a_directory_named_like_an_option_ends_with_its_report(tmp_path, run_py, tiny):
    proc = run_py("-m", *tiny(), "method=dense", "seed=0", "hydra.sweep.dir=-sw", "+hydra.callbacks.report.out=-rep",
                  cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "-rep" / "report.md").is_file() and "could not be made" not in proc.stderr


def test_a_compare_preset_under_a_parallel_launcher_is_refused_before_any_job(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", "-m", "+experiment=compare_cifar10_resnet20", "dataset=synthetic",
                             "dataset.shape=[3,16,16]", "dataset.num_train=160", "dataset.num_test=64",
                             "dataset.val_size=32", "hydra/launcher=local_parallel",
                             f"hydra.sweep.dir={tmp_path}/c"])  # fmt: skip
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "job 1 (compare=svd_channel) starts from job 0's model" in err
    assert "run this sweep with the default launcher" in err and not (tmp_path / "c").exists()


def test_an_arm_listed_before_its_dense_job_is_refused_before_any_job(tmp_path, tiny, capsys):
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", "-m", "+experiment=compare_cifar10_resnet20", *tiny(),
                             f"hydra.sweep.dir={tmp_path}/c", "compare=l1_filter,dense_cifar10"])  # fmt: skip
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "job 0 (compare=l1_filter) starts from the model of job 1" in err
    assert "list the dense job first" in err and not (tmp_path / "c").exists()
