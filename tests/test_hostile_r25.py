"""Round 25 of the hostile pass.

- r25a: a FIFO (or another file that is not a regular one) among an ImageNet tree's images hung the run and
  ``--plan`` in ``open()``, where no signal ended it (F1).
- r25b: a parallel sweep's launching process stopped by a signal let joblib end its workers with SIGKILL at once:
  a worker still saving its checkpoint lost it (a signal to the process group), or none saved any (a signal to the
  launching process alone), and the command said they all had (F1)."""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ENV, ROOT, imagenet_files, record
from joblib._parallel_backends import LokyBackend
from joblib.externals.loky.process_executor import TerminatedWorkerError

from svdbench import rundir, sweep_stop
from svdbench.data.files import imagenet_splits, load_image
from svdbench.errors import DatasetError, Terminated
from svdbench.report import build as report_build
from svdbench.report import build_report
from svdbench.results import RESULTS_FILE
from svdbench.rundir import HOLDER_ENV, LOCK, RunLock

# ------------------------------------------------ r25a F1: an ImageNet tree's image that is not a regular file


def _splits(root):
    return imagenet_splits(SimpleNamespace(root=str(root), image_size=16, augment=False), 0)


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("kind", ["fifo", "dangling link"])
def test_an_image_that_is_not_a_regular_file_is_refused_when_the_tree_is_read(split, kind, tmp_path):
    root = imagenet_files(tmp_path / "inet", per_class=1)
    bad = root / split / "a" / "9.png"
    if kind == "fifo":
        os.mkfifo(bad)
    else:
        bad.symlink_to(tmp_path / "nothing.png")
    with pytest.raises(DatasetError, match=f"image {bad} (is not a regular file|cannot be read)"):
        _splits(root)


def test_a_link_to_an_image_and_other_files_are_taken_as_before(tmp_path):
    root = imagenet_files(tmp_path / "inet", per_class=2)
    (root / "train" / "a" / "9.png").symlink_to(root / "train" / "b" / "0.png")
    (root / "train" / "a" / "notes.txt").write_text("not an image: not one of the tree's")
    os.mkfifo(root / "train" / "b" / "pipe")  # not an image's name: never opened
    splits = _splits(root)
    assert len(splits.train) == 5 and len(splits.test) == 4
    x, y = splits.train[4]
    assert tuple(x.shape) == (3, 16, 16) and y == 1


def _open_writer(fifo) -> None:
    with contextlib.suppress(OSError):  # ENXIO: nobody reads it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_an_image_made_a_fifo_after_the_tree_was_read_never_blocks(tmp_path):
    root = imagenet_files(tmp_path / "inet", per_class=1)
    splits = _splits(root)
    path = root / "val" / "b" / "0.png"
    path.unlink()
    os.mkfifo(path)
    unblock = threading.Timer(20, _open_writer, (path,))  # a regression blocks in open(): ended, and fails
    unblock.start()
    try:
        with pytest.raises(DatasetError, match=f"image {path} is not a regular file"):
            splits.test[1]
    finally:
        unblock.cancel()
    shutil.copy(root / "val" / "a" / "0.png", tmp_path / "ok.png")
    assert np.asarray(load_image(str(tmp_path / "ok.png"))).shape == (40, 50, 3)


# ------------------------------------------------ r25b F1: a parallel sweep's workers save before the pool ends


def test_jobs_under_way_are_this_sweeps_running_records(tmp_path):
    since = time.time()
    now = [record(tmp_path / n, status=s) for n, s in (("run", "running"), ("done", "completed"), ("cut", "preempted"))]
    old = record(tmp_path / "old", status="running")  # left running by an earlier, killed try of the sweep
    os.utime(old / RESULTS_FILE, (since - 60, since - 60))
    (tmp_path / "none").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / RESULTS_FILE).write_text("{")
    dirs = [*now, old, tmp_path / "none", tmp_path / "bad"]
    assert sweep_stop.under_way(dirs, since) == [now[0]]


@pytest.fixture()
def lending(tmp_path, monkeypatch):
    """Two job directories whose locks this process took ahead and lent to (pretended) workers; released after."""
    jobs = [tmp_path / "sweep" / n for n in "01"]
    for job in jobs:
        RunLock.hold(job)
    monkeypatch.setenv(HOLDER_ENV, str(os.getpid()))
    monkeypatch.setattr(sweep_stop, "_workers_alive", lambda: True)  # their processes, as the wait asks
    yield jobs
    RunLock.release_held()


