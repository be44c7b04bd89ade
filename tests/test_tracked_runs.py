"""One W&B run per svdbench run (README, "Reliability": a replaced run leaves nothing behind): the W&B offline
folders a run records in results.json (``tracking``), removed exactly when the run is replaced; none made for a
run refused or handed back complete; a cut run resumed goes on in the same W&B run, its steps continued."""

import json
import signal
from pathlib import Path

import pytest
from test_tracking import offline_env, records

from svdbench import tracked_runs

RUN_ID = "abc123xy"


def w_folder(parent: Path, stamp: str = "20261208_010203", run_id: str = RUN_ID, offline: bool = True) -> Path:
    """A folder as W&B leaves it: ``[offline-]run-<time>-<id>`` holding ``run-<id>.wandb``."""
    path = parent / f"{'offline-' if offline else ''}run-{stamp}-{run_id}"
    (path / "files").mkdir(parents=True)
    (path / f"run-{run_id}.wandb").write_bytes(b":W&B")
    return path


def test_check_takes_only_a_tracking_record():
    good = {"id": RUN_ID, "dirs": ["wandb/x"], "steps": 3}
    assert tracked_runs.check(good) == good
    for bad in (None, [], {"id": 7}, {"id": "a/b"}, {"id": "../x"}, {"id": ""}, {**good, "dirs": "wandb/x"},
                {**good, "dirs": [""]}, {**good, "dirs": [3]}, {**good, "steps": -1}, {**good, "steps": True},
                {**good, "steps": 1.5}):  # fmt: skip
        assert tracked_runs.check(bad) is None, bad
    assert tracked_runs.check({"id": RUN_ID}) == {"id": RUN_ID, "dirs": [], "steps": 0}


def test_describe_records_a_folder_inside_the_run_relative_and_continues_the_same_run(tmp_path):
    run = tmp_path / "run"
    first = tracked_runs.describe(run, run / "wandb" / "offline-run-1", None, RUN_ID)
    assert first == {"id": RUN_ID, "dirs": ["wandb/offline-run-1"], "steps": 0}
    outside = tmp_path / "elsewhere" / "wandb" / "offline-run-2"
    second = tracked_runs.describe(run, outside, {**first, "steps": 5}, RUN_ID)
    assert second == {"id": RUN_ID, "dirs": ["wandb/offline-run-1", str(outside)], "steps": 5}
    # another W&B run (the earlier one could not be continued): its legs are not this one's
    assert tracked_runs.describe(run, outside, {**first, "steps": 5}, "other1") == {
        "id": "other1", "dirs": [str(outside)], "steps": 0}  # fmt: skip


def test_remove_takes_exactly_the_recorded_folders_of_that_run(tmp_path):
    run = tmp_path / "run"
    wandb_dir = run / "wandb"
    mine = w_folder(wandb_dir)
    other = w_folder(wandb_dir, run_id="zzz999")  # another W&B run's folder: not recorded, never touched
    victim = w_folder(tmp_path / "victim")  # reached through a link named like a folder of this run
    (wandb_dir / f"offline-run-20261208_020000-{RUN_ID}").symlink_to(victim)
    no_log = wandb_dir / f"offline-run-20261208_030000-{RUN_ID}"  # named so, but no run-<id>.wandb: not W&B's
    no_log.mkdir()
    wrong_name = wandb_dir / "my-notes"
    wrong_name.mkdir()
    (wandb_dir / "latest-run").symlink_to(mine.name)
    (wandb_dir / "debug.log").symlink_to(f"{mine.name}/logs/debug.log")
    info = {"id": RUN_ID, "steps": 2,
            "dirs": [str(mine.relative_to(run)), f"wandb/offline-run-20261208_020000-{RUN_ID}",
                     str(no_log.relative_to(run)), "wandb/my-notes", "../victim"]}  # fmt: skip
    assert tracked_runs.folders(run, info) == [mine]
    assert tracked_runs.remove(run, info) == [mine]
    assert not mine.exists() and not (wandb_dir / "latest-run").is_symlink() and not (wandb_dir / "debug.log").exists()
    assert other.is_dir() and victim.is_dir() and (victim / f"run-{RUN_ID}.wandb").is_file()
    assert no_log.is_dir() and wrong_name.is_dir()
    assert tracked_runs.remove(run, {"id": "x", "dirs": "wandb"}) == []  # an edited record removes nothing


