"""Round 25 of the hostile pass.

- r25a: a FIFO (or another file that is not a regular one) among an ImageNet tree's images hung the run and
  ``--plan`` in ``open()``, where no signal ended it (F1).
- r25b: a parallel sweep's launching process stopped by a signal let joblib end its workers with SIGKILL at once:
  a worker still saving its checkpoint lost it (a signal to the process group), or none saved any (a signal to the
  launching process alone), and the command said they all had (F1); a report rerun moved a run under way in --out.
- r26b: the same for a worker stopped alone or killed (a traceback), a sweep of more than 64 jobs or Optuna's, and
  a job making its operating points. r26a: a Dataset's labels and batches past its first sample, in-memory images
  of the wrong kind, a timm checkpoint that is no state dict, CIFAR batches of lists of floats or float labels.
- r27a: an Optuna log range from 0, a Dataset's image and label types, a non-finite mean or std, images that
  require grad. r27b: orphaned workers of a large sweep, a second signal's line, a removed channel, idle Ctrl-C."""

import contextlib
import fcntl
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import joblib.parallel
import numpy as np
import pytest
import torch
from conftest import ENV, ROOT, imagenet_files, refused
from joblib._parallel_backends import LokyBackend
from joblib.externals.loky.process_executor import TerminatedWorkerError

from svdbench import app, stop_channel, sweep_stop
from svdbench.data import DatasetSplits, TensorSplits, load_dataset
from svdbench.data.files import imagenet_splits, load_image, read_cifar_batch
from svdbench.errors import DatasetError, InputError, Terminated
from svdbench.methods import Dense
from svdbench.pipeline import run_experiment
from svdbench.report import build as report_build
from svdbench.report import build_report
from svdbench.results import RESULTS_FILE
from svdbench.rundir import LOCK


@pytest.fixture(autouse=True)
def _channel_state_kept_apart(monkeypatch):
    """What a worker's side of the stop channel sets in its process (the owner it found and the thread watching
    it, SIGINT ignored between jobs, the variable naming the channel) stays in the test that set it: a watcher
    would stop this process, an ignored SIGINT would be inherited by the subprocesses of later tests."""
    monkeypatch.setattr(stop_channel, "_owner", [])
    monkeypatch.setattr(stop_channel, "_watch_owner", lambda *args, **kwargs: None)
    monkeypatch.setattr(stop_channel, "_last_read", [0.0, False])
    monkeypatch.setitem(joblib.parallel.BACKENDS, "loky", joblib.parallel.BACKENDS["loky"])  # launch() registers
    sigint, env = signal.getsignal(signal.SIGINT), os.environ.get(stop_channel.STOP_ENV)
    yield
    signal.signal(signal.SIGINT, sigint)
    if env is None:
        os.environ.pop(stop_channel.STOP_ENV, None)
    else:
        os.environ[stop_channel.STOP_ENV] = env


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


@pytest.fixture()
def channel(tmp_path, monkeypatch):
    """Two job directories, and the channel this process opened to its (pretended) workers, whose busy marks say
    the jobs are under way (the worker: this process, alive)."""
    jobs = [tmp_path / "sweep" / n for n in "01"]
    monkeypatch.delenv(stop_channel.STOP_ENV, raising=False)
    monkeypatch.setattr(sweep_stop, "_workers_alive", lambda: True)  # their processes, as the wait asks
    stop_channel.open_channel()
    yield jobs
    stop_channel._close()


def _busy(jobs, pids=None):
    """Mark ``jobs`` under way as their workers do (:func:`stop_channel.busy`), by processes ``pids``."""
    where = Path(os.environ[stop_channel.STOP_ENV])
    for job, pid in zip(jobs, pids or [os.getpid(), os.getppid()], strict=False):
        (where / f"busy-{pid}").write_text(str(job))


def _done(jobs, pids=None):
    for _, pid in zip(jobs, pids or [os.getpid(), os.getppid()], strict=False):
        (Path(os.environ[stop_channel.STOP_ENV]) / f"busy-{pid}").unlink(missing_ok=True)


def test_jobs_under_way_are_those_of_live_workers(channel):
    """A job making its operating points is under way too (its record says completed, points pending: the launching
    process did not wait for it); a worker killed is not (its mark stays)."""
    _busy(channel)
    assert stop_channel.under_way() == channel
    (Path(os.environ[stop_channel.STOP_ENV]) / "busy-999999999").write_text("/gone")  # no such process
    assert stop_channel.under_way() == channel
    _done(channel[:1])
    assert stop_channel.under_way() == channel[1:]