@pytest.mark.parametrize("stops_after", [0.4, None])
def test_a_stop_signal_waits_for_the_workers_jobs_to_stop_then_raises(stops_after, lending, capsys):
    """The launching process raised at once (joblib then killed its workers mid-save). Now it marks the lent locks
    stopping, waits for the jobs under way, at most the grace, and names those still running after it."""
    since = time.time()
    for job in lending:
        record(job, status="running")
    if stops_after is not None:  # the workers' jobs record that they stopped
        threading.Timer(stops_after, lambda: [record(j, status="preempted") for j in lending]).start()
    start = time.monotonic()
    with pytest.raises(Terminated) as stop, sweep_stop.workers_stop_first(since, grace_s=1.5):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    waited = time.monotonic() - start
    assert stop.value.signum == signal.SIGTERM
    for job in lending:
        assert (job / LOCK).read_text() == f"{os.getpid()} stopping"
    if stops_after is None:
        assert 1.5 <= waited < 5 and sweep_stop.LEFT_RUNNING == lending
    else:
        assert 0.4 <= waited < 1.5 and sweep_stop.LEFT_RUNNING == []
    assert "stopping (SIGTERM; again stops at once): waiting for the jobs under way to stop" in capsys.readouterr().err


def test_a_second_signal_stops_at_once(lending):
    record(lending[0], status="running")
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), sweep_stop.workers_stop_first(time.time() - 1, grace_s=30):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
    assert time.monotonic() - start < 5 and sweep_stop.LEFT_RUNNING == [lending[0]]  # named as not stopped


def test_a_process_that_lends_no_lock_keeps_its_handlers(monkeypatch):
    monkeypatch.delenv(HOLDER_ENV, raising=False)
    before = signal.getsignal(signal.SIGTERM)
    with sweep_stop.workers_stop_first(time.time()):
        assert signal.getsignal(signal.SIGTERM) is before


def test_a_worker_sees_its_lender_stopping_in_the_lock_it_writes_under(tmp_path, monkeypatch):
    """The worker stops at its next training step as on SIGTERM, without a signal that could reach it twice, and
    starts no other job."""
    parent = str(os.getppid())
    lock = tmp_path / LOCK
    lock.write_text(parent)
    monkeypatch.setenv(HOLDER_ENV, parent)
    monkeypatch.setattr(RunLock, "lender", parent)
    monkeypatch.setattr(RunLock, "lent", str(lock))
    monkeypatch.setattr(RunLock, "_stop_read", (0.0, False))
    assert not RunLock.lender_stops() and not RunLock.stopping_in(tmp_path)
    lock.write_text(f"{parent} stopping")
    monkeypatch.setattr(RunLock, "_stop_read", (0.0, False))
    assert RunLock.lender_stops() and RunLock.stopping_in(tmp_path)
    lock.write_text(f"{int(parent) + 1} stopping")  # another's lock
    monkeypatch.setattr(RunLock, "_stop_read", (0.0, False))
    assert not RunLock.lender_stops() and not RunLock.stopping_in(tmp_path)


def test_a_lock_marked_stopping_still_names_its_holder(lending):
    RunLock.mark_stopping()
    with pytest.raises(rundir.LockBusy) as busy:
        RunLock.check_free(lending[0])
    assert busy.value.holder == str(os.getpid()) and f"(pid {os.getpid()})" in str(busy.value)


