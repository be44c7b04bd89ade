"""The GPU check (benchmarks/gpu_check.sh) runs on the CPU in its dry-run mode, and the CUDA paths it
times are tested directly where a CUDA device exists (marked ``cuda``: skipped elsewhere)."""

import math
import subprocess

import pytest
import torch

from svdbench.methods import SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.regularizers import SparsityRegularizer


@pytest.mark.slow
def test_dry_run_passes_every_check(root, env):
    proc = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh"), "--dry-run"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for check in ("amp_bf16", "amp_fp16_gradscaler", "channels_last", "compile", "latency", "epoch_resnet20", "ddp"):
        assert f"{check}" in proc.stdout
    assert "failed" not in proc.stdout


def test_without_a_gpu_the_real_check_refuses_in_one_line(root, env):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip() == "error: no CUDA device (use --dry-run for the CPU version)"


@pytest.mark.cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_on_cuda_stays_finite(amp, tmp_path, tiny_cfg):
    cfg = tiny_cfg(trainer={"device": "cuda", "amp": amp}, save_model=False)
    res = run_experiment(
        cfg, SVDTraining.create(regularizer=SparsityRegularizer("hoyer", 0.05), finetune_epochs=1), tmp_path
    )
    assert res["status"] == "completed" and res["accel"]["amp"] == amp
    assert all(math.isfinite(h["train_loss"]) for h in res["history"])
