"""Reliability, round 10 (r10b: files written, concurrency and interruption; a hostile pass). Each case here
failed before its fix: a sweep job nested in another's directory or operating point (F1), Hydra's output folder
named as a file svdbench writes (F2), a full disk while the lock is taken (F3), a run cut during its operating
points reported as whole (F4), the end-of-sweep report's directory checked only after the sweep (F5), a report
rerun resetting its directory's permissions (F6), "recorded in results.json" where nothing was recorded (F7), a
copied run's summary naming the original's model (F9) and Ctrl-C while run.py imports (F8)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ENV, ROOT, record, refused
from omegaconf import OmegaConf

from svdbench import app, preflight, rundir
from svdbench.errors import InputError
from svdbench.report import build as build_module
from svdbench.report import build_report
from svdbench.report.load import load_runs
from svdbench.results import RESULTS_FILE, read_results
from svdbench.rundir import LOCK, RunLock
from svdbench.summary import summary


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


# ------------------------------------------------------------------ F1: a sweep's jobs never nest


@pytest.mark.parametrize(
    ("roots", "inner", "where"),
    [
        ("x,x/energy_0.1", 1, "inside the operating point energy_0.1 of job 0"),
        ("x/energy_0.1,x", 0, "inside the operating point energy_0.1 of job 1"),
        ("x,x/sub/deeper", 1, "inside the directory of job 0"),
    ],
)
def test_a_sweep_job_inside_another_jobs_directory_or_point_is_refused_before_it_starts(
    tmp_path, capsys, tiny, roots, inner, where
):
    err = refused(capsys, "-m", *tiny(), "method=svd", "method.energies=[0.1]", f"dataset.root={roots}",
                  "hydra.sweep.subdir=${dataset.root}", f"hydra.sweep.dir={tmp_path}/nest")  # fmt: skip
    assert f"job {inner} (" in err and where in err, err
    assert not (tmp_path / "nest").exists()


def fake_hydra(sweep: Path, num: int):
    return SimpleNamespace(
        sweep=SimpleNamespace(dir=str(sweep)),
        job=SimpleNamespace(num=num),
        runtime=SimpleNamespace(choices={"method": "svd"}),
        overrides=SimpleNamespace(task=[f"seed={num}"]),
    )


def test_a_job_refused_when_it_starts_is_a_failed_job_of_the_sweeps_report(tmp_path):
    sweep = tmp_path / "sw"
    record(sweep / "0", seed=0)
    record(sweep / "x", seed=1, operating_points=[{"label": "energy_0.1", "status": "completed"}])
    other = record(sweep / "x" / "energy_0.1", seed=1, point_of=str(sweep / "x"))  # another job's point
    before = (other / RESULTS_FILE).read_bytes()
    cfg = OmegaConf.create({"seed": 1, "model": {"name": "resnet8"}, "dataset": {"name": "synthetic"}})
    app.record_failure(cfg, fake_hydra(sweep, 1), other, "InputError: holds a completed run", stage="input")
    assert (other / RESULTS_FILE).read_bytes() == before  # a finished result is never replaced
    runs, failed, _ = load_runs([sweep])
    assert len(failed) == 1 and f"job 1 in {other}" in failed[0].error  # the sweep's report counts it
    assert len(runs) == 3
    rundir.clear_failed_job(sweep, 1, other)  # the job runs again: its old failure goes
    assert load_runs([sweep])[1] == [] and not (sweep / rundir.FAILED_JOBS).exists()


@pytest.mark.slow
def test_a_nested_sweep_writes_nothing_into_another_jobs_point(tmp_path, run_py, tiny):
    proc = run_py("-m", *tiny(), "method=svd", "method.energies=[0.1]", "dataset.root=x,x/energy_0.1",
                  "hydra.sweep.subdir=${dataset.root}", f"hydra.sweep.dir={tmp_path}/nest", timeout=200)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "nest").exists()


# ------------------------------------------------------------------ F2: Hydra's output folder takes no name of ours


@pytest.mark.parametrize(
    "name",
    [
        "results.json",
        "run.log",
        "checkpoint.pt",
        "deployed.pt",
        "deployed.json",
        LOCK,
        "dense.pt",
        "stage_train.pt",
        "energy_0.1",
    ],  # fmt: skip
)
def test_an_output_subdir_named_as_a_file_svdbench_writes_is_refused(tmp_path, capsys, tiny, name):
    run = tmp_path / "r"
    err = refused(capsys, *tiny(), "method=svd", "method.energies=[0.1]", "save_model=true", f"hydra.run.dir={run}",
                  f"hydra.output_subdir={name}")  # fmt: skip
    assert f"hydra.output_subdir={name} is " in err
    assert not run.exists()


def test_an_output_subdir_of_its_own_name_is_accepted(tmp_path, capsys, tiny):
    try:
        preflight.preflight(["run.py", *tiny(), f"hydra.run.dir={tmp_path}/r", "hydra.output_subdir=meta"])
    finally:
        RunLock.release_held(remove_made=True)


# ------------------------------------------------------------------ F3: a full disk while the lock is taken


def test_a_lock_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "ftruncate", full_disk)
    where = tmp_path / "new" / "run"
    with pytest.raises(InputError, match=rf"{where / LOCK} cannot be written \(No space left on device\)"):
        RunLock(where).__enter__()
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("sweep", [False, True])
def test_a_full_disk_at_the_start_is_one_line_and_leaves_nothing(tmp_path, capsys, tiny, monkeypatch, sweep):
    monkeypatch.setattr(os, "ftruncate", full_disk)
    where = tmp_path / "d" / "r"
    args = (
        ["-m", *tiny(), "method=svd,trp", f"hydra.sweep.dir={where}"] if sweep else [*tiny(), f"hydra.run.dir={where}"]
    )
    err = refused(capsys, *args)
    assert "cannot be written (No space left on device)" in err and LOCK in err
    assert not (tmp_path / "d").exists()


def test_a_report_on_a_full_disk_removes_what_it_made_and_claims_no_previous_report(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(build_module, "write_files", full_disk)
    out = tmp_path / "n1" / "n2" / "rep"
    with pytest.raises(OSError) as err:
        build_report([runs], out)
    assert "No space left on device" in str(err.value) and "previous" not in str(err.value)
    assert not (tmp_path / "n1").exists()
    monkeypatch.undo()
    build_report([runs], out)  # a report there now: the next failure says it is kept
    monkeypatch.setattr(build_module, "write_files", full_disk)
    with pytest.raises(OSError, match="the previous one there is unchanged"):
        build_report([runs], out)
    assert (out / "summary.json").is_file()


def test_a_report_lock_on_a_full_disk_is_one_line_and_leaves_nothing(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "ftruncate", full_disk)
    with pytest.raises(ValueError, match=r"\.lock cannot be written \(No space left on device\)"):
        build_report([runs], tmp_path / "n1" / "rep")
    assert not (tmp_path / "n1").exists()


def mounted_full(path: Path):
    """A full 2 MiB tmpfs at ``path`` (skip where it cannot be mounted: not root, no mount)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    subprocess.run(["dd", "if=/dev/zero", f"of={path}/fill", "bs=64k"], capture_output=True)


