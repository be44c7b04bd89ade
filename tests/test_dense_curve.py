"""benchmarks/dense_curve.py: the convergence figures docs/results.md states for the dense start."""

import json

import pytest

from benchmarks.dense_curve import convergence, curves, main


def test_convergence_figures_by_hand():
    values = [80.0, 85.0, 88.0, 88.5, 89.0, 89.1, 89.0]  # last 3: 89.0, 89.1, 89.0; the 3 before: 85.0, 88.0, 88.5
    steps, drift = convergence(values, 3)
    assert steps == pytest.approx(0.5)  # 88.5 -> 89.0, the step into the last three
    assert drift == pytest.approx((89.0 + 89.1 + 89.0) / 3 - (85.0 + 88.0 + 88.5) / 3)


def test_curves_read_validated_training_epochs_of_completed_runs(tmp_path, capsys):
    def run(name, status, vals):
        (tmp_path / name).mkdir()
        history = [{"stage": "train", "epoch": i + 1, "val_top1": v} for i, v in enumerate(vals)]
        history.append({"stage": "finetune", "epoch": 1, "val_top1": 1.0})
        (tmp_path / name / "results.json").write_text(json.dumps({"status": status, "history": history}))

    run("seed0", "completed", [70, 80, 85, 86, 87, 88, 88.1])
    run("seed1", "running", [70, 80])
    assert curves(tmp_path) == {"seed0": [70, 80, 85, 86, 87, 88, 88.1]}
    assert main([str(tmp_path)]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    # drift (87 + 88 + 88.1) / 3 - (80 + 85 + 86) / 3; standard error sqrt(0.881 * 0.119 / 5000)
    assert row.startswith("| seed0 | 7 | 86.00, 87.00, 88.00, 88.10 | 1.00 | +4.03 | 0.46 |")
