"""Rounds 19 to 21 of the hostile pass.

- r19a (command line, files read): an empty ``hydra.output_subdir`` (Hydra wrote its config into the run directory
  itself, over the user's files: F1); an output folder with a dot in its name taken for a file (F3); a completed
  operating point whose directory is gone dropped from a report without a word (F4); F2 is in tests/test_scratch.py.
- r19b (files written, concurrency): a run directory moved or removed while a run or ``svdbench latency`` wrote in
  it, made again at its old path (F1).
- r20b: a sweep's directory moved or removed (F1), a lock file removed from a directory still in place (F2), a
  report's staging directory left in a moved folder (F3). r20a: ``report --split`` taking the paths (F2), Hydra's
  remedies dropped from the one line (F3); F1 (scratch's keys) is in tests/test_scratch.py.
- r21a: a ``method.skip`` pattern that matches no layer (F1), ``--plan`` on a cut run's damaged checkpoint (F2), a
  FIFO results.json of a scratch source (F3). r21b: a point's directory made a link or another's folder during
  training (F1), a report's ``--out`` replaced by a link meanwhile (F2).
- r22b: another's folder moved into a point's directory while the point fine-tunes (F1). r22a: a report's default
  ``--out`` under a mistyped first PATH (F1), a checkpoint's ``step`` (F2), ``--plan`` reading a cut run's
  checkpoint as the run does (F3), the latency axis's remedy (F4), a hand-typed ``-sc query=bash`` (F6).
- r23b: a link where Hydra writes in a sweep's job (F1), a failure recorded over or beside another's files (F2, F3).
- r24b: a link at a failure record beside the jobs (F1), a user's YAML where Hydra writes in a job (F2), Optuna's
  results file (F3); r24a: ImageNet's val/ of other class folders (F1, F2), a CIFAR batch of floats (F3)."""

import argparse
import json
import os
import pickle
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import imagenet_files, record, refused
from omegaconf import OmegaConf
from test_hostile_r10_writes import fake_hydra

from svdbench import app, cli, held_dirs, preflight
from svdbench.axes import latency_axis
from svdbench.data.files import imagenet_splits, read_cifar_batch
from svdbench.errors import DatasetError, InputError
from svdbench.held_dirs import DirectoryGone
from svdbench.methods.scratch import Scratch
from svdbench.report import build_report, outdir
from svdbench.report.load import load_runs
from svdbench.results import RESULTS_FILE, atomic_torch_save, write_json_atomic
from svdbench.retime import retime
from svdbench.rundir import FAILED_JOBS, LOCK, RunLock, _hydra_paths, check_sweep_dir
from svdbench.stages import recorded

# ------------------------------------------------ r19a F1, F3: hydra.output_subdir, empty or with a dot


@pytest.mark.parametrize("value", ["''", ""])
def test_an_empty_output_subdir_is_refused_and_the_users_files_kept(value, tmp_path, capsys, tiny):
    """Hydra wrote config.yaml, hydra.yaml and overrides.yaml into the run directory itself, over the user's."""
    run = tmp_path / "U"
    run.mkdir()
    (run / "config.yaml").write_text("mine")
    err = refused(capsys, *tiny(), f"hydra.output_subdir={value}", f"hydra.run.dir={run}")
    assert "would put Hydra's config.yaml, hydra.yaml and overrides.yaml in the run directory itself" in err
    assert (run / "config.yaml").read_text() == "mine" and sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_an_output_folder_with_a_dot_in_its_name_is_a_folder(tmp_path, tiny):
    """``cfg.v2`` was taken for a file: a rerun into a run's directory was refused ("cfg.v2 is not a regular file")."""
    assert _hydra_paths(("run.log", "cfg.v2/")) == (
        ["cfg.v2"], ["run.log", "cfg.v2/config.yaml", "cfg.v2/hydra.yaml", "cfg.v2/overrides.yaml"]
    )  # fmt: skip
    (tmp_path / "A" / "cfg.v2").mkdir(parents=True)  # as the first run left it
    try:
        preflight.preflight(["run.py", *tiny(), "hydra.output_subdir=cfg.v2", f"hydra.run.dir={tmp_path / 'A'}"])
    finally:
        RunLock.release_held()