@pytest.mark.parametrize("stops_after", [0.4, None])
def test_a_stop_signal_waits_for_the_workers_jobs_to_stop_then_raises(stops_after, channel, capsys):
    """The launching process raised at once (joblib then killed its workers mid-save). Now it tells the workers to
    stop, waits for the jobs under way, at most the grace, and names those still running after it."""
    _busy(channel)
    if stops_after is not None:  # the workers' jobs end
        threading.Timer(stops_after, _done, (channel,)).start()
    start = time.monotonic()
    with pytest.raises(Terminated) as stop, sweep_stop.workers_stop_first(1.5):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    waited = time.monotonic() - start
    assert stop.value.signum == signal.SIGTERM
    assert (Path(os.environ[stop_channel.STOP_ENV]) / "owner").read_text() == f"{os.getpid()} stopping"
    if stops_after is None:
        assert 1.5 <= waited < 5 and sweep_stop.LEFT_RUNNING == channel
    else:
        assert 0.4 <= waited < 1.5 and sweep_stop.LEFT_RUNNING == []
    assert "stopping (SIGTERM; again stops at once): waiting for the jobs under way to stop" in capsys.readouterr().err


def test_a_second_signal_stops_at_once(channel):
    _busy(channel[:1])
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), sweep_stop.workers_stop_first(30):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
    assert time.monotonic() - start < 5 and sweep_stop.LEFT_RUNNING == [channel[0]]  # named as not stopped


def test_a_process_without_workers_keeps_its_handlers(monkeypatch):
    monkeypatch.delenv(stop_channel.STOP_ENV, raising=False)
    before = signal.getsignal(signal.SIGTERM)
    with sweep_stop.workers_stop_first():
        assert signal.getsignal(signal.SIGTERM) is before
    assert not stop_channel.opened()


def test_a_worker_reads_its_parents_channel_only(tmp_path, monkeypatch):
    """The worker stops at its next training step as on SIGTERM, without a signal that could reach it twice, and
    starts no other job; it marks its job busy there. A process that merely inherited the variable is no worker of
    that channel's owner: it reads and marks nothing."""
    owner = tmp_path / "owner"
    monkeypatch.setenv(stop_channel.STOP_ENV, str(tmp_path))
    for text, said in [(f"{os.getppid()}", False), (f"{os.getppid() + 1} stopping", False),
                       (f"{os.getppid()} stopping", True)]:  # fmt: skip
        owner.write_text(text)
        monkeypatch.setattr(stop_channel, "_last_read", [0.0, False])
        assert stop_channel.stopping() is said
        with stop_channel.busy(tmp_path / "job"):
            marked = (tmp_path / f"busy-{os.getpid()}").is_file()
        assert marked is (text.split()[0] == str(os.getppid()))
        assert not (tmp_path / f"busy-{os.getpid()}").exists()
    owner.unlink()
    monkeypatch.setattr(stop_channel, "_last_read", [0.0, False])
    assert not stop_channel.stopping()


def test_the_channel_is_removed_at_exit(tmp_path):
    code = ("import os; from svdbench import stop_channel; stop_channel.open_channel(); "
            "print(os.environ[stop_channel.STOP_ENV])")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "svdbench-sweep-" in proc.stdout and not os.path.exists(proc.stdout.strip())


def _parallel_sweep(sweep, tiny, over, where="", output=subprocess.PIPE, num_train=2048):
    """``run.py -m`` of the tiny config (``num_train`` training images) with ``over`` under the local_parallel
    launcher into ``sweep``, in a session of its own, once jobs 0 and 1 hold ``<job>/<where>/checkpoint.pt``: (the
    process, those checkpoints). ``output``: where its stdout and stderr go (DEVNULL where nothing reads them: a
    full pipe would block the workers that outlive it)."""
    over = [f"dataset.num_train={num_train}", *over, "hydra/launcher=local_parallel", f"hydra.sweep.dir={sweep}"]
    argv = [sys.executable, str(ROOT / "run.py"), "-m", *tiny("dataset.num_train", "method"), *over]
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=output, stderr=output, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    checkpoints = [sweep / j / where / "checkpoint.pt" for j in "01"]
    while not all(c.is_file() for c in checkpoints) and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc, checkpoints


