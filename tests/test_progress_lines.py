"""The epoch lines a run logs: k/N, the time an epoch takes and when the stage ends."""

import logging

import pytest

from svdbench.methods import Dense, SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.stages import duration, pace
from svdbench.train import EARLY_STEPS


def test_durations_read_as_a_person_would_say_them():
    assert [duration(x) for x in (0.4, 42, 185, 7620)] == ["0 s", "42 s", "3 min 05 s", "2 h 07 min"]


def test_pace_from_the_epochs_done():
    assert pace(90.0, 3, 12) == "30 s/epoch, stage done in 4 min 30 s"  # 9 epochs of 30 s left
    assert pace(90.0, 12, 12) == "8 s/epoch, stage done"
    assert pace(90.0, 3, 12, later=3) == "30 s/epoch, stage done in 4 min 30 s, training done in about 6 min 00 s"


def test_a_run_logs_each_epoch_as_k_of_n(tmp_path, tiny_cfg, caplog):
    with caplog.at_level(logging.INFO, logger="svdbench"):
        run_experiment(tiny_cfg(trainer={"epochs": 2}), Dense(), tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert lines[0].startswith("train epoch 1/2: loss ") and "s/epoch, stage done in " in lines[0]
    assert lines[1].startswith("train epoch 2/2: ") and lines[1].endswith("s/epoch, stage done)")


def test_epoch_lines_say_when_the_runs_training_ends(tmp_path, tiny_cfg, caplog):
    with caplog.at_level(logging.INFO, logger="svdbench"):
        run_experiment(tiny_cfg(trainer={"epochs": 2}), SVDTraining.create(finetune_epochs=2), tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert "stage done in " in lines[0] and "training done in about " in lines[0]  # 1 + 2 epochs after it
    assert lines[1].endswith("stage done, training done in about " + lines[1].split("about ")[-1])
    assert lines[3].endswith("s/epoch, stage done)")  # the last epoch of the last stage


def test_a_run_says_what_it_will_do_before_its_first_step(tmp_path, tiny_cfg, caplog):
    with caplog.at_level(logging.INFO, logger="svdbench"):
        run_experiment(tiny_cfg(), SVDTraining.create(speedup=2.0, speedups=[1.5], finetune_epochs=1), tmp_path / "run")
    first = caplog.records[0].getMessage()
    assert first == (
        f"svd on resnet8/synthetic in {tmp_path / 'run'}: 128 train / 64 test images on cpu; dense 3.06 M MACs, "
        "75.3 k params; train 1 epoch, then compress (decomposition=channel, speedup=2.0), then finetune 1 epoch; "
        "then 1 operating point (speedup_1.5)"
    )


@pytest.mark.slow
def test_a_stage_says_how_long_it_will_take_after_its_first_steps(tmp_path, tiny_cfg, caplog):
    """After EARLY_STEPS training steps (long before a slow epoch ends): the time of an epoch and of the stage at
    that pace; once per stage, and not for a stage of fewer steps (its epoch line comes as soon)."""
    with caplog.at_level(logging.INFO, logger="svdbench"):
        run_experiment(tiny_cfg(trainer={"epochs": 2, "batch_size": 4}), SVDTraining.create(finetune_epochs=1),
                       tmp_path / "run")  # fmt: skip
    lines = [r.getMessage() for r in caplog.records]
    early = [ln for ln in lines if f"first {EARLY_STEPS} steps took" in ln]
    assert [ln.split(":")[0] for ln in early] == ["train", "finetune"]
    assert "an epoch of training (evaluation not counted), stage done in about " in early[0]
    assert "training done in about " in early[0] and "training done" not in early[1]
    assert lines.index(early[0]) < next(i for i, ln in enumerate(lines) if ln.startswith("train epoch 1/2"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="svdbench"):
        run_experiment(tiny_cfg(), SVDTraining.create(), tmp_path / "few")  # 4 steps an epoch
    assert not [r for r in caplog.records if "steps took" in r.getMessage()]