def test_a_file_at_an_output_folders_name_with_a_dot_is_refused(tmp_path, capsys, tiny):
    """It ended in Hydra's FileExistsError traceback, leaving an empty run.log."""
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "cfg.v2").write_text("mine")
    err = refused(capsys, *tiny(), "hydra.output_subdir=cfg.v2", f"hydra.run.dir={tmp_path / 'B'}")
    assert "cfg.v2 is not a directory" in err and (tmp_path / "B" / "cfg.v2").read_text() == "mine"


# ------------------------------------------------ r19a F4: a completed point whose directory is gone


def test_a_run_whose_completed_point_is_gone_is_skipped_saying_so(tmp_path):
    run = record(tmp_path / "A", operating_points=[{"label": "energy_0.1", "status": "completed"},
                                                   {"label": "energy_0.2", "status": "completed"}])  # fmt: skip
    for label in ("energy_0.1", "energy_0.2"):
        record(run / label, top1=80.0, point_of=str(run))
    assert len(load_runs([run])[0]) == 3
    shutil.rmtree(run / "energy_0.1")
    runs, _, skipped = load_runs([run])
    assert runs == []  # counted whole or not at all
    assert "operating point energy_0.1 is recorded as made, but its results.json is gone" in skipped[0][1]


# ------------------------------------------------ r19b F1: a locked directory moved or removed meanwhile


@pytest.mark.parametrize("how", ["moved", "removed"])
@pytest.mark.parametrize("write", [write_json_atomic, atomic_torch_save])
def test_a_locked_directory_moved_or_removed_is_never_made_again(how, write, tmp_path):
    run = tmp_path / "P"
    with RunLock(run):
        write({"a": 1}, run / RESULTS_FILE) if write is atomic_torch_save else write(run / RESULTS_FILE, {"a": 1})
        shutil.move(run, tmp_path / "P_old") if how == "moved" else shutil.rmtree(run)
        args = ({"a": 2}, run / "energy_0.1" / "x.pt") if write is atomic_torch_save else (run / "energy_0.1" / "x", 2)
        with pytest.raises(DirectoryGone, match=f"^{run} was moved or removed while svdbench wrote in it"):
            write(*args)
        assert not run.exists()
    assert held_dirs._locks == {}


def test_a_moved_runs_lock_does_not_remove_the_lock_of_the_run_now_at_its_path(tmp_path):
    run = tmp_path / "P"
    first = RunLock(run).__enter__()
    shutil.move(run, tmp_path / "P_old")
    with RunLock(run):  # a second command, at the old path
        first.__exit__()
        assert (run / LOCK).is_file()  # the second's: it was unlinked by the first's exit
        write_json_atomic(run / RESULTS_FILE, {"still": "written"})


def test_a_stage_does_not_record_into_a_directory_that_is_gone(tmp_path):
    """A point (contained: one bad point does not stop the others) went on, and the run wrote its main record."""
    leg = argparse.Namespace(
        record=argparse.Namespace(status="running", error=None), write=None, label="p", dir=tmp_path
    )
    with pytest.raises(DirectoryGone), recorded(leg, guard=None, contain=True):
        raise DirectoryGone("gone")
    assert leg.record.status == "running"


def test_latency_skips_a_run_whose_directory_is_gone_and_makes_nothing(tmp_path):
    """It made the removed run's directory again, with the record it had read and its latency."""
    run = record(tmp_path / "L8")
    shutil.rmtree(run)
    assert retime(run / RESULTS_FILE, argparse.Namespace()) == "skipped (its directory was moved or removed)"
    assert not run.exists()


def test_every_locked_write_is_checked(tmp_path):
    """The lock of a run directory is what tells its writers that the directory is still where it was."""
    with RunLock(tmp_path / "r"):
        assert list(held_dirs._locks) == [str(tmp_path / "r" / LOCK)]
        write_json_atomic(tmp_path / "r" / "ok.json", 1)
        write_json_atomic(tmp_path / "elsewhere.json", 1)  # outside every locked directory: not asked
    assert json.loads((tmp_path / "r" / "ok.json").read_text()) == 1