@pytest.mark.slow
@pytest.mark.parametrize("to", ["the launching process", "the process group"])
def test_a_stopped_parallel_sweeps_workers_save_their_checkpoints_first(to, tmp_path, tiny):
    """SIGTERM after each job's first epoch: each job records preempted with a checkpoint saved mid-epoch, later than
    the first epoch's (before: none, or one of the two, was saved; the others stayed 'running')."""
    sweep = tmp_path / "sweep"
    proc, checkpoints = _parallel_sweep(sweep, tiny, ["seed=0,1", "trainer.epochs=400"])
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


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["65 jobs, checked on a sample", "operating points"])
def test_a_stopped_parallel_sweep_waits_for_any_job_under_way(kind, tmp_path, tiny):
    """r26b: a sweep of more than 64 jobs (and an Optuna one), whose locks preflight does not take ahead, said
    'before the first job started' and its workers were killed unsaved; a job making its operating points (its
    record completed, points pending) was not waited for, and the point lost its epoch."""
    sweep = tmp_path / "sweep"
    if kind.startswith("65"):
        proc, checkpoints = _parallel_sweep(sweep, tiny, ["seed=range(0,65)", "trainer.epochs=400"])
    else:
        over = ["seed=0,1", "method=svd", "method.energies=[0.01,0.05]", "method.finetune_epochs=4"]
        proc, checkpoints = _parallel_sweep(sweep, tiny, over, "energy_0.01", num_train=4096)
    first = [c.stat().st_mtime_ns for c in checkpoints]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err + out, err[-3000:]
    assert "interrupted (SIGTERM): the jobs that were training saved their checkpoints" in err, err[-2000:]
    for c, before in zip(checkpoints, first, strict=True):
        assert json.loads((c.parent / RESULTS_FILE).read_text())["status"] == "preempted"
        assert c.stat().st_mtime_ns > before
    assert not (sweep / "2").exists()  # no other job started


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


def test_the_pools_abort_lets_the_jobs_under_way_stop_first(channel, monkeypatch):
    """joblib ends its pool with SIGKILL on any job's error (a worker stopped alone, say): the jobs under way first
    stop and save, as on a signal; after a signal (the wait is over) the pool ends at once."""
    calls = []
    monkeypatch.setattr(LokyBackend, "abort_everything", lambda self, ensure_ready=True: calls.append("ended"))
    monkeypatch.setattr(sweep_stop, "wait_for_workers", lambda *args: calls.append("waited"))
    with sweep_stop.workers_stop_first():
        sweep_stop.WorkersSaveFirst().abort_everything()
    assert calls == ["waited", "ended"] and sweep_stop.POOL_ENDED
    calls.clear()
    with pytest.raises(Terminated), sweep_stop.workers_stop_first():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    with sweep_stop.workers_stop_first():
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
    proc, checkpoints = _parallel_sweep(sweep, tiny, ["seed=0,1", "trainer.epochs=400"])
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


# ------------------------------------------------ r26a: datasets of one's own, timm checkpoints, CIFAR batches


class Labelled(torch.utils.data.Dataset):
    """32 images 3x8x8; ``label(i)`` the label of sample i, ``shape(i)`` its shape, failing past ``fails_at``."""

    def __init__(self, label=lambda i: i % 4, shape=lambda i: (3, 8, 8), fails_at=None, image=None, size=32):
        self.label, self.shape, self.fails_at, self.image, self.size = label, shape, fails_at, image, size

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        if self.fails_at is not None and i >= self.fails_at:
            raise IndexError(i)
        return (self.image(i) if self.image else torch.rand(*self.shape(i))), self.label(i)


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        yield from ((torch.rand(3, 8, 8), 0) for _ in range(32))


def _splits_of(train=None, test=None):
    return DatasetSplits(train=train or Labelled(), test=test or Labelled(), num_classes=4, input_shape=(3, 8, 8))


