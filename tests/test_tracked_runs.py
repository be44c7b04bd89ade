"""One W&B run per svdbench run (README, "Reliability": a replaced run leaves nothing behind): the W&B offline
folders a run records in results.json (``tracking``), removed exactly when the run is replaced, and only its own
(r32b F1); none made for a run refused or handed back complete; a cut run resumed goes on in the same W&B run, its
steps continued; a leg cut while W&B starts is found by its id (r32b F2); a run that starts again from its
beginning (nothing to resume) is a W&B run of its own (r32b F3)."""

import json
import shutil
import signal
import time
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
    good = {"id": RUN_ID, "root": ".", "dirs": ["wandb/x"], "steps": 3}
    assert tracked_runs.check(good) == good
    for bad in (None, [], {"id": 7}, {"id": "a/b"}, {"id": "../x"}, {"id": ""}, {**good, "dirs": "wandb/x"},
                {**good, "dirs": [""]}, {**good, "dirs": [3]}, {**good, "steps": -1}, {**good, "steps": True},
                {**good, "steps": 1.5}, {**good, "root": ""}, {**good, "root": 3}):  # fmt: skip
        assert tracked_runs.check(bad) is None, bad
    assert tracked_runs.check({"id": RUN_ID}) == {"id": RUN_ID, "root": None, "dirs": [], "steps": 0}


def test_a_leg_goes_on_in_the_run_it_recorded_and_a_copy_starts_its_own(tmp_path):
    run, wd = tmp_path / "run", tmp_path / "wd"
    first = tracked_runs.reserve(run, run, None, RUN_ID)
    assert first == {"id": RUN_ID, "root": ".", "dirs": [], "steps": 0}
    tracked_runs.claim(run, first, w_folder(run / "wandb"))
    first["steps"] = 5
    assert first["dirs"] == [f"wandb/offline-run-20261208_010203-{RUN_ID}"]
    assert tracked_runs.reserve(run, run, first, "other1") == {**first, "steps": 5}  # the same run goes on
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)  # its folder marked as the original's: the copy's legs are a W&B run of their own
    assert tracked_runs.reserve(copy, copy, first, "other1") == {"id": "other1", "root": ".", "dirs": first["dirs"],
                                                                 "steps": 0}  # fmt: skip
    outside = tracked_runs.reserve(run, wd, None, RUN_ID)
    assert outside["root"] == str(wd)


def test_remove_takes_the_runs_own_folders_only(tmp_path):
    run = tmp_path / "run"
    wandb_dir = run / "wandb"
    mine = w_folder(wandb_dir)
    cut = w_folder(wandb_dir, stamp="20261208_050000")  # a leg cut while W&B started: unrecorded, found by its id
    other = w_folder(wandb_dir, run_id="zzz999")  # another W&B run's folder: not recorded, never touched
    victim = w_folder(tmp_path / "victim")  # reached through a link named like a folder of this run
    (wandb_dir / f"offline-run-20261208_020000-{RUN_ID}").symlink_to(victim)
    wrong_name = wandb_dir / "my-notes"
    wrong_name.mkdir()
    (wandb_dir / "latest-run").symlink_to(mine.name)
    (wandb_dir / "debug.log").symlink_to(f"{mine.name}/logs/debug.log")
    info = {"id": RUN_ID, "root": ".", "steps": 2,
            "dirs": [str(mine.relative_to(run)), "wandb/my-notes", "../victim"]}  # fmt: skip
    assert tracked_runs.folders(run, info) == [mine, cut]
    assert tracked_runs.remove(run, info) == [mine, cut]
    assert not mine.exists() and not cut.exists()
    assert not (wandb_dir / "latest-run").is_symlink() and not (wandb_dir / "debug.log").exists()
    assert other.is_dir() and victim.is_dir() and (victim / f"run-{RUN_ID}.wandb").is_file() and wrong_name.is_dir()
    assert tracked_runs.remove(run, {"id": "x", "dirs": "wandb"}) == []  # an edited record removes nothing