# ------------------------------------------------ round 20 (r20b): a sweep's directory gone, a lock removed, a report


@pytest.mark.slow
def test_a_sweep_whose_directory_is_moved_stops_in_one_line_and_makes_nothing_again(
    tmp_path, start_run_py, wait_for_checkpoint, tiny
):
    """The failure record made the job's directory again at the old path, Hydra the next jobs' and the end-of-sweep
    report its own: "0 runs, 2 failed", exit code 0."""
    sweep = tmp_path / "S1"
    proc = start_run_py("-m", *tiny(), "trainer.epochs=40", "seed=1,2", f"hydra.sweep.dir={sweep}")
    wait_for_checkpoint(proc, sweep / "0", "train")
    shutil.move(sweep, tmp_path / "S1_old")
    out, err = proc.communicate(timeout=240)
    err = out + err  # Hydra's console log is on stdout
    assert proc.returncode == 1 and "was moved or removed while svdbench wrote in it" in err, err
    assert "the sweep stops" in err and "Traceback" not in err
    assert not sweep.exists() and (tmp_path / "S1_old" / "0" / "checkpoint.pt").is_file()  # resumable where it is


def test_a_sweeps_job_whose_directory_was_removed_before_it_starts_stops_the_sweep(tmp_path, capsys):
    sweep = tmp_path / "S3"
    RunLock.hold(sweep / "1")  # as preflight takes the jobs' directories ahead
    try:
        shutil.rmtree(sweep / "1")
        (sweep / "1").mkdir()  # as Hydra makes the job's directory again, before it writes there
        with pytest.raises(SystemExit) as stop:
            app._stop_if_gone(sweep / "1", sweep)
        assert stop.value.code == 1 and not (sweep / "1").exists()
        assert capsys.readouterr().err == (
            f"error: {sweep / '1'} was moved or removed while svdbench wrote in it: nothing more is written there (a "
            "new directory at that path would be another run's); the sweep stops\n"
        )
    finally:
        RunLock.release_held()


def test_a_removed_lock_file_is_said_to_be_the_lock_not_the_directory(tmp_path):
    with RunLock(tmp_path / "Q2"):
        (tmp_path / "Q2" / LOCK).unlink()
        with pytest.raises(DirectoryGone, match=r"\.svdbench\.lock was removed or replaced while svdbench wrote in"):
            write_json_atomic(tmp_path / "Q2" / RESULTS_FILE, {})


def test_a_report_whose_parent_is_moved_meanwhile_leaves_no_staging_directory(tmp_path):
    """Half a report (the staging directory) stayed in the moved folder: it was looked for at the old path."""
    out = tmp_path / "RP" / "x" / "out"
    with pytest.raises(OSError), outdir.staged(out) as tmp:
        (tmp / "report.md").write_text("half")
        shutil.move(tmp_path / "RP", tmp_path / "RPm")
        raise OSError("the report was not written")
    assert [p.name for p in (tmp_path / "RPm" / "x").iterdir() if p.name.endswith(".tmp")] == []


# ------------------------------------------------ round 20 (r20a): scratch's keys, report --split, Hydra's remedies


def test_report_split_that_took_the_paths_says_so(capsys):
    """It was argparse's "the following arguments are required: PATH", the path given."""
    assert cli.main(["report", "--split", "method.speedup", "runs/dd"]) == 2
    assert capsys.readouterr().err == (
        "error: no PATH (a run or sweep directory) given: --split took 'runs/dd' as keys too; give the paths first, "
        "or end --split's keys with --\n"
    )


@pytest.mark.parametrize(
    "override, remedy",
    [("seed=1,2", "(a list is key=[a,b], a string key='a,b'; a sweep over the values needs -m)"),
     ("compare=fpgm", "(to add it, +compare=fpgm)")],
)  # fmt: skip
def test_hydras_remedy_is_kept_in_the_one_line(override, remedy, capsys, tiny):
    """Only Hydra's first line was kept: "Ambiguous value for argument 'seed=1,2'", without "add --multirun"."""
    assert refused(capsys, *tiny(), override).endswith(remedy)


# ------------------------------------------------ round 21 (r21a): skip patterns, --plan's checkpoint, a FIFO source