DATASETS = {
    "train_minus_100": lambda: _splits_of(train=Labelled(label=lambda i: -100 if i % 2 else 0)),
    "test_minus_100": lambda: _splits_of(test=Labelled(label=lambda i: -100 if i else 0)),
    "test_99": lambda: _splits_of(test=Labelled(label=lambda i: 99 if i == 7 else 0)),
    "train_shape": lambda: _splits_of(train=Labelled(shape=lambda i: (3, 4, 4) if i == 5 else (3, 8, 8))),
    "test_lies": lambda: _splits_of(test=Labelled(fails_at=10)),
    "train_stream": lambda: _splits_of(train=Stream()),
    # r27a
    "uint8_images": lambda: _splits_of(
        train=Labelled(image=lambda i: torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8))
    ),
    "none_label": lambda: _splits_of(test=Labelled(label=lambda i: None)),
    "one_hot_label": lambda: _splits_of(
        train=Labelled(label=lambda i: torch.nn.functional.one_hot(torch.tensor(1), 4))
    ),
    "label_of_shape_1": lambda: _splits_of(train=Labelled(label=lambda i: torch.tensor([i % 4]))),
    "float_label_later": lambda: _splits_of(train=Labelled(label=lambda i: 0 if i == 0 else 1.0)),
    "first_sample_fails": lambda: _splits_of(test=Labelled(fails_at=0)),
    "float_len": lambda: _splits_of(test=Labelled(size=32.0)),
    "nan_test_later": lambda: _splits_of(
        test=Labelled(image=lambda i: torch.rand(3, 8, 8) if i == 0 else torch.full((3, 8, 8), float("nan")))
    ),
    "float64_images": lambda: _splits_of(train=Labelled(image=lambda i: torch.rand(3, 8, 8, dtype=torch.float64))),
}


def own_dataset(cfg, seed):
    return DATASETS[cfg.name]()


@pytest.mark.parametrize(
    "name, message",
    [
        ("train_minus_100", r"a training label is -100, outside \[0, 4\)"),  # cross-entropy ignored it: no word
        ("test_minus_100", r"an evaluation label is -100, outside \[0, 4\)"),  # counted as a miss: no word
        ("test_99", r"an evaluation label is 99, outside \[0, 4\)"),  # a traceback
        ("train_shape", r"dataset 'train_shape', train: a batch could not be read \(RuntimeError: stack expects"),
        ("test_lies", r"dataset 'test_lies', test: a batch could not be read \(IndexError: 10\)"),
        ("train_stream", r"dataset '.*own_dataset', train: a Stream; a split must be a map-style Dataset"),
        ("uint8_images", r"train: images of type torch.uint8; a Dataset gives float images"),  # r27a F2: a traceback
        ("none_label", r"test: a label must be an integer class, got None"),  # F3: tracebacks
        ("one_hot_label", r"train: a label must be an integer class, got tensor\(\[0, 1, 0, 0\]\)"),
        ("label_of_shape_1", r"train: a label must be an integer class, got tensor\(\[0\]\)"),  # F4
        ("float_label_later", r"a training batch's labels are torch.float64 of shape \(32,\)"),
        ("first_sample_fails", r"test: its first sample cannot be read \(IndexError: 0\)"),  # F7
        ("float_len", r"TypeError: 'float' object cannot be interpreted as an integer"),
        ("nan_test_later", r"test: a batch's images hold NaN or infinite values"),  # F8: scored 9 %
    ],
)
def test_a_datasets_fault_past_its_first_sample_is_one_line(name, message, tmp_path, tiny_cfg):
    """r26a F1-F3: found in training or testing, each was a traceback or a silently wrong accuracy."""
    cfg = tiny_cfg(dataset={"_target_": f"{__name__}.own_dataset", "name": name, "val_size": 0})
    with pytest.raises(DatasetError, match=message):
        run_experiment(cfg, Dense(), tmp_path / "run")


def _tensors(cfg, seed, **change):
    x, y = torch.rand(64, 3, 8, 8), torch.arange(64) % 4
    fields = {"train": (x, y), "test": (x[:16], y[:16]), "num_classes": 4, "mean": (0.5,) * 3, "std": (0.25,) * 3}
    return TensorSplits(**{**fields, **change})


IMAGES = {
    "nan_test": lambda x, y: {"test": (torch.full_like(x[:16], float("nan")), y[:16])},
    "int_images": lambda x, y: {"train": ((x * 255).long(), y)},
    "images_of_255": lambda x, y: {"train": (x * 255, y)},
    "meta_images": lambda x, y: {"train": (x.to("meta"), y)},
    "sparse_images": lambda x, y: {"train": (x.to_sparse(), y)},
    "huge_pad": lambda x, y: {"pad": 10**6},
    "infinite_std": lambda x, y: {"std": (float("inf"),) * 3},  # r27a F6: chance accuracy, no word
    "nan_mean": lambda x, y: {"mean": (float("nan"),) * 3},
}