@pytest.mark.slow
def test_a_run_and_a_report_on_a_really_full_disk(tmp_path, run_py, tiny, runs):
    disk = tmp_path / "m"
    mounted_full(disk)
    try:
        proc = run_py(*tiny(), f"hydra.run.dir={disk}/r", timeout=120)
        assert proc.returncode == 2 and "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
        rep = subprocess.run([sys.executable, "-m", "svdbench.cli", "report", str(runs), "--out", f"{disk}/n1/rep"],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert rep.returncode == 2 and "previous" not in rep.stderr and "\n" not in rep.stderr.strip()
        assert sorted(p.name for p in disk.iterdir()) == ["fill"]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# ------------------------------------------------------------------ F4: a run cut during its points is not whole


def test_a_run_cut_during_its_operating_points_is_reported_incomplete(tmp_path, capsys):
    src = tmp_path / "runs"
    record(src / "d0", "dense", 0, 90.0, 1000)
    pending = [{"label": "energy_0.1", "status": "pending"}, {"label": "energy_0.2", "status": "pending"}]
    cut = record(src / "cut", operating_points=pending)
    record(cut / "energy_0.1", top1=80.0, macs=300, point_of=str(cut))  # made before the cut
    runs, failed, skipped = load_runs([src])
    err = capsys.readouterr().err
    assert [r.path.parent.name for r in runs] == ["d0"] and not failed
    assert "1 of 2 operating points pending (energy_0.2)" in err and "rerun it to finish them" in err
    assert {p.parent for p, _ in skipped} == {cut, cut / "energy_0.1"}
    (cut / "energy_0.2").mkdir()
    record(cut / "energy_0.2", top1=70.0, macs=200, point_of=str(cut))  # the resumed run finished it
    assert len(load_runs([src])[0]) == 4  # d0, the run and its two points


# ------------------------------------------------------------------ F5: the sweep's report directory, before the sweep


@pytest.mark.parametrize("kind", ["notes", "file", "link"])
def test_the_sweeps_report_directory_is_checked_before_the_first_job(tmp_path, capsys, tiny, kind):
    sweep = tmp_path / "sr"
    out = sweep / "report"
    extra = []
    if kind == "notes":
        out.mkdir(parents=True)
        (out / "notes.txt").write_text("mine")
    elif kind == "file":
        (tmp_path / "afile").write_text("mine")
        extra = [f"+hydra.callbacks.report.out={tmp_path}/afile"]
    else:
        (tmp_path / "mine").mkdir()
        sweep.mkdir()
        out.symlink_to(tmp_path / "mine")
    err = refused(capsys, "-m", *tiny(), "seed=1,2", f"hydra.sweep.dir={sweep}", *extra)
    assert "hydra.callbacks.report" in err
    assert {"notes": "holds files and no report", "file": "is a file", "link": "is a link"}[kind] in err
    assert not (sweep / "0").exists()
    if kind == "notes":
        assert (out / "notes.txt").read_text() == "mine"


def test_a_disabled_sweep_report_is_not_checked(tmp_path, capsys, tiny):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(
            ["run.py", "-m", *tiny(), "seed=1,2", f"hydra.sweep.dir={tmp_path}/sr",
             "hydra.callbacks.report.enabled=false", f"+hydra.callbacks.report.out={tmp_path}/afile", "--plan"]
        )  # fmt: skip
    assert stop.value.code == 0


# ------------------------------------------------------------------ F6: a report rerun keeps its directory's mode


def test_a_report_rerun_keeps_the_directorys_mode_group_and_setgid(runs, tmp_path):
    out = tmp_path / "P2"
    build_report([runs], out)
    gid = os.getgid()
    if os.geteuid() == 0:
        gid = 1  # another group (daemon on most systems): root may give it
        os.chown(out, -1, gid)
    os.chmod(out, 0o2770)
    (out / "note.txt").write_text("secret")
    build_report([runs], out)
    st = out.stat()
    assert oct(st.st_mode & 0o7777) == oct(0o2770) and st.st_gid == gid
    assert (out / "note.txt").read_text() == "secret"


# ------------------------------------------------------------------ F7: "recorded in" only when it was


def test_a_failure_that_could_not_be_recorded_is_not_said_to_be(tmp_path):
    path = record(tmp_path / "r", status="running") / RESULTS_FILE
    note = app.failure_note(path)
    assert "recorded in" not in note and "could not be recorded" in note and "running" in note
    data = read_results(path)
    path.write_text(json.dumps({**data, "status": "failed", "error": "OSError: disk full"}))
    assert app.failure_note(path) == f" (recorded in {path})"
    assert app.failure_note(tmp_path / "none" / RESULTS_FILE) == ""


# ------------------------------------------------------------------ F9: a moved run's summary names its own model


def test_a_moved_runs_summary_names_its_own_model(tmp_path):
    results = {"method": "svd", "model": "resnet8", "dataset": "synthetic", "wall_time": {"total": 1.0}, "top1": 80.0,
               "macs": 5e5, "macs_dense": 1e6, "speedup": 2.0, "params": 1e3, "params_dense": 2e3,
               "model_path": "/elsewhere/a/deployed.json"}  # fmt: skip
    text = summary(results, tmp_path / "amoved")
    assert f"model       {tmp_path / 'amoved' / 'deployed.json'}" in text and "/elsewhere" not in text


# ------------------------------------------------------------------ F8: Ctrl-C while run.py starts


@pytest.mark.slow
def test_ctrl_c_while_run_py_imports_is_one_line_without_a_traceback(tmp_path, tiny):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *tiny(), f"hydra.run.dir={tmp_path}/r"], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(0.4)  # torch is importing
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()