@pytest.mark.parametrize(
    "pattern, hint",
    [("layer1", "; the layers in layer1: 'layer1.*'"), ("nosuch", " (its layers: conv1, layer1.0.conv1, ")],
)
@pytest.mark.parametrize("method", ["svd", "l1_filter", "trp"])
def test_a_skip_pattern_that_matches_no_layer_is_refused(method, pattern, hint, capsys, tiny):
    """It was ignored: every layer compressed, the run recorded as normal."""
    err = refused(capsys, *tiny(), f"method={method}", f"method.skip=[{pattern}]", "--plan")
    assert f"method.skip: '{pattern}' matches no layer of resnet8 by its whole name{hint}" in err, err


def test_a_skip_pattern_of_whole_names_is_taken(capsys, tiny):
    with pytest.raises(SystemExit) as done:
        preflight.preflight(["run.py", *tiny(), "method=svd", "method.skip=[layer1.*,conv1]", "--plan"])
    assert done.value.code == 0 and "a plan only" in capsys.readouterr().out


@pytest.fixture(scope="module")
def kept_dense_run(tmp_path_factory, tiny, run_py):
    """``kept_dense_run(run)``: a copy at ``run`` of one completed tiny dense run that kept its checkpoint, and the
    overrides that rerun it there (one training for every test of a damaged checkpoint)."""
    made = tmp_path_factory.mktemp("kept") / "run"
    overrides = [*tiny(), "method=dense", "keep_checkpoints=true"]
    assert run_py(*overrides, f"hydra.run.dir={made}").returncode == 0

    def copy(run):
        shutil.copytree(made, run)
        return run, [*overrides, f"hydra.run.dir={run}"]

    return copy


@pytest.mark.parametrize(
    "epoch, message", [("7", "epoch '7', step 0: not a position"), (999, "epoch 999, step 0: not a point of a stage")]
)
def test_plan_reads_a_cut_runs_checkpoint_as_the_run_does(epoch, message, tmp_path, capsys, kept_dense_run):
    """--plan ended in a TypeError traceback (epoch '7'), or said it would resume at epoch 1000 of a 1-epoch stage."""
    run, args = kept_dense_run(tmp_path / "c3")
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # a cut run's, its position edited
    state["train"]["epoch"] = epoch
    torch.save(state, run / "checkpoint.pt")
    rec = json.loads((run / RESULTS_FILE).read_text())
    (run / RESULTS_FILE).write_text(json.dumps({**rec, "status": "running"}))
    err = refused(capsys, *args, "--plan")
    assert message in err and str(run / "checkpoint.pt") in err, err


def test_a_source_whose_results_json_is_a_fifo_says_so(tmp_path):
    """It said "holds no run (no results.json)"."""
    (tmp_path / "n2").mkdir()
    os.mkfifo(tmp_path / "n2" / RESULTS_FILE)
    with pytest.raises(ValueError, match=r"results.json cannot be read \(not a regular file\)"):
        Scratch.create(architecture_from=str(tmp_path / "n2"))


# ------------------------------------------------ round 21 (r21b): links put in place while svdbench writes


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["link", "folder"])
def test_a_point_folder_made_a_link_or_anothers_while_the_run_trains_is_never_written_into(
    kind, tmp_path, start_run_py, wait_for_checkpoint, tiny
):
    """The point's record and model replaced the user's results.json and deployed.pt through the link, exit 0."""
    user, run = tmp_path / "U2", tmp_path / "P2"
    user.mkdir()
    for name in ("results.json", "deployed.pt"):
        (user / name).write_text("mine")
    proc = start_run_py(*tiny(), "trainer.epochs=40", "method=svd", "method.energies=[0.1]", f"hydra.run.dir={run}")
    wait_for_checkpoint(proc, run, "train")
    if kind == "link":
        (run / "energy_0.1").symlink_to(user)
    else:
        shutil.copytree(user, run / "energy_0.1")
    out, err = proc.communicate(timeout=240)
    said = "the directory of an operating point, is a link" if kind == "link" else "svdbench replaces only its own"
    assert proc.returncode == 2 and said in out + err, out + err
    where = user if kind == "link" else run / "energy_0.1"
    assert sorted(p.name for p in where.iterdir()) == ["deployed.pt", "results.json"]
    assert all((where / n).read_text() == "mine" for n in ("results.json", "deployed.pt"))