def own_tensors(cfg, seed):
    x, y = torch.rand(64, 3, 8, 8), torch.arange(64) % 4
    return _tensors(cfg, seed, **IMAGES[cfg.name](x, y))


@pytest.mark.parametrize(
    "name, message",
    [
        ("nan_test", "test: images hold NaN or infinite values"),  # scored 34 % on NaN images
        ("int_images", "train: images of type torch.int64; give uint8 (0..255) or floats in [0, 1]"),  # unscaled
        ("images_of_255", "train: float images from 0."),  # unscaled
        ("meta_images", "train: images are a torch.strided tensor on meta; give a dense CPU tensor"),
        ("sparse_images", "train: images are a torch.sparse_coo tensor on cpu; give a dense CPU tensor"),
        ("huge_pad", "pad=1000000 is more than the images' size (8, 8)"),  # a traceback allocating petabytes
        ("infinite_std", "std=(inf, inf, inf) must be finite"),
        ("nan_mean", "mean=(nan, nan, nan) must be finite"),
    ],
)
def test_in_memory_images_are_checked_before_training(name, message, tiny_cfg):
    """r26a F4, F5."""
    cfg = tiny_cfg(dataset={"_target_": f"{__name__}.own_tensors", "name": name}).dataset
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset(cfg, batch_size=8, eval_batch_size=8)


@pytest.mark.parametrize(
    "content, error",
    [(b"", "EOFError"), (b"hello\n", "KeyError: 101"), (None, "AttributeError: 'list' object has no attribute")],
)
def test_a_timm_checkpoint_that_is_no_state_dict_is_one_line(content, error, tmp_path):
    """r26a F6: an empty file, text, or a list, at model.kwargs.checkpoint_path: tracebacks from timm."""
    from svdbench.models import build_timm

    path = tmp_path / "w.pt"
    if content is None:
        torch.save([1, 2], path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=rf"^model.kwargs.checkpoint_path: {path} is not a state dict timm can load "
                                         rf"\({re.escape(error)}"):  # fmt: skip
        build_timm("resnet10t", 4, 3, checkpoint_path=str(path))


@pytest.mark.parametrize(
    "data, labels, message",
    [
        ("float lists", [0, 1, 2, 3], r"holds float64 values, not bytes 0\.\.255"),  # all pixels became 0
        ("bytes", [0.5, 1.7, 2.2, 3.9], r"b'labels' hold float64 values, not integer classes"),  # cut to 0 1 2 3
        ("bytes", [True, False, True, True], r"b'labels' hold bool values, not integer classes"),  # class 1
    ],
)
def test_a_cifar_batch_of_lists_of_floats_or_float_labels_is_refused(data, labels, message, tmp_path):
    """r26a F7: only a numpy array's dtype was checked."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    rows = [[float(v) for v in row] for row in rng.random((4, 3072))] if data == "float lists" else pixels
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": rows, b"labels": labels}))
    with pytest.raises(DatasetError, match=message):
        read_cifar_batch(path, b"labels")


def test_a_cifar_batch_pickled_with_protocol_2_by_python_3_is_read(tmp_path):
    """r26a F8: the array's bytes come as _codecs.encode(text, 'latin1'), which was refused; nothing else of
    _codecs is taken."""
    pixels = np.random.default_rng(0).integers(0, 256, (4, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": pixels, b"labels": [0, 1, 2, 3]}, protocol=2))
    x, y = read_cifar_batch(path, b"labels")
    assert (x.reshape(4, -1) == pixels).all() and y.tolist() == [0, 1, 2, 3]
    path.write_bytes(pickle.dumps({b"data": pixels, b"labels": [0, 1, 2, 3]}, protocol=2).replace(b"latin1", b"utf_8_"))
    with pytest.raises(DatasetError, match="not a CIFAR batch"):
        read_cifar_batch(path, b"labels")


def test_a_datasets_float64_images_and_numpy_numbers_are_taken(tmp_path, tiny_cfg):
    """r27a F2 (float64 images were a traceback in the model), F5 (training images that require grad: a traceback
    on the second backward), F9 (numpy float32 mean and std refused as not numbers)."""
    cfg = tiny_cfg(dataset={"_target_": f"{__name__}.own_dataset", "name": "float64_images", "val_size": 0})
    assert run_experiment(cfg, Dense(), tmp_path / "a")["status"] == "completed"
    cfg = tiny_cfg(dataset={"_target_": f"{__name__}.numpy_stats_grad_images", "name": "mine", "val_size": 0})
    assert run_experiment(cfg, Dense(), tmp_path / "b")["status"] == "completed"


def numpy_stats_grad_images(cfg, seed):
    x, y = torch.rand(64, 3, 8, 8).requires_grad_(True), torch.arange(64) % 4
    return _tensors(cfg, seed, train=(x, y), mean=[np.float32(0.5)] * 3, std=[np.float32(0.25)] * 3)


@pytest.mark.parametrize("override, message", [
    ("method.energy=tag(log,interval(0,0.1))", "a log range's low end must be above 0"),
    ("trainer.epochs=tag(log,int(interval(0,3)))", "a log range's low end must be at least 1"),
])  # fmt: skip
def test_an_optuna_log_range_from_0_is_one_line_also_in_the_plan(override, message, capsys, tiny, tmp_path):
    """r27a F1: --plan let it through, and the run was Optuna's traceback."""
    err = refused(capsys, "-m", *tiny(), "+sweep=optuna_pareto", override, f"hydra.sweep.dir={tmp_path}/o", "--plan")
    assert message in err, err