@pytest.mark.slow
@pytest.mark.parametrize("to", ["the launching process", "the process group"])
def test_a_stopped_parallel_sweeps_workers_save_their_checkpoints_first(to, tmp_path, tiny):
    """SIGTERM after each job's first epoch: each job records preempted with a checkpoint saved mid-epoch, later than
    the first epoch's (before: none, or one of the two, was saved; the others stayed 'running')."""
    sweep = tmp_path / "sweep"
    argv = [sys.executable, str(ROOT / "run.py"), "-m", *tiny("dataset.num_train"), "dataset.num_train=2048",
            "seed=0,1", "trainer.epochs=400", "hydra/launcher=local_parallel", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    checkpoints = [sweep / j / "checkpoint.pt" for j in "01"]
    while not all(c.is_file() for c in checkpoints) and time.monotonic() < deadline:
        time.sleep(0.1)
    first = [c.stat().st_mtime_ns for c in checkpoints]
    time.sleep(0.5)  # into the next epoch
    if to == "the process group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err + out, err[-3000:]
    assert "interrupted (SIGTERM): the jobs that were training saved their checkpoints" in err
    for c, before in zip(checkpoints, first, strict=True):
        assert json.loads((c.parent / RESULTS_FILE).read_text())["status"] == "preempted"
        assert c.stat().st_mtime_ns > before


# ------------------------------------------------ r25b (noted): a report rerun moving a run under way in --out


@pytest.mark.parametrize("when", ["before", "while the report is written"])
def test_a_report_rerun_never_moves_a_run_under_way_in_its_out(when, runs, tmp_path, monkeypatch):
    """A run directory of yours inside --out, its lock held by a run: a rerun moved it into the new report (and
    back to the same path), where the run stopped at its next write, DirectoryGone."""
    out = tmp_path / "report"
    build_report([runs], out)
    run = out / "mine" / "run1"
    run.mkdir(parents=True)
    fd = os.open(run / LOCK, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242")
    if when == "before":
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:  # the run starts after the report's first check
        render = report_build.write_files

        def start_run_then_render(*args, **kwargs):
            fcntl.flock(fd, fcntl.LOCK_EX)
            return render(*args, **kwargs)

        monkeypatch.setattr(report_build, "write_files", start_run_then_render)
    try:
        inode = os.stat(run).st_ino
        with pytest.raises(ValueError, match=f"holds {run}, a run directory in use \\(pid 4242\\)"):
            build_report([runs], out)
        assert os.stat(run).st_ino == inode and (out / "summary.json").is_file()
    finally:
        os.close(fd)
    build_report([runs], out)  # the run ended: taken into the new report as before
    assert (run / LOCK).is_file()


def test_the_pools_abort_lets_the_jobs_under_way_stop_first(lending, monkeypatch):
    """joblib ends its pool with SIGKILL on any job's error (a worker stopped alone, say): the jobs under way first
    stop and save, as on a signal; after a signal (the wait is over) the pool ends at once."""
    calls = []
    monkeypatch.setattr(LokyBackend, "abort_everything", lambda self, ensure_ready=True: calls.append("ended"))
    monkeypatch.setattr(sweep_stop, "wait_for_workers", lambda *args: calls.append("waited"))
    with sweep_stop.workers_stop_first(time.time()):
        sweep_stop.WorkersSaveFirst().abort_everything()
    assert calls == ["waited", "ended"] and sweep_stop.POOL_ENDED
    calls.clear()
    with pytest.raises(Terminated), sweep_stop.workers_stop_first(time.time()):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    with sweep_stop.workers_stop_first(time.time()):
        with contextlib.suppress(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        sweep_stop.WorkersSaveFirst().abort_everything()
    assert calls == ["waited", "waited", "ended"]  # each signal's wait; none again before the pool ends


def test_a_killed_worker_reaches_the_command_not_hydras_traceback():
    """Hydra prints an Exception from the launcher as a traceback: a worker killed (out of memory) is WorkerLost."""
    future = Future()
    text = "A worker process ... was unexpectedly terminated.\n\nThe exit codes of the workers are {SIGKILL(-9)}\n"
    future.set_exception(TerminatedWorkerError(text))
    with pytest.raises(sweep_stop.WorkerLost) as lost:
        sweep_stop.WorkersSaveFirst().retrieve_result_callback(future)
    assert not isinstance(lost.value, Exception)
    assert lost.value.exit_codes() == "The exit codes of the workers are {SIGKILL(-9)}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_parallel_sweeps_worker_ended_alone_is_one_line(sig, tmp_path, tiny):
    """SIGKILL (the kernel's out-of-memory killer): Hydra printed joblib's TerminatedWorkerError as a traceback.
    SIGTERM to one worker: its job saved and stopped, and the pool killed the other mid-epoch (now it saves too)."""
    sweep = tmp_path / "sweep"
    argv = [sys.executable, str(ROOT / "run.py"), "-m", *tiny("dataset.num_train"), "dataset.num_train=2048",
            "seed=0,1", "trainer.epochs=400", "hydra/launcher=local_parallel", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    checkpoints = [sweep / j / "checkpoint.pt" for j in "01"]
    while not all(c.is_file() for c in checkpoints) and time.monotonic() < deadline:
        time.sleep(0.1)
    first = checkpoints[1].stat().st_mtime_ns
    os.kill(_worker_of(sweep / "0"), sig)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err + out, err[-3000:]
    if sig == signal.SIGKILL:
        assert proc.returncode == 1
        assert "error: a worker process of the sweep ended unexpectedly (The exit codes of the workers are" in err
    else:
        assert proc.returncode == 128 + signal.SIGTERM and "the sweep stopped: a job ended it (exit code 143" in err
        for c in checkpoints:
            assert json.loads((c.parent / RESULTS_FILE).read_text())["status"] == "preempted"
        assert checkpoints[1].stat().st_mtime_ns > first  # the other job saved mid-epoch before the pool ended


def _worker_of(job) -> int:
    """The pid of the worker process writing in ``job``: the one holding its run.log open."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == str(job / "run.log"):
                            return int(pid)
    raise AssertionError(f"no process writes {job}/run.log")
