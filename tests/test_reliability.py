"""Nothing lost: kill-and-resume gives the uninterrupted result, preemption saves and resumes,
NaN stops the run with a recorded reason, corrupt files give one clear error."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from svdbench.checkpoint import CheckpointError, load_checkpoint
from svdbench.config import Config, DatasetConfig, ModelConfig, SVDMethodConfig, TrainerConfig
from svdbench.methods import SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.regularizers import SparsityRegularizer
from svdbench.results import read_results, write_json_atomic
from svdbench.train import DivergedError

# ~1 s per epoch on 2 cores: long enough to be cut mid-epoch
RESUMABLE = [
    "dataset=synthetic", "dataset.shape=[3,24,24]", "dataset.num_train=768", "dataset.num_test=64", "model=resnet8",
    "trainer.epochs=3", "trainer.batch_size=16", "trainer.progress=false", "trainer.bn_recalibration_batches=2",
    "method.finetune_epochs=2", "save_model=false",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(root, out):
    return subprocess.Popen([sys.executable, "run.py", *RESUMABLE, f"hydra.run.dir={out}"], cwd=root, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def run_to_end(root, out):
    proc = subprocess.run([sys.executable, "run.py", *RESUMABLE, f"hydra.run.dir={out}"], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def wait_for_checkpoint(proc, out, stage):
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, "run ended before it could be interrupted"
        ck = out / "checkpoint.pt"
        if ck.exists():
            try:
                if load_checkpoint(ck)["stage"] == stage:
                    return
            except CheckpointError:  # being replaced right now
                pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def same_outcome(a, b):
    assert a["status"] == b["status"] == "completed"
    assert a["top1"] == b["top1"] and a["macs"] == b["macs"] and a["params"] == b["params"]
    assert a["ranks"] == b["ranks"] and a["stage_top1"] == b["stage_top1"]
    strip = [{k: v for k, v in h.items()} for h in a["history"]]
    assert strip == b["history"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, root):
    return run_to_end(root, tmp_path_factory.mktemp("ref") / "run")


@pytest.mark.parametrize("stage", ["train", "finetune"])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path, root, uninterrupted, stage):
    out = tmp_path / "run"
    proc = start(root, out)
    wait_for_checkpoint(proc, out, stage)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "results.json").exists()
    resumed = run_to_end(root, out)
    same_outcome(uninterrupted, resumed)
    assert not (out / "checkpoint.pt").exists()  # cleaned up after completion


def test_sigterm_saves_mid_epoch_and_resumes(tmp_path, root, uninterrupted):
    out = tmp_path / "run"
    proc = start(root, out)
    wait_for_checkpoint(proc, out, "train")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out_text, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "rerun with hydra.run.dir=" in out_text + err
    res = read_results(out / "results.json")
    assert res["status"] == "preempted"
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["stage"] == "train"
    resumed = run_to_end(root, out)
    same_outcome(uninterrupted, resumed)


def test_rerun_of_completed_directory_does_nothing(tmp_path, root, uninterrupted):
    out = tmp_path / "run"
    first = run_to_end(root, out)
    t0 = time.time()
    again = run_to_end(root, out)
    assert again == first and time.time() - t0 < 60


def tiny(**kw):
    return Config(
        model=ModelConfig(name="resnet8"),
        dataset=DatasetConfig(name="synthetic", shape=[3, 16, 16], num_train=64, num_test=32),
        trainer=TrainerConfig(epochs=2, batch_size=32, progress=False, device="cpu", bn_recalibration_batches=1),
        method=SVDMethodConfig(),
        **kw,
    )


def test_nan_stops_with_stage_and_epoch(tmp_path):
    class Exploding(SVDTraining):
        def regularization(self, model, stage):
            return torch.tensor(float("nan")) if stage == "train" else None

    (tmp_path / "results.json").write_text('{"status": "completed", "kept": true}')
    with pytest.raises(DivergedError, match="stage 'train', epoch 1"):
        run_experiment(tiny(resume=False), Exploding(regularizer=SparsityRegularizer()), tmp_path)
    res = read_results(tmp_path / "results.json")
    assert res["status"] == "failed" and "stage 'train', epoch 1" in res["error"]
    assert not (tmp_path / "model.pt").exists()


def test_corrupt_checkpoint_is_named(tmp_path):
    ck = tmp_path / "checkpoint.pt"
    ck.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="checkpoint .*checkpoint.pt is corrupt"):
        load_checkpoint(ck)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"version": 1}, run / "checkpoint.pt")
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        run_experiment(tiny(), SVDTraining(regularizer=SparsityRegularizer()), run)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    run_experiment(tiny(keep_checkpoints=True), SVDTraining(regularizer=SparsityRegularizer()), tmp_path)
    (tmp_path / "results.json").unlink()
    assert (tmp_path / "checkpoint.pt").exists()
    from svdbench.pipeline import InputError

    with pytest.raises(InputError, match="another config"):
        run_experiment(tiny(seed=1), SVDTraining(regularizer=SparsityRegularizer()), tmp_path)


def test_atomic_results_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"status": "completed", "top1": 1.0})

    class Boom:
        pass

    with pytest.raises(TypeError):  # not serialisable: the old file must survive intact
        import json as _json

        monkeypatch.setattr(_json, "dump", lambda *a, **k: (_ for _ in ()).throw(TypeError("boom")))
        write_json_atomic(path, {"status": "failed", "x": Boom()})
    assert read_results(path) == {"status": "completed", "top1": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    path.write_text('{"status": "comp')  # a corrupt file is reported, not half-read
    with pytest.raises(ValueError):
        read_results(path)


def test_preemption_hands_the_signal_to_the_launchers_handler(tmp_path):
    """The contract with submitit: on SIGUSR1/SIGUSR2 the pipeline saves, then calls the handler
    that was installed before it (submitit's requeue), and a rerun resumes to completion."""
    from svdbench.checkpoint import Preempted

    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    try:
        method = SVDTraining(regularizer=SparsityRegularizer())
        with pytest.raises(Preempted):
            run_experiment(tiny(), method, tmp_path, on_epoch=lambda rec: os.kill(os.getpid(), signal.SIGUSR1))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert calls == [signal.SIGUSR1]
    assert read_results(tmp_path / "results.json")["status"] == "preempted"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["stage"] == "train"
    res = run_experiment(tiny(), SVDTraining(regularizer=SparsityRegularizer()), tmp_path)
    assert res["status"] == "completed" and [h["epoch"] for h in res["history"] if h["stage"] == "train"] == [1, 2]