# ------------------------------------------------ r27b: orphans, a second signal, the channel removed, idle Ctrl-C


def test_a_worker_whose_launching_process_died_stops(tmp_path, monkeypatch):
    """r27b F1: in a sweep of more than 64 jobs (or Optuna's) no lock is lent, so nothing told an orphan to stop:
    it trained on for half an hour, holding its job's directory against the rerun."""
    monkeypatch.setattr(stop_channel, "_owner", [os.getppid()])
    monkeypatch.setattr(stop_channel, "_last_read", [0.0, False])
    monkeypatch.delenv(stop_channel.STOP_ENV, raising=False)
    assert not stop_channel.orphaned() and not stop_channel.stopping()
    monkeypatch.setattr(stop_channel, "_owner", [os.getppid() + 1])  # the parent it found is gone: re-parented
    assert stop_channel.orphaned() and stop_channel.stopping()


def test_a_removed_channel_is_made_again_and_said(channel, capsys):
    """r27b F3: its directory cleaned from the temporary directory under the sweep, a stop told no worker and said
    they had all saved."""
    where = Path(os.environ[stop_channel.STOP_ENV])
    shutil.rmtree(where)
    assert not stop_channel.mark()
    assert (where / "owner").read_text() == f"{os.getpid()} stopping"  # the workers stop at their next step
    assert "was removed: the jobs under way stop at their next step but are not waited for" in capsys.readouterr().err


def test_the_line_says_a_second_signal_ended_the_jobs_still_running(channel, capsys):
    """r27b F2: it said they were still running 'after 60 s', 3 s after the first signal."""
    _busy(channel[:1])
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()

    def main():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)

    with pytest.raises(SystemExit) as stop:
        app.launch(main)
    err = capsys.readouterr().err
    assert stop.value.code == 128 + signal.SIGTERM
    assert f"the jobs in {channel[0]} were still running when a second signal came and were ended" in err, err


def test_an_idle_worker_ignores_ctrl_c_and_a_working_one_takes_it(tmp_path, monkeypatch):
    """r27b F4: Ctrl-C to the process group reaching a worker between jobs printed loky's traceback."""
    monkeypatch.setenv(stop_channel.STOP_ENV, str(tmp_path))
    monkeypatch.setattr(stop_channel, "_owner", [os.getppid()])
    (tmp_path / "owner").write_text(str(os.getppid()))
    before = signal.getsignal(signal.SIGINT)
    try:
        with stop_channel.busy(tmp_path / "job"):
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.slow
def test_the_workers_of_a_large_sweep_whose_launching_process_is_killed_stop(tmp_path, tiny):
    """r27b F1 end to end: 65 jobs, the launching process SIGKILLed; each orphan saves, records preempted, ends."""
    sweep = tmp_path / "sweep"
    proc, _ = _parallel_sweep(sweep, tiny, ["seed=range(0,65)", "trainer.epochs=400"], output=subprocess.DEVNULL)
    workers = [_worker_of(sweep / j) for j in "01"]
    proc.kill()
    proc.wait(timeout=60)
    deadline = time.monotonic() + 90
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(w) for w in workers)
    for j in "01":
        assert json.loads((sweep / j / RESULTS_FILE).read_text())["status"] == "preempted"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False