def test_a_folder_made_a_link_in_a_locked_directory_is_never_written_through(tmp_path):
    (tmp_path / "U").mkdir()
    with RunLock(tmp_path / "P"):
        (tmp_path / "P" / "energy_0.1").symlink_to(tmp_path / "U")
        with pytest.raises(DirectoryGone, match=r"energy_0.1 became a link while svdbench wrote in"):
            write_json_atomic(tmp_path / "P" / "energy_0.1" / RESULTS_FILE, {})
    assert list((tmp_path / "U").iterdir()) == []


def test_a_report_out_replaced_by_a_link_meanwhile_moves_nothing_of_its_target(tmp_path):
    """Every file of the link's target was moved into the new report (a home directory: all of it)."""
    out, user = tmp_path / "R6", tmp_path / "U6"
    user.mkdir()
    (user / "mine.txt").write_text("mine")
    out.mkdir()
    with pytest.raises(ValueError, match=r"was replaced \(by a link or another directory\) while this report"):
        with outdir.staged(out) as tmp:
            (tmp / "report.md").write_text("new")
            out.rename(tmp_path / "R6x")
            out.symlink_to(user)
    assert out.is_symlink() and [p.name for p in user.iterdir()] == ["mine.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------ round 22 (r22b): another's folder moved into a point under way


def test_a_folder_swapped_into_a_point_under_way_is_never_written_into(tmp_path):
    """The point's record and model replaced the user's files (exit 0): the point was checked only as it started."""
    point, user = tmp_path / "P2" / "energy_0.1", tmp_path / "U2"
    user.mkdir()
    (user / RESULTS_FILE).write_text("mine")
    with RunLock(tmp_path / "P2"), held_dirs.watched(point):
        atomic_torch_save({"epoch": 1}, point / "checkpoint.pt")
        point.rename(tmp_path / "P2_moved")
        user.rename(point)
        with pytest.raises(DirectoryGone, match=r"energy_0.1 was moved, removed or replaced while svdbench wrote"):
            write_json_atomic(point / RESULTS_FILE, {"status": "completed"})
    assert (point / RESULTS_FILE).read_text() == "mine" and held_dirs._folders == {}


# ------------------------------------------------ round 22 (r22a): a mistyped first PATH, step, --plan, remedies


def test_a_report_of_a_mistyped_first_path_makes_no_directory_there(tmp_path, capsys, monkeypatch):
    """The report was written into typo_dir/report, made with its parents, exit 0."""
    monkeypatch.chdir(tmp_path)
    record(tmp_path / "dd", "dense")
    assert cli.main(["report", "typo_dir", "dd"]) == 2
    assert "typo_dir: no such directory" in capsys.readouterr().err and not (tmp_path / "typo_dir").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["train"].update(step=None), "is at step None in all: not a position"),
    (lambda s: s["train"].update(history=5), "its history is not a list of epochs"),
    (lambda s: s["config"]["trainer"].update(lr=9.0), "another config"),
])  # fmt: skip
def test_a_cut_runs_damaged_checkpoint_is_one_line_in_the_run_and_in_its_plan(
    edit, message, tmp_path, capsys, run_py, kept_dense_run
):
    """The run ended in a TypeError traceback after 'resuming' (step None); --plan said it would resume a checkpoint
    the run refuses (another config, a history that is not a list)."""
    run, args = kept_dense_run(tmp_path / "c3")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    edit(state)
    torch.save(state, run / "checkpoint.pt")
    rec = json.loads((run / RESULTS_FILE).read_text())
    (run / RESULTS_FILE).write_text(json.dumps({**rec, "status": "running"}))
    assert message in refused(capsys, *args, "--plan")
    done = run_py(*args)
    assert done.returncode == 2 and message in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_the_latency_axis_remedy_names_the_figures_runs_have(tmp_path, capsys):
    """It said "time them with: svdbench latency DIR", which skips runs timed already ("has latency")."""
    timed = {"runs": {"pytorch-eager/cpu": {"deployed": {"1": {"median_ms": 1.0}}, "dense": {"1": {"median_ms": 2.0}}}}}
    record(tmp_path / "sv", latency=timed)
    with pytest.raises(ValueError):
        cli_report(tmp_path)
    err = capsys.readouterr().err
    assert "they have figures for --runtime pytorch-eager/cpu --batch 1" in err, err
    assert "time them with: svdbench latency DIR --force --onnx --batch-sizes 64" in err, err