def test_a_folder_outside_is_removed_only_when_marked_as_this_run_directorys(tmp_path):
    """r32b F1: a copy of a run whose W&B folder lies outside it (``$WANDB_DIR``), replaced, removed the original's
    folder; so did a record edited to name another run's folder through ``..`` or a link on the way."""
    run, copy, wd = tmp_path / "run", tmp_path / "copy", tmp_path / "wd"
    info = tracked_runs.reserve(run, wd, None, RUN_ID)
    folder = w_folder(wd / "wandb")
    tracked_runs.claim(run, info, folder)
    assert (folder / tracked_runs.MARK).read_text() == str(run.resolve())
    copy.mkdir()  # a copy of the run directory: its record names the same folder outside
    assert tracked_runs.remove(copy, info) == []  # the copy's record names the original's folder: kept
    other = tmp_path / "other"
    theirs = w_folder(other / "wandb", run_id="abc999")
    (other / "lnk").symlink_to(other / "wandb")
    edited = {"id": "abc999", "root": None, "dirs": [f"../other/wandb/{theirs.name}", f"../other/lnk/{theirs.name}"]}
    assert tracked_runs.remove(copy, edited) == [] and theirs.is_dir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "wandb").symlink_to(other / "wandb")  # inside by name, through a link
    assert tracked_runs.remove(linked, {**edited, "dirs": [f"wandb/{theirs.name}"]}) == [] and theirs.is_dir()
    assert tracked_runs.remove(run, info) == [folder] and not (wd / "wandb").exists() and wd.is_dir()


# ------------------------------------------------------------------ whole runs, W&B offline


def w_folder_like(folder: Path, stamp: str) -> Path:
    """Another folder of ``folder``'s W&B run id beside it, as W&B starts one: no mark of svdbench's in it."""
    run_id = folder.name.rsplit("-", 1)[1]
    other = folder.parent / f"offline-run-{stamp}-{run_id}"
    (other / "files").mkdir(parents=True)
    (other / f"run-{run_id}.wandb").write_bytes(b":W&B")
    return other


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


@pytest.mark.slow
def test_a_run_started_again_from_its_beginning_is_a_wandb_run_of_its_own(tmp_path, start_run_py, run_py, tiny):
    """r32b F3: with ``checkpoint=false`` a cut run starts again from epoch 1, but went on in the cut leg's W&B run
    (its first epochs logged twice); r32b F2: a folder of the run's id that no record names (a leg cut while W&B
    started) is removed with the run."""
    out, env = tmp_path / "run", wandb_env(tmp_path)
    args = ["logger=wandb", *tiny("trainer.epochs"), "trainer.epochs=30", "checkpoint=false", f"hydra.run.dir={out}"]
    proc = start_run_py(*args, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "results.json").is_file():
        time.sleep(0.1)
    while time.time() < deadline and json.loads((out / "results.json").read_text()).get("tracking") is None:
        time.sleep(0.1)
    time.sleep(3)  # into training
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    cut = json.loads((out / "results.json").read_text())["tracking"]
    (first,) = folders_in(out)
    unnamed = w_folder_like(first, "20000101_000000")  # as a leg cut inside wandb.init leaves it: no record, no mark
    done = run_py(*args, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rec = json.loads((out / "results.json").read_text())["tracking"]
    (second,) = folders_in(out)
    assert rec["id"] != cut["id"] and not first.exists() and not unnamed.exists()
    assert steps_and_id(second)[1][0] == 0  # its epochs from the first


@pytest.mark.slow
def test_a_run_killed_and_resumed_logs_each_epoch_at_its_own_step(tmp_path, start_run_py, wait_for_checkpoint, run_py,
                                                                  tiny):  # fmt: skip
    """SIGKILL writes no record: the resumed leg's epochs go at the steps an uncut run gives them (their index in
    the run's history), not after the steps the record said when the leg began."""
    out, env = tmp_path / "run", wandb_env(tmp_path)
    args = ["logger=wandb", *tiny("trainer.epochs"), "trainer.epochs=20", "method.energies=[0.01]",
            f"hydra.run.dir={out}"]  # fmt: skip
    proc = start_run_py(*args, env=env)
    wait_for_checkpoint(proc, out, "train")
    time.sleep(0.5)  # an epoch or two on
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = run_py(*args, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    main = json.loads((out / "results.json").read_text())
    epochs = len(main["history"]) + 1  # and the point fine-tunes one
    _, second = folders_in(out)  # the killed leg's history may be lost with it: W&B had not written it yet
    steps = steps_and_id(second)[1]
    assert steps[-1] == epochs  # the results' tables, after every epoch
    assert steps[0] >= 1 and steps[:-1] == list(range(steps[0], epochs))  # from the checkpoint's epoch on
