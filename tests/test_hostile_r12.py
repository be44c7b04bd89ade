"""Round 12 of the hostile pass (area r12b: files written, concurrency and interruption): Ctrl-C or SIGTERM while
a command composes and checks its jobs (F1: one line, nothing left), a sweep's failure record cleared by another
sweep's job of the same number (F2), job directories outside the sweep directory that the end-of-sweep report
reads (F3), and the empty directories of jobs an interrupted sweep never reached (F4); from area r12a, a timm
checkpoint_path (probed, resolved, rebuilt without it) and a report out of ``~/``. Round 13 after them: links to the
sweep directory, a checkpoint_path through a link, IDX images of another rank, ``--split`` by a group (r13a); latency
on a cut run, SIGTERM outside training, a busy log not put back, a kept job's .hydra (r13b)."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import ENV, ROOT, record, refused
from omegaconf import OmegaConf
from test_hostile_r10_writes import fake_hydra

from svdbench import app, cli, rundir
from svdbench.errors import Terminated
from svdbench.report.load import load_runs
from svdbench.rundir import FAILED_JOBS, RunLock

# --------------------------------------------- F1: interrupted while starting: one line, the locks taken let go


@pytest.mark.parametrize("interrupt, code, name", [(KeyboardInterrupt, 130, "SIGINT"), (Terminated, 143, "SIGTERM")])
def test_an_interrupt_while_the_jobs_are_checked_is_one_line_and_leaves_nothing(
    interrupt, code, name, tmp_path, monkeypatch, capsys
):
    """It was a 30-120 line traceback through app.start and preflight (which takes seconds for a large sweep)."""
    sweep = tmp_path / "sw"

    def preflight(argv):
        for num in range(3):  # the jobs' locks, taken ahead as preflight takes them, then the signal
            RunLock.hold(sweep / str(num))
        raise interrupt()

    monkeypatch.setattr(app, "preflight", preflight)
    with pytest.raises(SystemExit) as exit_:
        app.start(["run.py", "-m", "seed=1,2,3"])
    assert exit_.value.code == code
    assert capsys.readouterr().err == f"interrupted ({name}) while starting: nothing was run or written\n"
    assert not sweep.exists() and not RunLock._held


def test_sigterm_while_starting_raises_where_the_command_is(monkeypatch, capsys):
    def preflight(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the start")

    monkeypatch.setattr(app, "preflight", preflight)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        app.start(["run.py"])
    assert exit_.value.code == 143 and "interrupted (SIGTERM) while starting" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler before is put back


# ------------------------------------------ F2: a failure record belongs to its job's directory, not its number


def test_another_sweeps_job_of_the_same_number_neither_clears_nor_replaces_a_failure(tmp_path):
    sweep = tmp_path / "sw"
    first = record(sweep / "0", seed=5)  # job 0 of the first sweep: another config's completed run is there
    cfg = OmegaConf.create({"seed": 1, "model": {"name": "resnet8"}, "dataset": {"name": "synthetic"}})
    app.record_failure(cfg, fake_hydra(sweep, 0), first, "InputError: holds a completed run", stage="input")
    assert len(load_runs([sweep])[1]) == 1
    rundir.clear_failed_job(sweep, 0, sweep / "b0")  # a second sweep's job 0, in b0, starts: not its failure
    assert len(load_runs([sweep])[1]) == 1, "the first sweep's failure was cleared by another sweep's job 0"
    second = record(sweep / "b0", seed=6)
    app.record_failure(cfg, fake_hydra(sweep, 0), second, "InputError: holds a completed run", stage="input")
    failed = load_runs([sweep])[1]
    assert sorted(f.error.split(":")[0] for f in failed) == [f"job 0 in {first}", f"job 0 in {second}"]
    assert sorted(p.name for p in (sweep / FAILED_JOBS).iterdir())[0] == "0"  # the default subdir keeps its name
    rundir.clear_failed_job(sweep, 0, first)  # the first sweep's job 0 runs again: its own failure goes
    assert [f.error.split(":")[0] for f in load_runs([sweep])[1]] == [f"job 0 in {second}"]


# ---------------------------------------------------- F3: the jobs' directories inside the one the report reads


@pytest.mark.parametrize("subdir", ["ABS/${hydra.job.num}", "../elsewhere/${hydra.job.num}"])
def test_job_directories_outside_the_sweep_directory_are_refused_while_the_report_reads_it(
    subdir, tmp_path, capsys, tiny
):
    """Both jobs completed elsewhere, and the report then said "no usable results.json under <sweep dir>"."""
    subdir = subdir.replace("ABS", str(tmp_path / "abs"))
    err = refused(capsys, "-m", *tiny(), "seed=1,2", f"hydra.sweep.subdir={subdir}", f"hydra.sweep.dir={tmp_path}/sw")
    assert "job 0's directory" in err and f"lies outside the sweep directory {tmp_path / 'sw'}" in err, err
    assert "hydra.callbacks.report.enabled=false" in err


# -------------------------------------------- F4: an interrupted sweep leaves no directory for jobs never reached


def test_the_locks_taken_ahead_are_let_go_at_exit_with_the_empty_directories_they_made(tmp_path):
    """At exit the held locks were let go but the job directories made to take them stayed, empty."""
    code = (
        "import sys; from pathlib import Path; from svdbench.rundir import RunLock\n"
        "for n in range(3): RunLock.hold(Path(sys.argv[1]) / str(n))\n"
        "(Path(sys.argv[1]) / '0' / 'results.json').write_text('{}')  # job 0 ran: its directory stays\n"
    )
    sweep = tmp_path / "sw"
    sweep.mkdir()
    proc = subprocess.run([sys.executable, "-c", code, str(sweep)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["0"] and os.listdir(sweep / "0") == ["results.json"]


def test_an_interrupt_before_any_job_says_nothing_was_trained(monkeypatch, capsys):
    monkeypatch.setattr(app, "JOBS_STARTED", 0)
    monkeypatch.delenv(rundir.HOLDER_ENV, raising=False)

    def main():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        app.launch(main)
    assert exit_.value.code == 130 and "before the first job started: nothing was trained" in capsys.readouterr().err
    monkeypatch.setattr(app, "JOBS_STARTED", 1)
    with pytest.raises(SystemExit):
        app.launch(main)
    assert "the jobs that were training stopped (each resumes from its last epoch)" in capsys.readouterr().err


# --------------------------------------------- r12a F1, F2: a timm checkpoint_path of the data's shape, resolved


def _timm_weights(path, num_classes=10, in_chans=3):
    import timm
    import torch

    torch.save(timm.create_model("resnet10t", num_classes=num_classes, in_chans=in_chans).state_dict(), path)
    return path


def test_a_timm_checkpoint_of_the_datas_shape_is_planned_and_recorded_absolute(
    tmp_path, monkeypatch, compose_cfg, tiny
):
    """The preflight probe (2 classes, 1 channel, on the meta device) loaded the checkpoint: one that fits the data
    was refused after 80 torch warnings; a relative path was recorded as typed and read from the current directory."""
    import warnings

    from svdbench import preflight

    (tmp_path / "proj").mkdir()
    _timm_weights(tmp_path / "proj" / "w10.pt")
    monkeypatch.chdir(tmp_path / "proj")
    cfg = compose_cfg([*tiny("model"), "model=timm", "model.name=resnet10t", "+model.kwargs.checkpoint_path=w10.pt"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        planned = preflight.plan(cfg, base=str(tmp_path / "proj"))
    assert not [w for w in caught if "meta" in str(w.message)]
    assert planned.config["model"]["kwargs"]["checkpoint_path"] == str(tmp_path / "proj" / "w10.pt")


def test_a_relative_checkpoint_path_is_the_launch_directorys_and_a_missing_one_is_one_line(tmp_path, tiny_cfg):
    from svdbench.errors import InputError
    from svdbench.methods import METHODS
    from svdbench.plan import make_plan

    cfg = tiny_cfg()
    cfg.model.family, cfg.model.name, cfg.model.kwargs = "timm", "resnet10t", {"checkpoint_path": "w.pt"}
    with pytest.raises(InputError, match=rf"^model.kwargs.checkpoint_path: cannot read {tmp_path}/w.pt \("):
        make_plan(cfg, METHODS.get("dense").create(), base=tmp_path)
    cfg.model.kwargs = {"checkpoint_path": ""}  # timm's "no checkpoint"
    make_plan(cfg, METHODS.get("dense").create(), base=tmp_path)


def test_a_model_rebuilt_for_its_own_weights_does_not_read_the_start_checkpoint(tmp_path):
    """``svdbench latency`` (and a deployed model rebuilt) loaded the timm checkpoint first: "cannot read w21.pt"
    from any other directory, though its weights are replaced at once."""
    from svdbench.models import build_from_config

    model = {"family": "timm", "name": "resnet10t", "kwargs": {"checkpoint_path": str(tmp_path / "gone.pt")}}
    assert build_from_config(model, 10, 3, weights=False).fc.out_features == 10


# ----------------------------------------------------------------- r12a F3: the sweep's report out of ~/...


def test_a_sweep_reports_out_starting_with_a_tilde_is_the_home_directorys(tmp_path, monkeypatch):
    from svdbench.sweep_report import ReportAtEnd

    monkeypatch.setenv("HOME", str(tmp_path))
    assert f"--out={tmp_path}/rep" in ReportAtEnd(out="~/rep").command(tmp_path / "sw")
    from svdbench.sweep_settings import check_report_out

    with pytest.raises(SystemExit):  # read as the report will read it: the sweep directory itself
        check_report_out(OmegaConf.create({"out": "~/sw"}), str(tmp_path / "sw"))


@pytest.mark.slow
def test_a_sweep_rerun_leaves_a_kept_jobs_recorded_config_and_log_as_they_were(tmp_path, run_py, tiny):
    """A job whose directory holds a completed run of its config is kept; Hydra had rewritten its .hydra/*.yaml
    (with the new launch's directory) and appended to its log all the same."""
    sweep = tmp_path / "sw"
    first = run_py("-m", *tiny(), "seed=1", f"hydra.sweep.dir={sweep}", "hydra.callbacks.report.enabled=false")
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p.relative_to(sweep): p.read_bytes() for p in (sweep / "0").rglob("*") if p.is_file()}
    (tmp_path / "elsewhere").mkdir()
    again = run_py(
        "-m", *tiny(), "seed=1", f"hydra.sweep.dir={sweep}", "hydra.callbacks.report.enabled=false",
        cwd=tmp_path / "elsewhere",
    )  # fmt: skip
    assert again.returncode == 0 and "already holds a completed run" in again.stderr + again.stdout
    after = {p.relative_to(sweep): p.read_bytes() for p in (sweep / "0").rglob("*") if p.is_file()}
    assert after == before


# ------------------------------------------------------------ round 13 (r13a): links, recorded paths, data, --split


def test_an_end_of_sweep_report_reached_through_a_link_is_refused_as_the_job_directory(tmp_path):
    """``out=<link to the sweep>/0`` escaped the check (abspath), and the report failed after every job."""
    from svdbench.sweep_settings import check_report_out

    (tmp_path / "sw").mkdir()
    (tmp_path / "sl").symlink_to(tmp_path / "sw")
    with pytest.raises(SystemExit):
        check_report_out(OmegaConf.create({"out": str(tmp_path / "sl" / "0")}), str(tmp_path / "sw"),
                         [("job 0's directory", tmp_path / "sw" / "0")])  # fmt: skip


def test_a_checkpoint_path_through_a_link_is_the_same_start(tmp_path):
    from svdbench.checkpoint import resume_key

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "w.pt").write_bytes(b"x")
    (tmp_path / "plink").symlink_to(tmp_path / "proj")

    def key(path):
        return resume_key(
            {"model": {"family": "timm", "name": "resnet10t", "kwargs": {"checkpoint_path": path}}}, "dense"
        )

    assert key(str(tmp_path / "plink" / "w.pt")) == key(str(tmp_path / "proj" / "w.pt"))


@pytest.mark.parametrize("shape", [(4, 784), (4, 3, 28, 28)])
def test_fashion_mnist_images_that_are_not_n_h_w_name_their_shape(shape, tmp_path):
    import gzip

    import numpy as np

    from svdbench.data.files import FASHION_FILES, load_fashion_mnist
    from svdbench.errors import DatasetError

    def idx(name, dims):
        header = bytes([0, 0, 8, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as f:
            f.write(header + np.zeros(int(np.prod(dims)), np.uint8).tobytes())

    for key, name in FASHION_FILES.items():
        idx(name, shape if "images" in key else (4,))
    what = " x ".join(map(str, shape))
    with pytest.raises(DatasetError, match=rf"images-idx3-ubyte.gz: images of {what}, not N x H x W \(grey images\)$"):
        load_fashion_mnist(str(tmp_path), download=False)


def test_split_by_a_group_of_keys_names_one_of_its_keys(tmp_path):
    from svdbench.report.load import LoadedRun
    from svdbench.report.rows import split_methods
    from svdbench.results import RunRecord

    rec = RunRecord(method="svd", model="m", dataset="d", seed=0, config={}, status="completed")
    runs = [LoadedRun(tmp_path / "results.json", rec, {"method.decomposition": "channel", "model.name": "m"})]
    with pytest.raises(
        ValueError, match=r"^--split method: a group of keys, not a value; give one of its keys \(e.g. "
    ):
        split_methods(runs, ["method"])


# ------------------------------------------------- round 13 (r13b): latency on a cut run, SIGTERM, a busy log


def test_latency_skips_a_run_whose_operating_points_are_pending(tmp_path):
    """A resume rewrites results.json whole: the latency recorded on the cut run was lost, without a word."""
    import argparse
    import json

    from svdbench.retime import _retime

    rec = record(tmp_path / "run", operating_points=[{"label": "energy_0.1", "status": "pending"}])
    args = argparse.Namespace(force=False, trust=False)
    why = _retime(rec / "results.json", args)
    assert why.startswith("skipped (operating points pending: energy_0.1; rerun the run to make them")
    assert json.loads((rec / "results.json").read_text()).get("latency") is None


def test_sigterm_outside_training_is_one_line_exit_143_and_lets_go_of_the_locks(monkeypatch, capsys):
    """It killed the process silently (Python's default), leaving the locks of the jobs not reached."""
    monkeypatch.setattr(app, "JOBS_STARTED", 1)

    def main():
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not reach the command")

    with pytest.raises(SystemExit) as exit_:
        app.launch(main)
    assert exit_.value.code == 143 and "interrupted (SIGTERM): the jobs that were training" in capsys.readouterr().err


def test_a_training_stage_stopped_by_sigterm_does_not_hand_it_on_to_svdbenchs_own_handler():
    from svdbench.checkpoint import PreemptionGuard
    from svdbench.errors import sigterm_raises

    with sigterm_raises(), PreemptionGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard()
        guard.chain()  # a submitit handler would be called; svdbench's raising one is not (the stage stopped)


def test_a_lock_held_by_another_process_is_held_elsewhere_and_ones_own_is_not(tmp_path):
    code = "import sys,time; from pathlib import Path; from svdbench.rundir import RunLock\n" \
           "lock = RunLock(Path(sys.argv[1])).__enter__(); print('held', flush=True); time.sleep(30)\n"  # fmt: skip
    (tmp_path / "other").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "other")], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "held"
        assert RunLock.held_elsewhere(tmp_path / "other")
    finally:
        proc.kill()
        proc.wait()
    assert not RunLock.held_elsewhere(tmp_path / "other")
    RunLock.hold(tmp_path / "mine")
    try:
        assert not RunLock.held_elsewhere(tmp_path / "mine")
    finally:
        RunLock.release_held(remove_made=True)


# ----------------------------------------- round 14 (r14a): links to the run's own directory, --, points, presets


def test_a_start_reached_through_a_link_to_the_runs_own_directory_is_refused(tmp_path, capsys, tiny):
    """Compared as written (abspath), a link to the run directory passed: with resume=false the run removed the
    very dense.pt (or, for scratch, the source run: the same check of method.architecture_from) it started from."""
    record(tmp_path / "d", method="dense")
    (tmp_path / "dl").symlink_to(tmp_path / "d")
    err = refused(capsys, *tiny(), "method=l1_filter", "method.speedup=2", f"init_from={tmp_path / 'dl'}",
                  f"hydra.run.dir={tmp_path / 'd'}", "resume=false")  # fmt: skip
    assert "lies in this run's own directory" in err, err
    assert (tmp_path / "d" / "results.json").exists()


def test_a_single_run_never_replaces_another_runs_operating_point(tmp_path, capsys, tiny):
    point = record(tmp_path / "a" / "energy_0.1", point_of=str(tmp_path / "a"))
    err = refused(capsys, *tiny(), "method=dense", f"hydra.run.dir={point}", "resume=false")
    assert f"{point} is an operating point of the run in {tmp_path / 'a'}: a run never replaces" in err, err


def test_a_preset_that_is_a_sweep_takes_a_swept_override_without_dash_m(tmp_path, capsys, tiny):
    """``+sweep=svd_energies seed=1,2`` was "Ambiguous value for argument 'seed=1,2'": the mode check composed the
    swept value as one run's."""
    from svdbench import preflight

    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", "+sweep=svd_energies", *tiny(), "seed=1,2", f"hydra.sweep.dir={tmp_path}/s",
                             "--plan"])  # fmt: skip
    assert stop.value.code == 0 and "sweep of 16 jobs" in capsys.readouterr().out


def test_a_double_dash_ends_the_options_as_for_hydras_argparse(capsys):
    from svdbench.command_line import parse_command_line

    assert parse_command_line(["--plan", "--", "seed=1", "+debug=tiny"]).overrides == ["seed=1", "+debug=tiny"]
    with pytest.raises(SystemExit):
        parse_command_line(["--", "seed=1", "--plan"])
    assert "--plan: an option after --, where only overrides go" in capsys.readouterr().err


def test_report_out_naming_the_current_directory_through_a_link_is_refused(tmp_path, monkeypatch):
    from svdbench.report.outdir import check_out

    (tmp_path / "real" / "rep").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path / "link" / "rep")  # getcwd() is the physical path
    with pytest.raises(ValueError, match="is the current directory or holds it"):
        check_out(tmp_path / "link" / "rep")


# -------------------------------------------- round 14 (r14b): a kept checkpoint, failed points, SIGUSR1/SIGUSR2


def test_a_completed_run_that_keeps_its_checkpoint_on_purpose_is_completed(tmp_path):
    from svdbench.checkpoint import CHECKPOINT, RunCheckpoints

    run = record(tmp_path / "run", config={"keep_checkpoints": True, "seed": 0})
    (run / CHECKPOINT).write_bytes(b"x")
    assert RunCheckpoints(run, {"keep_checkpoints": False, "seed": 0}, "svd").completed() is not None
    cut = record(tmp_path / "cut", config={"keep_checkpoints": False, "seed": 0})
    (cut / CHECKPOINT).write_bytes(b"x")
    assert RunCheckpoints(cut, {"keep_checkpoints": False, "seed": 0}, "svd").completed() is None


def test_latency_skips_a_run_whose_failed_points_a_rerun_makes_again(tmp_path):
    import argparse

    from svdbench.retime import _retime

    rec = record(tmp_path / "run", operating_points=[{"label": "energy_0.1", "status": "failed"}])
    why = _retime(rec / "results.json", argparse.Namespace(force=False, trust=False))
    assert why.startswith("skipped (operating points failed: energy_0.1; rerun the run to make them")


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2])
def test_sigusr_outside_training_is_one_line_and_exit_128_plus_it(signum, monkeypatch, capsys):
    monkeypatch.setattr(app, "JOBS_STARTED", 0)
    monkeypatch.delenv(rundir.HOLDER_ENV, raising=False)

    def main():
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal did not reach the command")

    with pytest.raises(SystemExit) as exit_:
        app.launch(main)
    name = signal.Signals(signum).name
    assert exit_.value.code == 128 + signum and f"interrupted ({name}) before the first job" in capsys.readouterr().err


# ------------------------------ round 15 (r15a): '..' after a link, a pending point taken, the other mode's dir


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_directory_with_dotdot_after_a_link_is_refused(key, tmp_path, capsys, tiny):
    """The lock went where the system resolves it, Hydra's files and the checks where the path reads as written:
    a traceback, a lock left behind, and two runs at once in one directory."""
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "lk").symlink_to(tmp_path / "data" / "deep")
    sweep = ["-m", "seed=1,2"] if key == "hydra.sweep.dir" else []
    err = refused(capsys, *sweep, *tiny(), f"{key}={tmp_path}/lk/../zz")
    assert f"has a '..' after a link, which is {tmp_path}/data/zz" in err, err
    assert not (tmp_path / "data" / "zz").exists() and not (tmp_path / "zz").exists()


def test_report_out_with_dotdot_after_a_link_is_refused(tmp_path):
    from svdbench.report.outdir import check_out

    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "lk").symlink_to(tmp_path / "data" / "deep")
    with pytest.raises(ValueError, match=r"has a '\.\.' after a link"):
        check_out(tmp_path / "lk" / ".." / "rep")
    check_out(tmp_path / "data" / "deep" / ".." / "rep")  # no link: one place


def test_a_run_into_another_runs_pending_point_is_refused(tmp_path, capsys, tiny):
    """Taken, that point could never be made: the cut run's rerun was refused for good."""
    run = record(tmp_path / "p", operating_points=[{"label": "energy_0.3", "status": "pending"}])
    err = refused(capsys, *tiny(), "method=dense", f"hydra.run.dir={run / 'energy_0.3'}")
    assert f"is an operating point of the run in {run}" in err, err


@pytest.mark.parametrize(
    "args, warned",
    [
        (["+sweep=dense", "hydra.run.dir=RUN"], "hydra.run.dir is ignored: this command is a sweep"),
        (["hydra.sweep.dir=RUN"], "hydra.sweep.dir is ignored: this command is a single run"),
    ],
)
def test_the_other_modes_directory_is_a_warning(args, warned, tmp_path, capsys, tiny):
    from svdbench import preflight

    args = [a.replace("RUN", str(tmp_path / "x")) for a in args]
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", *args, *tiny(), "--plan"])
    assert stop.value.code == 0 and warned in capsys.readouterr().err


def test_the_plan_of_a_small_sampled_sweep_shows_no_more_jobs_than_it_has(tmp_path, capsys, tiny):
    from svdbench import preflight

    with pytest.raises(SystemExit):
        preflight.preflight(["run.py", "+sweep=optuna_pareto", *tiny(), "hydra.sweeper.n_trials=1",
                             f"hydra.sweep.dir={tmp_path}/o", "--plan"])  # fmt: skip
    out = capsys.readouterr().out
    assert "sweep of 1 job" in out and f"{tmp_path}/o/4" not in out and f"{tmp_path}/o/1" not in out, out


# --------------------------------------- round 16 (r16a): paths read with '..' after a link, as the system does


def test_a_path_with_dotdot_after_a_link_is_where_the_system_finds_it(tmp_path):
    from svdbench.paths import absolute

    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "lk").symlink_to(tmp_path / "data" / "deep")
    assert absolute("lk/../dd", tmp_path) == str(tmp_path / "data" / "dd")  # abspath said tmp_path/dd
    assert absolute("lk/x", tmp_path) == str(tmp_path / "lk" / "x")  # no '..': a link stays as given


def test_init_from_with_dotdot_after_a_link_starts_from_the_run_the_system_finds(tmp_path, tiny_cfg):
    """Two dense runs, tmp/dd and tmp/data/dd: ``init_from=lk/../dd`` silently started from tmp/dd."""
    from svdbench.methods import METHODS
    from svdbench.plan import make_plan

    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "lk").symlink_to(tmp_path / "data" / "deep")
    plan = make_plan(tiny_cfg(init_from="lk/../dd"), METHODS.get("l1_filter").create(speedup=2.0), base=tmp_path)
    assert plan.init_from == tmp_path / "data" / "dd" and plan.config["init_from"] == str(tmp_path / "data" / "dd")


def test_a_record_written_through_dotdot_after_a_link_makes_its_temporary_file_beside_it(tmp_path, monkeypatch):
    """mkstemp normalised its directory as text: the temporary file went into another (or no) directory."""
    import tempfile

    from svdbench.results import write_json_atomic

    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "a").mkdir()
    (tmp_path / "lk").symlink_to(tmp_path / "data" / "deep")
    made = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        made.append(kwargs["dir"])
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    write_json_atomic(tmp_path / "lk" / ".." / "a" / "results.json", {"x": 1})
    assert made == [str(tmp_path / "data" / "a")] and (tmp_path / "data" / "a" / "results.json").exists()


# ------------------------------------ round 16 (r16b): another run's completed point, a job of no varying override


def test_a_run_of_another_config_into_a_completed_point_is_told_it_is_a_point(tmp_path, capsys, tiny):
    """It was told "resume=false to replace it", which was then refused."""
    point = record(tmp_path / "q" / "energy_0.1", point_of=str(tmp_path / "q"))
    err = refused(capsys, *tiny(), "method=dense", f"hydra.run.dir={point}")
    assert f"is an operating point of the run in {tmp_path / 'q'}" in err and "resume=false" not in err, err


def test_a_job_of_no_varying_override_is_named_without_empty_brackets(tmp_path, capsys, tiny):
    record(tmp_path / "se" / "0", method="dense", seed=7)
    err = refused(capsys, "-m", *tiny(), "seed=1", f"hydra.sweep.dir={tmp_path / 'se'}")
    assert err.startswith("config error: job 0: ") and "()" not in err, err


# ---------------------- round 17 (r17a): --config-dir through '..', edited ratios, a pickled dense.pt, 1e308 s


def test_a_config_dir_with_dotdot_after_a_link_is_refused(tmp_path, capsys, tiny):
    """Hydra read it as text (another folder than the system's): a silently other config, or a refusal."""
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "myconf").mkdir()
    (tmp_path / "lk").symlink_to(tmp_path / "data" / "deep")
    err = refused(capsys, "--config-dir", f"{tmp_path}/lk/../myconf", *tiny())
    assert "has a '..' after a link" in err and "for Hydra" in err, err


def test_a_reports_speedup_and_compression_come_from_the_counts(tmp_path):
    from svdbench.report.load import load_runs
    from svdbench.report.rows import group_rows

    record(tmp_path / "r", macs=500, speedup=10.0, compression=7.0)  # edited: 1000 / 500 MACs is 2x
    runs, _, _ = load_runs([tmp_path])
    row = group_rows(runs)[0]
    assert row.stats["speedup_mean"] == 2.0 and row.stats["compression_mean"] == 2.0


def test_a_pickled_dense_pt_is_one_line_without_torchs_warning(tmp_path, recwarn):
    import pickle

    from svdbench.dense_start import read_dense_state
    from svdbench.errors import InputError

    (tmp_path / "dense.pt").write_bytes(pickle.dumps({"w": 1}, protocol=4))
    with pytest.raises(InputError, match="init_from: cannot read"):
        read_dense_state(tmp_path / "dense.pt")
    assert not [w for w in recwarn if "pickle" in str(w.message).lower()]


def test_latency_refuses_an_absurd_time_budget_when_parsing(capsys):
    from svdbench import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["latency", "x", "--max-seconds", "1e308"])
    assert stop.value.code == 2 and "--max-seconds" in capsys.readouterr().err


# ----------------------------------------- round 17 (r17b): a signal raised where Python drops the exception


def test_a_signal_dropped_inside_a_weakref_callback_still_ends_the_command(monkeypatch, capsys):
    """SIGTERM landing in a finaliser: Python printed "Exception ignored ... Terminated" and the sweep exited 0."""
    import weakref

    monkeypatch.setattr(app, "JOBS_STARTED", 1)

    class Thing:
        pass

    def main():
        thing = Thing()
        weakref.finalize(thing, os.kill, os.getpid(), signal.SIGTERM)  # the handler raises inside the finaliser
        del thing

    with pytest.raises(SystemExit) as exit_:
        app.launch(main)
    err = capsys.readouterr().err
    assert exit_.value.code == 143 and "interrupted (SIGTERM)" in err and "Exception ignored" not in err, err


# ------------------------------------ round 18 (r18b): a file of a checkpoint's name in a new run directory


@pytest.mark.parametrize("name", ["checkpoint.pt", "stage_train.pt"])
@pytest.mark.parametrize("sweep", [False, True])
def test_a_non_checkpoint_at_a_checkpoints_name_is_one_line_and_kept(name, sweep, tmp_path, capsys, tiny):
    """It was a CheckpointError traceback through preflight (exit code 1)."""
    where = tmp_path / "sw" / "0" if sweep else tmp_path / "G"
    where.mkdir(parents=True)
    (where / name).write_text("mine")
    args = ["-m", "seed=1", f"hydra.sweep.dir={tmp_path / 'sw'}"] if sweep else [f"hydra.run.dir={where}"]
    err = refused(capsys, *args, *tiny())
    assert f"{name} is corrupt or truncated" in err and (where / name).read_text() == "mine", err


def test_report_wandb_settings_without_wandb_are_refused(capsys):
    assert cli.main(["report", "x", "--project", "foo"]) == 2
    assert "--project goes with --wandb" in capsys.readouterr().err


def test_a_fifo_dense_pt_is_not_a_regular_file_not_missing(tmp_path, capsys, tiny):
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "dense.pt")
    err = refused(capsys, *tiny(), "method=l1_filter", "method.speedup=2", f"init_from={tmp_path / 'd'}",
                  f"hydra.run.dir={tmp_path / 'r'}")  # fmt: skip
    assert "not a regular file" in err and "no dense checkpoint" not in err, err


# --------------------------------- round 18, the rest: --plan with Hydra's printing options, deployed.json not a file


@pytest.mark.parametrize(
    "args, printing",
    [(["--plan", "--help"], "--help"), (["--plan", "--version"], "--version"), (["--cfg", "hydra", "--pla"],
     "--cfg hydra"), (["--cfg=all", "--plan"], "--cfg all"), (["--info", "searchpath", "--plan"], "--info")],
)  # fmt: skip
def test_plan_with_a_hydra_option_that_prints_is_one_line(args, printing, capsys):
    """It was Hydra's 8-line usage ending "unrecognized arguments: --plan", or --plan dropped without a word."""
    err = refused(capsys, *args, "+debug=tiny")
    assert err == f"config error: --plan does not go with {printing}: each prints and runs nothing; give one of them"


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_deployed_json_that_is_not_a_regular_file_is_said_so(kind, tmp_path, capsys):
    """latency said "no deployed.json (the run was made with save_model=false)"."""
    rec = record(tmp_path / "run")
    made = os.mkfifo if kind == "fifo" else os.mkdir
    made(rec / "deployed.json")
    assert cli.main(["latency", str(rec), "--max-seconds", "0.01"]) == 1
    out = capsys.readouterr().out
    assert "deployed.json cannot be read: not a regular file" in out and "save_model=false" not in out, out