def cli_report(tmp_path):
    return build_report([tmp_path / "sv"], tmp_path / "out", axis=latency_axis("onnxruntime/cpu", 64))


def test_a_hand_typed_shell_completion_query_is_one_line(capsys, monkeypatch):
    """Hydra's KeyError: 'COMP_LINE' traceback."""
    monkeypatch.delenv("COMP_LINE", raising=False)
    assert "is what the shell's completion calls" in refused(capsys, "-sc", "query=bash")


# ------------------------------------------------ round 23 (r23b): a sweep job's directory holding another's files


@pytest.mark.parametrize(
    "files", [{"results.json": '{"mine": 1}'}, {"deployed.json": '{"mine": 1}', "deployed.pt": "x"}]
)
def test_a_failure_is_never_recorded_over_or_beside_anothers_files(files, tmp_path):
    """The failure record replaced the user's results.json; beside the user's deployed model it made those the job's
    own, and the rerun replaced them."""
    sweep = tmp_path / "SO"
    job = sweep / "1"
    job.mkdir(parents=True)
    for name, text in files.items():
        (job / name).write_text(text)
    cfg = OmegaConf.create({"seed": 1, "model": {"name": "resnet8"}, "dataset": {"name": "synthetic"}})
    app.record_failure(cfg, fake_hydra(sweep, 1), job, "InputError: holds files not svdbench's", stage="input")
    assert {p.name: p.read_text() for p in job.iterdir()} == files
    assert len(load_runs([sweep])[1]) == 1  # recorded beside the jobs: the sweep's report counts it


@pytest.mark.parametrize("where", ["run.log", ".hydra/config.yaml", ".hydra"])
def test_a_link_where_hydra_writes_in_a_job_stops_the_sweep_before_hydra_writes(where, tmp_path, capsys, monkeypatch):
    """Hydra replaced the link's target with the job's config (or appended to it) before the job was refused."""
    job, user = tmp_path / "SO2" / "1", tmp_path / "U"
    user.mkdir()
    (user / "config.yaml").write_text("mine")
    (job / ".hydra").mkdir(parents=True, exist_ok=where != ".hydra")
    if where == ".hydra":
        (job / ".hydra").rmdir()
    (job / where).symlink_to(user if where == ".hydra" else user / "config.yaml")
    hc = OmegaConf.create({"mode": "MULTIRUN", "runtime": {"output_dir": str(job)}, "sweep": {"dir": str(job.parent)},
                           "output_subdir": ".hydra", "job": {"name": "run"}, "job_logging": {"handlers": {"file": {
                               "filename": "${hydra.runtime.output_dir}/${hydra.job.name}.log"}}}})  # fmt: skip
    monkeypatch.setattr(app.HydraConfig, "get", staticmethod(lambda: hc))
    monkeypatch.setattr(app, "RunMode", SimpleNamespace(MULTIRUN="MULTIRUN"))
    with pytest.raises(SystemExit) as stop:
        app.take_job_dir()
    assert stop.value.code == 2 and "is a link" in capsys.readouterr().err
    assert (user / "config.yaml").read_text() == "mine"


# ------------------------------------------------ round 23 (r23a): the latency axis's remedy on an edited record


@pytest.mark.parametrize("deployed", [5, True, {"1": 5}, ["1"]])
def test_the_latency_remedy_reads_an_edited_record_without_a_traceback(deployed, tmp_path, capsys):
    """A TypeError traceback ('int' object is not iterable); {"1": 5}, no figure, was offered as one."""
    record(tmp_path / "sv", latency={"runs": {"pytorch-eager/cpu": {"deployed": deployed, "dense": {"1": 2.0}}}})
    with pytest.raises(ValueError, match="the warning above says which figures they have and how to time them"):
        cli_report(tmp_path)
    err = capsys.readouterr().err
    assert (
        "they have figures" not in err and "time them with: svdbench latency DIR --force --onnx --batch-sizes 64" in err
    )