def test_a_wandb_folder_left_empty_goes_and_an_absolute_one_is_removed_where_it_is(tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "logs"
    inside, outside = w_folder(run / "wandb"), w_folder(elsewhere / "wandb", stamp="20261208_040506")
    info = {"id": RUN_ID, "dirs": ["wandb/" + inside.name, str(outside)], "steps": 0}
    assert tracked_runs.remove(run, info) == [inside, outside]
    assert not (run / "wandb").exists() and not (elsewhere / "wandb").exists() and elsewhere.is_dir()


# ------------------------------------------------------------------ whole runs, W&B offline


def folders_in(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def steps_and_id(folder: Path) -> tuple[str, list[int]]:
    """The run id and the history steps logged in one offline folder."""
    run_id, steps = None, []
    for rec in records(next(folder.glob("run-*.wandb"))):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run_id = rec.run.run_id
        elif kind == "history" and rec.history.HasField("step"):
            steps.append(rec.history.step.num)
    return run_id, steps


def wandb_env(tmp_path: Path) -> dict:
    env = offline_env(tmp_path / "unused")
    env.pop("WANDB_DIR")  # the run directory holds its W&B folders
    return env


@pytest.mark.slow
def test_a_replaced_run_leaves_no_wandb_folder_and_a_refused_or_completed_one_makes_none(tmp_path, run_py, tiny):
    out, env = tmp_path / "run", wandb_env(tmp_path)
    args = ["logger=wandb", *tiny(), f"hydra.run.dir={out}"]
    assert run_py(*args, env=env).returncode == 0
    (first,) = folders_in(out)
    recorded = json.loads((out / "results.json").read_text())["tracking"]
    assert recorded["dirs"] == [str(first.relative_to(out))] and first.name.endswith(recorded["id"])
    assert run_py(*args, env=env).returncode == 0  # handed back complete: no W&B run of its own
    refused = run_py(*args, "seed=5", env=env)  # another experiment in this directory: refused in one line
    assert refused.returncode == 2, refused.stderr
    assert folders_in(out) == [first]
    assert run_py(*args, "resume=false", env=env).returncode == 0
    (second,) = folders_in(out)
    assert second != first and not first.exists()
    assert json.loads((out / "results.json").read_text())["tracking"]["dirs"] == [str(second.relative_to(out))]


@pytest.mark.slow
def test_a_cut_run_resumed_goes_on_in_the_same_wandb_run(tmp_path, start_run_py, wait_for_checkpoint, run_py, tiny):
    out, env = tmp_path / "run", wandb_env(tmp_path)
    args = ["logger=wandb", *tiny("trainer.epochs"), "trainer.epochs=3", f"hydra.run.dir={out}"]
    proc = start_run_py(*args, env=env)
    wait_for_checkpoint(proc, out, "train")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    cut = json.loads((out / "results.json").read_text())
    assert cut["status"] == "preempted" and cut["tracking"]["steps"] >= 1
    done = run_py(*args, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rec = json.loads((out / "results.json").read_text())
    first, second = folders_in(out)
    assert rec["tracking"]["id"] == cut["tracking"]["id"] and rec["tracking"]["dirs"] == [
        str(first.relative_to(out)), str(second.relative_to(out))]  # fmt: skip
    (id1, steps1), (id2, steps2) = steps_and_id(first), steps_and_id(second)
    assert id1 == id2 == rec["tracking"]["id"]
    assert steps1 == list(range(cut["tracking"]["steps"]))  # the first leg's epochs, then the second's after them
    end = rec["tracking"]["steps"]  # the epochs after the first leg's, then the results' tables at the next step
    assert steps2 == [*range(cut["tracking"]["steps"], end), end] and end > cut["tracking"]["steps"]
