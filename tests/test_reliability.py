"""Nothing lost: kill-and-resume gives the uninterrupted result, preemption saves and resumes,
NaN stops the run with a recorded reason, corrupt files give one clear error."""

import json
import os
import signal
import time

import pytest
import torch

from svdbench.checkpoint import load_checkpoint
from svdbench.errors import CheckpointError, DivergedError, InputError, Preempted
from svdbench.methods import SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.regularizers import SparsityRegularizer
from svdbench.results import read_results, write_json_atomic

pytestmark = pytest.mark.slow

# ~1 s per epoch on 2 cores: long enough to be cut mid-epoch
RESUMABLE = [
    "dataset=synthetic", "dataset.shape=[3,24,24]", "dataset.num_train=768", "dataset.num_test=64", "model=resnet8",
    "trainer.epochs=3", "trainer.batch_size=16", "trainer.progress=false", "trainer.bn_recalibration_batches=2",
    "method.finetune_epochs=2", "save_model=false", "measure.latency=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_to_end(run_py):
    def run(out):
        proc = run_py(*RESUMABLE, f"hydra.run.dir={out}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads((out / "results.json").read_text())

    return run


def same_outcome(a, b):
    assert a["status"] == b["status"] == "completed"
    assert a["top1"] == b["top1"] and a["macs"] == b["macs"] and a["params"] == b["params"]
    assert a["ranks"] == b["ranks"] and a["stage_top1"] == b["stage_top1"]
    strip = [{k: v for k, v in h.items()} for h in a["history"]]
    assert strip == b["history"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, run_to_end):
    return run_to_end(tmp_path_factory.mktemp("ref") / "run")


@pytest.mark.parametrize("stage", ["train", "finetune"])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(
    tmp_path, uninterrupted, stage, sigkill_in_stage, run_to_end
):
    out = tmp_path / "run"
    sigkill_in_stage(RESUMABLE, out, stage)
    assert read_results(out / "results.json")["status"] == "running"  # what a killed run leaves: not a result
    resumed = run_to_end(out)
    same_outcome(uninterrupted, resumed)
    assert not (out / "checkpoint.pt").exists()  # cleaned up after completion


def test_sigterm_saves_mid_epoch_and_resumes(tmp_path, uninterrupted, start_run_py, wait_for_checkpoint, run_to_end):
    out = tmp_path / "run"
    proc = start_run_py(*RESUMABLE, f"hydra.run.dir={out}")
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
    resumed = run_to_end(out)
    same_outcome(uninterrupted, resumed)


def test_rerun_of_completed_directory_does_nothing(tmp_path, run_to_end):
    out = tmp_path / "run"
    first = run_to_end(out)
    t0 = time.time()
    again = run_to_end(out)
    assert again == first and time.time() - t0 < 60


@pytest.fixture
def tiny(tiny_cfg):
    def make(**kw):
        return tiny_cfg(dataset={"num_train": 64, "num_test": 32}, trainer={"epochs": 2, "bn_recalibration_batches": 1},
                        **kw)  # fmt: skip

    return make


def test_nan_stops_with_stage_and_epoch(tmp_path, tiny):
    class Exploding(SVDTraining):
        def regularization(self, model, stage):
            return torch.tensor(float("nan")) if stage == "train" else None

    with pytest.raises(DivergedError, match="stage 'train', epoch 1"):
        run_experiment(tiny(resume=False), Exploding.create(regularizer=SparsityRegularizer()), tmp_path)
    res = read_results(tmp_path / "results.json")
    assert res["status"] == "failed" and "stage 'train', epoch 1" in res["error"]
    assert not (tmp_path / "model.pt").exists()


def test_corrupt_checkpoint_is_named(tmp_path, tiny):
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
        run_experiment(tiny(), SVDTraining.create(regularizer=SparsityRegularizer()), run)


def test_checkpoint_of_another_config_is_refused(tmp_path, tiny):
    run_experiment(tiny(keep_checkpoints=True), SVDTraining.create(regularizer=SparsityRegularizer()), tmp_path)
    for f in tmp_path.iterdir():  # as a run killed before it deployed leaves it
        if f.is_file() and f.name != "checkpoint.pt":
            f.unlink()
    assert (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(InputError, match="another config"):
        run_experiment(tiny(seed=1), SVDTraining.create(regularizer=SparsityRegularizer()), tmp_path)


def test_atomic_results_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"status": "running", "top1": 1.0})

    class Boom:
        pass

    with pytest.raises(TypeError):  # not serialisable: the old file must survive intact
        import json as _json

        monkeypatch.setattr(_json, "dump", lambda *a, **k: (_ for _ in ()).throw(TypeError("boom")))
        write_json_atomic(path, {"status": "failed", "x": Boom()})
    assert read_results(path) == {"status": "running", "top1": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    path.write_text('{"status": "comp')  # a corrupt file is reported, not half-read
    with pytest.raises(ValueError):
        read_results(path)


def test_preemption_hands_the_signal_to_the_launchers_handler(tmp_path, tiny):
    """The contract with submitit: on SIGUSR1/SIGUSR2 the pipeline saves, then calls the handler
    that was installed before it (submitit's requeue), and a rerun resumes to completion."""
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    try:
        method = SVDTraining.create(regularizer=SparsityRegularizer())
        with pytest.raises(Preempted):
            run_experiment(tiny(), method, tmp_path, on_epoch=lambda rec: os.kill(os.getpid(), signal.SIGUSR1))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert calls == [signal.SIGUSR1]
    assert read_results(tmp_path / "results.json")["status"] == "preempted"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["stage"] == "train"
    res = run_experiment(tiny(), SVDTraining.create(regularizer=SparsityRegularizer()), tmp_path)
    assert res["status"] == "completed" and [h["epoch"] for h in res["history"] if h["stage"] == "train"] == [1, 2]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s["results"].update(history="x"), "history is not a list of epochs"),
        (lambda s: s["results"]["stage_top1"].update(train="high"), r"stage_top1\['train'\] is 'high', not a number"),
        (lambda s: s["results"].pop("ranks"), "does not hold exactly"),
        (lambda s: s["train"].update(epoch=-3), "at epoch -3"),
        (lambda s: s["train"].update(step_in_epoch="7"), "step '7': not a position"),
        (lambda s: s["train"].update(optimizer={}), "its optimizer state has no parameter groups"),
        (lambda s: s["train"]["optimizer"]["param_groups"][0].update(lr="fast"), "with a learning rate"),
        (lambda s: s["train"].update(rng={}), "its rng is not a generator state"),
        (lambda s: s["train"]["rng"].update(torch=torch.zeros(7, dtype=torch.uint8)), r"rng\['torch'\] is not a"),
        (lambda s: s["train"].update(scheduler="x"), "its scheduler state is not a mapping"),
        (lambda s: s.update(config="x"), "has config 'x': not written by this svdbench"),
        (lambda s: s.update(stage="bogus"), "has stage 'bogus': not written by this svdbench"),
        (lambda s: s.update(version=2), "has version 2: not written by this svdbench"),
        (lambda s: s.update(world_size="1"), "has world_size '1': not written by this svdbench"),
    ],
)
def test_an_edited_checkpoint_is_one_line_before_any_work(tmp_path, tiny, edit, message):
    run_experiment(tiny(keep_checkpoints=True), SVDTraining.create(regularizer=SparsityRegularizer()), tmp_path)
    for f in tmp_path.iterdir():  # as a run killed before it deployed leaves it
        if f.is_file() and f.name != "checkpoint.pt":
            f.unlink()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "checkpoint.pt")
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match=message) as err:
        run_experiment(tiny(keep_checkpoints=True), SVDTraining.create(regularizer=SparsityRegularizer()), tmp_path)
    assert "\n" not in str(err.value) and "checkpoint.pt" in str(err.value)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before  # nothing resumed, nothing replaced