# ------------------------------------------------ round 24: failure records, Hydra's files, Optuna's, data sets


def test_a_failure_record_is_never_written_through_a_link_beside_the_jobs(tmp_path):
    sweep, user = tmp_path / "FA2", tmp_path / "UA2"
    (sweep / "1").mkdir(parents=True)
    (sweep / "1" / RESULTS_FILE).write_text('{"mine": 1}')
    (sweep / FAILED_JOBS).mkdir()
    user.mkdir()
    (sweep / FAILED_JOBS / "1").symlink_to(user)
    cfg = OmegaConf.create({"seed": 1, "model": {"name": "resnet8"}, "dataset": {"name": "synthetic"}})
    app.record_failure(cfg, fake_hydra(sweep, 1), sweep / "1", "InputError: not svdbench's", stage="input")
    assert list(user.iterdir()) == [] and (sweep / "1" / RESULTS_FILE).read_text() == '{"mine": 1}'


def test_a_users_yaml_where_hydra_writes_in_a_job_stops_the_sweep_and_is_kept(tmp_path, capsys, monkeypatch):
    job = tmp_path / "OL5" / "1"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "hydra.yaml").write_text("mine: hy\n")
    hc = OmegaConf.create({"mode": "MULTIRUN", "runtime": {"output_dir": str(job)}, "sweep": {"dir": str(job.parent)},
                           "output_subdir": ".hydra", "job": {"name": "run"}})  # fmt: skip
    monkeypatch.setattr(app.HydraConfig, "get", staticmethod(lambda: hc))
    monkeypatch.setattr(app, "RunMode", SimpleNamespace(MULTIRUN="MULTIRUN"))
    with pytest.raises(SystemExit) as stop:
        app.take_job_dir()
    assert stop.value.code == 2 and "holds .hydra/hydra.yaml, which no run of svdbench wrote" in capsys.readouterr().err
    assert (job / ".hydra" / "hydra.yaml").read_text() == "mine: hy\n"


@pytest.mark.parametrize("kind", ["link", "file"])
def test_optunas_results_file_in_a_sweep_directory_is_checked_before_any_work(kind, tmp_path):
    sweep = tmp_path / "MO2"
    sweep.mkdir()
    (tmp_path / "U").write_text("mine")
    if kind == "link":
        (sweep / "optimization_results.yaml").symlink_to(tmp_path / "U")
    else:
        (sweep / "optimization_results.yaml").write_text("mine: 1\n")
    with pytest.raises(InputError, match="optimization_results.yaml"):
        check_sweep_dir(sweep)
    (sweep / "optimization_results.yaml").unlink()
    (sweep / "optimization_results.yaml").write_text("name: optuna\nsolutions: []\n")  # a sweep's own, rerun
    check_sweep_dir(sweep)


@pytest.mark.parametrize("val", [("a", "c"), ("a", "b", "c", "zz")])
def test_imagenet_val_of_other_class_folders_is_refused(val, tmp_path, tiny_cfg):
    """Each tree numbered its own folders: val/c was scored as train's b (or a traceback for an extra class)."""
    root = imagenet_files(tmp_path / "inet", ("a", "b", "c"), per_class=1)
    shutil.rmtree(root / "val")
    for c in val:
        shutil.copytree(root / "train" / "a", root / "val" / c)
    with pytest.raises(DatasetError, match=r"train/ and val/ hold other class folders \((val|train) lacks"):
        imagenet_splits(SimpleNamespace(root=str(root), image_size=16, augment=False), 0)


def test_a_cifar_batch_of_float_images_is_refused_not_cut_to_bytes(tmp_path):
    path = tmp_path / "data_batch_1"
    data = np.random.default_rng(0).random((4, 3072)).astype(np.float32)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [0, 1, 2, 3]}))
    with pytest.raises(DatasetError, match=r"holds float32 values, not bytes 0\.\.255"):
        read_cifar_batch(path, b"labels")
