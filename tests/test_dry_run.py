"""``run.py ... --plan``: the plan, an estimated time and the recorded config, nothing written."""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

import pytest
import yaml
from omegaconf import OmegaConf

from svdbench.dry_run import Launch, StepTimes, estimate_seconds, launch_of, stage_epochs
from svdbench.preflight import compose_config, plan


def test_the_estimate_is_the_formula():
    data = SimpleNamespace(train=range(10), test=range(3), val=range(2))
    times = StepTimes(train=0.5, eval=0.25, steps=3)
    assert estimate_seconds(4, data, times) == 4 * (10 * 0.5 + (3 + 2) * 0.25)
    assert estimate_seconds(4, SimpleNamespace(train=range(10), test=range(3), val=None), times) == 4 * (5 + 0.75)


def test_every_epoch_is_counted_with_each_operating_points_finetuning(tiny):
    run = plan(compose_config([*tiny("trainer.epochs", "method"), "trainer.epochs=5", "method=svd",
                               "method.finetune_epochs=2", "method.energies=[0.1,0.2]"]))  # fmt: skip
    assert stage_epochs(run, points=2) == 5 + 3 * 2
    warm = plan(compose_config([*tiny(), "method=l1_filter", "init_from=somewhere"]))
    assert stage_epochs(warm) == warm.method.finetune_epochs  # no pre-training from a start


def test_plan_prints_what_the_run_records_and_writes_nothing(tmp_path, run_py, tiny):
    run = tmp_path / "run"
    args = [*tiny(), "method=svd", "method.speedup=1.2", f"hydra.run.dir={run}"]
    shown = run_py(*args, "--plan")
    assert shown.returncode == 0, shown.stderr
    assert not run.exists()  # nothing written, not even Hydra's folder
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"svd on resnet8/synthetic in {run}: 128 train / 64 test images on cpu")
    assert "train 1 epoch, then compress (decomposition=channel, speedup=1.2), then finetune 1 epoch" in lines[0]
    assert re.match(r"time: about \d+ s on cpu \(estimated from \d+ dense training steps", lines[1])
    assert lines[-1] == "# a plan only: nothing was run or written (drop --plan to run it)"
    printed = yaml.safe_load("\n".join(lines[3:-1]))
    done = run_py(*args)
    assert done.returncode == 0, done.stderr
    assert printed == json.loads((run / "results.json").read_text())["config"]


def test_plan_of_a_sweep_lists_every_job_and_the_total(tmp_path, run_py, tiny):
    shown = run_py("-m", *tiny(), "method=dense", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}", "--plan")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith(f"sweep of 2 jobs into {tmp_path / 'sweep'}, one after another:\n  job 0 (seed=0): dense")
    assert "\n  job 1 (seed=1): dense" in out and "\nin all: about " in out
    assert not (tmp_path / "sweep").exists()


def test_plan_refuses_what_the_run_would_refuse(tmp_path, run_py, tiny):
    shown = run_py(*tiny(), "method=svd", "method.speedup=0.5", f"hydra.run.dir={tmp_path / 'run'}", "--plan")
    assert shown.returncode == 2 and "speedup" in shown.stderr and shown.stderr.count("\n") == 1


def test_plan_of_a_sampling_sweep_gives_its_count_and_scales_the_total(tmp_path, run_py, tiny):
    shown = run_py("-m", *tiny(), "+sweep=optuna_pareto", "hydra.sweeper.n_trials=100",
                   f"hydra.sweep.dir={tmp_path / 'sw'}", "--plan")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"sweep of 100 jobs into {tmp_path / 'sw'}, one after another; shown: 4 of them, a sample:" in shown.stdout
    assert "(the sample's mean times 100)" in shown.stdout


def test_plan_says_what_it_would_replace(tmp_path, run_py, tiny):
    run = tmp_path / "run"
    assert run_py(*tiny(), "method=dense", f"hydra.run.dir={run}").returncode == 0
    shown = run_py(*tiny(), "method=trp", "resume=false", f"hydra.run.dir={run}", "--plan")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"replaces the dense run (completed) in {run}: its results, checkpoints")


@pytest.mark.parametrize(
    "launcher, at_once",
    [
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 1),
        ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 3}, 3),
        ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}, 8),
        ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -3}, 6),
        ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": None}, 8),
        ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}, None),
    ],
)
def test_the_plan_knows_how_many_jobs_the_launcher_runs_at_once(launcher, at_once, monkeypatch):
    """--plan said 'one after another' and summed the jobs' times for joblib's parallel launcher too."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)  # joblib's rule: -k is every core but k - 1
    assert launch_of(OmegaConf.create(launcher)).at_once == at_once


def test_a_parallel_sweeps_total_is_job_time_and_rounds_of_jobs():
    """5 jobs of 60 s on average, 2 at a time: 300 s of job time, 3 rounds of 60 s (ceil(5 / 2) = 3)."""
    assert Launch(1).total(300, 5) == "about 5 min 00 s"
    assert Launch(2).phrase() == "up to 2 at a time on this machine"
    assert Launch(2).total(300, 5).startswith("about 5 min 00 s of job time; 2 at a time, about 3 min 00 s ")
    assert Launch(8).total(300, 5).startswith("about 5 min 00 s of job time; 5 at a time, about 1 min 00 s ")
    assert "scheduler" in Launch(None).phrase() and "scheduler" in Launch(None).total(300, 5)


def test_plan_of_a_parallel_sweep_says_so(tmp_path, run_py, tiny):
    shown = run_py("-m", *tiny(), "method=dense", "seed=0,1,2", "hydra/launcher=local_parallel",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", "--plan")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"sweep of 3 jobs into {tmp_path / 'sweep'}, up to 2 at a time on this machine:")
    assert "of job time; 2 at a time, about " in shown.stdout and not (tmp_path / "sweep").exists()