def test_a_full_disk_names_the_file_it_was_writing(tmp_path, monkeypatch):
    import errno
    import json as _json

    from svdbench.results import atomic_torch_save

    path = tmp_path / "results.json"
    write_json_atomic(path, {"status": "running", "top1": 1.0})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_json, "dump", full)
    with pytest.raises(OSError, match=rf"No space left on device: '{path}'"):
        write_json_atomic(path, {"status": "completed"})
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=rf"No space left on device: '{tmp_path / 'model.pt'}'"):
        atomic_torch_save({}, tmp_path / "model.pt")
    assert read_results(path) == {"status": "running", "top1": 1.0}  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file left


def test_a_full_disk_while_saving_a_checkpoint_names_the_checkpoint_and_frees_its_space(tmp_path, monkeypatch):
    import errno as errno_module

    from svdbench import results as results_module
    from svdbench.errors import one_line

    real = results_module.os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.f = real(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno_module.ENOSPC, "No space left on device")

    monkeypatch.setattr(results_module.os, "fdopen", Full)
    with pytest.raises(OSError) as err:
        results_module.atomic_torch_save({"w": torch.zeros(10)}, tmp_path / "checkpoint.pt")
    assert one_line(err.value) == f"[Errno 28] No space left on device: '{tmp_path / 'checkpoint.pt'}'"
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone (closed: its space is free)
