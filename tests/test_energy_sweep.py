"""The energy sweep (SVD training's operating points) and checkpoints: every point has its own
directory and checkpoints, starts from the trained model's random state, and a run cut anywhere
(in the main fine-tuning, inside a point, by SIGKILL or SIGTERM) or simply rerun ends with the
same main result and the same points as an uninterrupted run."""

import json
import random
import signal
import subprocess

import pytest

pytestmark = pytest.mark.slow

# about 1 s per epoch on 2 cores: long enough to be cut inside a stage
SWEEP = [
    "dataset=synthetic", "dataset.shape=[3,24,24]", "dataset.num_train=768", "dataset.num_test=64", "model=resnet8",
    "trainer.epochs=2", "trainer.batch_size=16", "trainer.progress=false", "trainer.bn_recalibration_batches=2",
    "method.finetune_epochs=2", "save_model=false", "measure.latency=false", "method.energy=0.05",
    "method.energies=[0.2,0.4]",
]  # fmt: skip
POINTS = ("energy_0.2", "energy_0.4")
KEEP = ("status", "top1", "macs", "params", "ranks", "stage_top1", "history", "method_details")


def outcome(run_dir):
    """Main result and points, without what differs between two identical runs (times, paths)."""

    def read(d):
        res = json.loads((d / "results.json").read_text())
        return {k: res.get(k) for k in KEEP}

    return {"main": read(run_dir), **{p: read(run_dir / p) for p in POINTS}}


@pytest.fixture(scope="module")
def finish(run_py):
    def run(out, *extra):
        proc = run_py(*SWEEP, *extra, f"hydra.run.dir={out}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        return outcome(out)

    return run


@pytest.fixture(scope="module")
def uninterrupted_dir(tmp_path_factory, finish):
    out = tmp_path_factory.mktemp("ref") / "run"
    finish(out)
    assert not list(out.rglob("*.pt"))  # every checkpoint cleaned up once all points are done
    return out


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_dir):
    return outcome(uninterrupted_dir)


def test_points_start_from_the_trained_model_with_their_own_history(uninterrupted, uninterrupted_dir):
    main = uninterrupted["main"]
    train_history = [h for h in main["history"] if h["stage"] == "train"]
    for p in POINTS:
        point = uninterrupted[p]
        config = json.loads((uninterrupted_dir / p / "results.json").read_text())["config"]
        assert point["status"] == "completed" and config["method"]["energy"] == float(p.split("_")[1])
        # the trained part of the history, then the point's own fine-tuning (not the main run's)
        assert point["history"][: len(train_history)] == train_history
        assert [h["stage"] for h in point["history"][len(train_history) :]] == ["finetune", "finetune"]
        assert point["stage_top1"]["train"] == main["stage_top1"]["train"]
    assert uninterrupted["energy_0.4"]["macs"] <= uninterrupted["energy_0.2"]["macs"] <= main["macs"]


def test_rerun_with_kept_checkpoints_changes_nothing(tmp_path, finish, uninterrupted):
    out = tmp_path / "run"
    first = finish(out, "keep_checkpoints=true")
    again = finish(out, "keep_checkpoints=true")
    assert first == again == uninterrupted


@pytest.mark.parametrize("where", ["main finetune", "point"])
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, where, start_run_py, wait_for_checkpoint, finish,
                                                  uninterrupted):  # fmt: skip
    out = tmp_path / "run"
    proc = start_run_py(*SWEEP, f"hydra.run.dir={out}")
    wait_for_checkpoint(proc, out if where == "main finetune" else out / POINTS[0], "finetune")
    proc.kill()
    proc.wait(timeout=30)
    assert finish(out) == uninterrupted


def test_sigterm_in_a_point_exits_preempted_and_resumes(tmp_path, start_run_py, wait_for_checkpoint, finish,
                                                       uninterrupted):  # fmt: skip
    out = tmp_path / "run"
    proc = start_run_py(*SWEEP, f"hydra.run.dir={out}")
    wait_for_checkpoint(proc, out / POINTS[1], "finetune")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert json.loads((out / "results.json").read_text())["status"] == "completed"  # the main result is kept
    assert json.loads((out / POINTS[1] / "results.json").read_text())["status"] == "preempted"
    assert finish(out) == uninterrupted


def test_sigkill_anywhere_then_rerun_until_done_equals_uninterrupted(tmp_path, start_run_py, finish, uninterrupted):
    """SIGKILL at random moments (start-up, training, fine-tuning, a point, measuring), three times
    over; the rerun that is left alone completes, and every results.json equals the uninterrupted run's."""
    rng = random.Random(0)
    out = tmp_path / "run"
    for _ in range(3):
        proc = start_run_py(*SWEEP, f"hydra.run.dir={out}")
        try:
            proc.wait(timeout=rng.uniform(2.0, 14.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    assert finish(out) == uninterrupted
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.tmp"))
