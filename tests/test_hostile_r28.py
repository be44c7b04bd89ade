"""Round 28 of the hostile pass, and the items earlier rounds left.

- r26a F9 (left then): ``svdbench latency --batch-sizes 2`` on a run timed at batch 1 said "has latency" and exit 0,
  though the run has no figure at batch 2; a record of other settings is now named, and the run counts as not
  timed (``--force`` replaces it).
- r27a lead (left then): ``method=scratch`` rebuilt a source's ``deployed.json`` records with real memory before
  any check, so a hand-edited record of a huge layer allocated it; the records are now counted on the meta device
  first and must build the parameters the source's results.json records.
- r28b: putting back what Hydra replaced in a refused job's directory (``.hydra/*.yaml``, the log) wrote through a
  link planted there meanwhile, and not atomically (F1); an empty ``owner`` in the stop channel (as a worker could
  read it while the launching process rewrote it) was a traceback in every run (F2); a channel whose launching
  process was killed stayed in the temporary directory for good (F3); a report a full disk cut exited 2, the code
  of a bad argument (F4)."""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import ENV, ROOT, record, refused

from svdbench import cli, preflight, stop_channel
from svdbench.checkpoint import PreemptionGuard
from svdbench.errors import Terminated, one_line
from svdbench.report import build as build_module
from svdbench.rundir import HydraWrites

TIMED = {"batch_sizes": [1, 64], "threads": 1,
         "runs": {"pytorch-eager/cpu": {"deployed": {"1": {"median_ms": 1.0}, "64": {"median_ms": 9.0}},
                                        "dense": {"1": {"median_ms": 2.0}, "64": {"median_ms": 20.0}}}}}  # fmt: skip


@pytest.mark.parametrize(
    "asked, said",
    [
        (["--batch-sizes", "2"], "has no figures at batch size 2;"),
        (["--batch-sizes", "1", "2", "64"], "has no figures at batch size 2;"),
        (["--batch-sizes", "1", "--threads", "2"], "has no figures on 2 thread(s) (it was timed on 1);"),
        (["--onnx"], "has no figures in onnxruntime;"),
        (["--compile", "--batch-sizes", "64"], "has no figures in torch.compile;"),
    ],
)
def test_latency_on_a_run_timed_otherwise_names_what_it_lacks_and_counts_as_not_timed(tmp_path, capsys, asked, said):
    run = record(tmp_path / "run", latency=TIMED)
    before = (run / "results.json").read_text()
    assert cli.main(["latency", str(run), *asked]) == 1
    out = capsys.readouterr().out
    assert said in out and "--force to time it again as asked" in out and "has latency" not in out, out
    assert (run / "results.json").read_text() == before


@pytest.mark.parametrize("asked", [[], ["--batch-sizes", "64"], ["--threads", "1", "--batch-sizes", "1"]])
def test_latency_on_a_run_timed_as_asked_still_skips_it(tmp_path, capsys, asked):
    run = record(tmp_path / "run", latency=TIMED)
    assert cli.main(["latency", str(run), *asked]) == 0
    assert "skipped (has latency; --force to time again)" in capsys.readouterr().out
    assert json.loads((run / "results.json").read_text())["latency"] == TIMED


def test_an_older_record_without_batch_sizes_is_read_from_its_figures(tmp_path, capsys):
    older = {"runs": {"pytorch-eager/cpu": {"deployed": {"1": {"median_ms": 1.0}}, "dense": {"1": {"median_ms": 2.0}}}}}
    run = record(tmp_path / "run", latency=older)
    assert cli.main(["latency", str(run), "--batch-sizes", "1"]) == 0
    assert cli.main(["latency", str(run)]) == 1  # 1 and 64 asked: 64 it has not
    assert "has no figures at batch size 64;" in capsys.readouterr().out


FORGE = """
import json, sys
sys.path.insert(0, "tests")
from test_scratch import pruned, write_run
from pathlib import Path
src = Path(sys.argv[1])
write_run(src, pruned())
doc = json.loads((src / "deployed.json").read_text())
conv = next(r for r in doc["modules"] if r["kind"] == "Conv2d")
conv["args"]["out_channels"] = conv["args"]["in_channels"] = 2_000_000  # 36e12 weights: ~144 TB if built
(src / "deployed.json").write_text(json.dumps(doc))
(src / "results.json").write_text(json.dumps({**json.loads((src / "results.json").read_text()), **eval(sys.argv[2])}))
"""


@pytest.mark.parametrize(
    "change, said",
    [({}, "parameters, not "), ({"params": None}, "parameters, not at most ")],
)
def test_a_scratch_source_forged_to_a_huge_layer_is_one_line_before_any_memory_is_taken(tmp_path, change, said):
    src = tmp_path / "src"
    subprocess.run([sys.executable, "-c", FORGE, str(src), repr(change)], cwd=ROOT, env=ENV, check=True)
    run = [sys.executable, "run.py", "+debug=tiny", "method=scratch", f"method.architecture_from={src}",
           "method.epochs=1", f"hydra.run.dir={tmp_path / 'run'}", "--plan"]  # fmt: skip
    cap = 4 << 30  # 4 GiB of address space: building the forged layer fails with MemoryError, not a swap storm

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run(run, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "deployed.json: its records build" in proc.stderr and said in proc.stderr, proc.stderr


def _job(tmp_path):
    job = tmp_path / "sw" / "0"
    (job / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (job / ".hydra" / name).write_text(f"the previous run's {name}\n")
    (job / "run.log").write_text("the previous run's log\n")
    return job


def test_putting_back_a_refused_jobs_hydra_files_never_writes_through_a_link_planted_meanwhile(tmp_path):
    job, victim = _job(tmp_path), tmp_path / "victim.txt"
    victim.write_text("MY PRECIOUS FILE")
    HydraWrites.take(job, ("run.log", ".hydra/"))  # as Hydra starts the job
    (job / ".hydra" / "hydra.yaml").write_text("Hydra's new hydra.yaml")
    (job / ".hydra" / "config.yaml").unlink()
    (job / ".hydra" / "config.yaml").symlink_to(victim)  # planted while the job runs
    HydraWrites.restore(job)  # the job refused
    assert victim.read_text() == "MY PRECIOUS FILE" and (job / ".hydra" / "config.yaml").is_symlink()
    assert (job / ".hydra" / "hydra.yaml").read_text() == "the previous run's hydra.yaml\n"  # the others put back
    assert not [p for p in (job / ".hydra").iterdir() if p.name.endswith(".tmp")]


def test_putting_back_never_writes_or_removes_in_a_folder_of_yours_that_hydra_folder_was_made_into(tmp_path):
    job, yours = _job(tmp_path), tmp_path / "yours"
    yours.mkdir()
    for name in ("config.yaml", "overrides.yaml"):
        (yours / name).write_text(f"my {name}")
    HydraWrites.take(job, ("run.log", ".hydra/"))
    (job / ".hydra").rename(tmp_path / "moved")
    (job / ".hydra").symlink_to(yours)
    HydraWrites.restore(job)
    assert sorted(p.name for p in yours.iterdir()) == ["config.yaml", "overrides.yaml"]
    assert all((yours / n).read_text() == f"my {n}" for n in ("config.yaml", "overrides.yaml"))
    assert (job / "run.log").read_text() == "the previous run's log\n"


def test_a_new_jobs_hydra_files_are_removed_but_not_through_a_folder_link(tmp_path):
    job, yours = tmp_path / "sw" / "1", tmp_path / "yours"
    yours.mkdir()
    (yours / "config.yaml").write_text("mine")
    HydraWrites.take(job, ("run.log", ".hydra/"))  # a new job: nothing there before
    job.mkdir(parents=True)
    (job / ".hydra").symlink_to(yours)
    HydraWrites.restore(job)
    assert (yours / "config.yaml").read_text() == "mine"


@pytest.fixture
def channel(tmp_path, monkeypatch):
    """The stop channel's process state kept to the test: its temporary directory under ``tmp_path``."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(stop_channel, "_opened", [])
    monkeypatch.setattr(stop_channel, "_owner", [])
    monkeypatch.setattr(stop_channel, "_watch_owner", lambda *args, **kwargs: None)
    monkeypatch.setattr(stop_channel, "_last_read", [0.0, False])
    monkeypatch.delenv(stop_channel.STOP_ENV, raising=False)
    return tmp_path


@pytest.mark.parametrize("text", ["", "  \n"])
def test_an_empty_owner_in_the_stop_channel_is_no_channel_not_a_traceback(channel, monkeypatch, text):
    (channel / "ch").mkdir()
    (channel / "ch" / "owner").write_text(text)
    monkeypatch.setenv(stop_channel.STOP_ENV, str(channel / "ch"))
    assert stop_channel._worker_channel() is None and not stop_channel.stopping()
    with stop_channel.busy(channel / "job"):  # as every job starts
        pass


def test_a_worker_never_reads_owner_half_written_while_the_sweep_marks_it_stopping(channel):
    stop_channel.open_channel()
    owner, seen, done = channel.glob("svdbench-sweep-*/owner").__next__(), set(), threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(stop_channel._read(owner))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            stop_channel.mark()
    finally:
        done.set()
        reader.join()
    assert seen <= {str(os.getpid()), f"{os.getpid()} stopping"}, seen
    assert sorted(p.name for p in owner.parent.iterdir()) == ["owner"]  # no temporary file left
    stop_channel._close()


def test_a_channel_whose_launching_process_was_killed_is_removed_by_the_next_sweep(channel):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale, live, starting = (channel / f"svdbench-sweep-{n}" for n in ("1-stale", "2-live", "3-starting"))
    for where, owner in ((stale, f"{gone.pid} stopping"), (live, str(os.getppid())), (starting, None)):
        where.mkdir()
        if owner is not None:
            (where / "owner").write_text(owner)
    (stale / "busy-1").write_text("/a/job")
    stop_channel.open_channel()
    assert not stale.exists() and live.is_dir() and starting.is_dir()
    assert stop_channel._opened and stop_channel._opened[0].is_dir()
    stop_channel._close()


def test_a_report_a_full_disk_cut_exits_1_not_2_the_code_of_a_bad_argument(runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "report"
    assert cli.main(["report", str(runs), "--out", str(out)]) == 0

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build_module, "plot", full_disk)
    assert cli.main(["report", str(runs), "--out", str(out)]) == 1
    assert "the previous one there is unchanged" in capsys.readouterr().err


# ------------------------------------------------ r28a: models and data sets of one's own, latency, options

OWN = """
import torch
from torch import nn
from svdbench.data import TensorSplits

def boom(num_classes, in_channels, **kw):
    raise RuntimeError("cuda thing failed")

def lazy(num_classes, in_channels, **kw):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3), nn.Flatten(), nn.LazyLinear(num_classes))

class Pair(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.c, self.fc = nn.Conv2d(in_channels, 8, 3, padding=1), nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.c(x).mean((2, 3))), 0

def pair(num_classes, in_channels, **kw):
    return Pair(num_classes, in_channels)

def _draw(shape, classes):
    return torch.randint(0, 256, shape, dtype=torch.uint8), torch.randint(0, 4, (shape[0],)), classes

def huge_classes(cfg, seed):
    x, y, _ = _draw((64, 3, 16, 16), 4)
    return TensorSplits(train=(x, y), test=(x[:8], y[:8]), num_classes=10**9, mean=[0.5] * 3, std=[0.25] * 3)

def flat(cfg, seed):
    x, y, _ = _draw((64, 16, 16), 4)
    return TensorSplits(train=(x, y), test=(x[:32], y[:32]), num_classes=4, mean=[0.5], std=[0.25])
"""


@pytest.fixture
def own(tmp_path, monkeypatch):
    (tmp_path / "r28own.py").write_text(OWN)
    monkeypatch.syspath_prepend(str(tmp_path))


def _model(name):
    return [f"model._target_=r28own.{name}", f"model.name={name}"]


@pytest.mark.parametrize(
    "overrides, line",
    [
        (_model("boom"), "model boom cannot be built for 10 classes and 3 input channels: RuntimeError: cuda thing "
                         "failed"),
        (["dataset._target_=r28own.huge_classes", "dataset.name=huge"],
         "model resnet8 cannot be built for 1000000000 classes and 3 input channels: RuntimeError:"),
        (_model("pair"), "model pair gives outputs of shape tuple for 2 images: expected (2, 10) (one logit per "
                         "class)"),
        (["dataset._target_=r28own.flat", "dataset.name=flat"],
         "dataset 'r28own.flat', train: images of shape (64, 16, 16); give N x C x H x W images"),
    ],
)  # fmt: skip
def test_a_model_or_data_set_of_ones_own_that_fails_to_build_or_fit_is_one_line(capsys, own, tiny, overrides, line):
    err = refused(capsys, *tiny(), "method=dense", *overrides, "--plan")
    assert line in err, err


def test_a_model_of_ones_own_with_a_lazy_layer_takes_its_sizes_and_plans(capsys, own, tiny):
    with pytest.raises(SystemExit) as done:
        preflight.preflight(["run.py", *tiny(), "method=l1_filter", "method.ratio=0.5", *_model("lazy"), "--plan"])
    out = capsys.readouterr()
    assert done.value.code == 0 and "lazy" in out.out and "Traceback" not in out.err, out.err


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["measure.max_seconds=1e308"], "measure.max_seconds must be at most 1e+09 seconds, got 1e+308"),
        (["method=svd", "method.speedup=2", "method.speedups=[2]"], "method.speedups holds the main result's target"),
        (["method=trp", "method.speedup=2.0", "method.speedups=[1.5,2]"], "method.speedups holds the main result's"),
        (["method=svd", "method.energies=[0.0003,0.01]"], "method.energies holds the main result's energy "
                                                            "(method.energy=0.0003, the default where not given)"),
        (["method=svd", "method.energy=0.1", "method.energies=[0.1]"], "method.energies holds the main result's"),
    ],
)  # fmt: skip
def test_a_setting_that_overflows_or_trains_the_main_result_again_is_refused(capsys, tiny, overrides, line):
    assert line in refused(capsys, *tiny(), *overrides)


@pytest.mark.parametrize("speedup", ["x", float("nan"), -2.0, [2], None])
def test_latency_takes_the_mac_speedup_from_the_checked_counts_not_the_records_field(tmp_path, capsys, speedup):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_scratch import pruned, write_run

    res = write_run(tmp_path / "run", pruned(), speedup=speedup)
    assert cli.main(["latency", str(tmp_path / "run"), "--batch-sizes", "2", "--max-seconds", "0.01"]) == 0
    lat = json.loads((tmp_path / "run" / "results.json").read_text())["latency"]
    assert lat["mac_speedup"] == res["macs_dense"] / res["macs"]  # finite and > 0 (it was NaN or -2 recorded)
    ratio = lat["runs"]["pytorch-eager/cpu"]["realized_over_mac"]["2"]
    assert ratio == pytest.approx(lat["runs"]["pytorch-eager/cpu"]["speedup"]["2"] / lat["mac_speedup"])


# ------------------------------------------------ r29b: a scratch run of a source remade since; checkpoint=false


def test_a_completed_scratch_run_is_not_this_run_once_its_source_holds_another_architecture(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_scratch import pruned, resnet8, write_run

    from svdbench.methods import Scratch

    src = tmp_path / "src"
    write_run(src, pruned())
    method = Scratch.create(architecture_from=str(src))
    done = {"method_details": method.details()}
    method.check_done(done)  # the architecture it trained: its own
    method.check_done({"method_details": {}})  # an older record: nothing to compare
    shutil.rmtree(src)
    write_run(src, resnet8())  # remade with resume=false, into the dense architecture
    with pytest.raises(ValueError, match=r"another architecture than method.architecture_from .* holds now \(1\.\d\dx "
                                         r"fewer MACs then, 1\.00x now\)"):  # fmt: skip
        Scratch.create(architecture_from=str(src)).check_done(done)


@pytest.mark.slow
def test_a_scratch_rerun_after_its_source_was_remade_is_refused_not_handed_the_old_result(tmp_path, run_py, tiny):
    src, scr = tmp_path / "src", tmp_path / "scr"
    common = [*tiny("save_model"), "save_model=true"]
    for cmd in (
        [*common, "method=l1_filter", "method.speedup=2", f"hydra.run.dir={src}"],
        [*common, "method=scratch", f"method.architecture_from={src}", f"hydra.run.dir={scr}"],
        [*common, "method=l1_filter", "method.speedup=3", "resume=false", f"hydra.run.dir={src}"],
    ):
        assert run_py(*cmd).returncode == 0
    again = run_py(*common, "method=scratch", f"method.architecture_from={src}", f"hydra.run.dir={scr}")
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert f"{scr} holds a completed run of this config, but it trained another architecture than" in again.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_run_without_checkpoints_stopped_says_nothing_was_saved_not_how_to_resume(tmp_path, start_run_py, tiny,
                                                                                    sig, code):  # fmt: skip
    run = tmp_path / "run"
    proc = start_run_py(*tiny(), "trainer.epochs=40", "method=dense", "checkpoint=false", f"hydra.run.dir={run}")
    deadline = time.time() + 240
    while not (run / "results.json").is_file() and time.time() < deadline:  # status running: training started
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == code and "Traceback" not in err, err[-2000:]
    assert "no checkpoint was saved (checkpoint=false): the same command starts the run again" in out + err
    assert "to resume" not in out + err and not (run / "checkpoint.pt").exists()


def _run_with_points(where, labels=("energy_0.05", "energy_0.1", "energy_0.2")):
    record(where, operating_points=[{"label": label, "status": "completed"} for label in labels])
    for i, label in enumerate(labels):
        record(where / label, top1=80.0 + i, point_of=str(where))
    return where


@pytest.mark.parametrize("when, gone", [("energy_0.1", "energy_0.2"), ("results.json", "energy_0.2"),
                                        ("energy_0.2", "energy_0.05"), ("results.json", "results.json")])  # fmt: skip
def test_a_report_never_counts_a_run_that_is_replaced_while_it_reads_it(tmp_path, monkeypatch, when, gone):
    """A rerun with resume=false removes the points, then the results: read meanwhile, the main result was counted
    with only some of its points (r29b F4, one read in 27 500)."""
    from svdbench.report import load

    run, other = _run_with_points(tmp_path / "runs" / "a"), _run_with_points(tmp_path / "runs" / "b")
    real = load.read_text

    def read_text(path, *args, **kwargs):
        text = real(path, *args, **kwargs)
        if Path(path) == (run / when / "results.json" if when != "results.json" else run / when):
            victim = run / gone
            if victim.is_dir():
                shutil.rmtree(victim)
            else:
                victim.unlink()
                record(run, status="running")  # the new run's first record
        return text

    monkeypatch.setattr(load, "read_text", read_text)
    runs, _, skipped = load.load_runs([tmp_path / "runs"])
    assert {r.path.parent for r in runs} == {other, *(other / p for p in ("energy_0.05", "energy_0.1", "energy_0.2"))}
    assert skipped  # each left out with a warning


def test_a_moved_runs_point_names_the_run_that_holds_it_now(tmp_path, capsys, tiny):
    old = _run_with_points(tmp_path / "e1", labels=("energy_0.05",))
    moved = tmp_path / "e1moved"
    old.rename(moved)
    err = refused(capsys, *tiny(), "method=dense", f"hydra.run.dir={moved / 'energy_0.05'}")
    assert f"is an operating point of the run in {moved} (recorded as {old}, moved since)" in err, err


# ------------------------------------------------ r29a: the report's --split, the record's schema


def test_split_by_a_key_the_dense_runs_have_keeps_them_the_dense_reference(tmp_path):
    from svdbench.report import build_report

    for seed in (0, 1):
        config = {"seed": seed, "trainer": {"lr": 0.002}}
        record(tmp_path / "runs" / f"d{seed}", "dense", seed, 90.0, 1000, config=config)
        record(tmp_path / "runs" / f"a{seed}", "alpha", seed, 88.0, 500, config={**config, "method": {"k": 1}})
    rep = build_report([tmp_path / "runs"], tmp_path / "rep", split=["trainer.lr", "trainer.lr"])
    assert sorted(r.method for r in rep.rows) == ["alpha (lr=0.002)", "dense"]
    table = (tmp_path / "rep" / "comparison.md").read_text()
    assert "-2.00" in table  # Δ dense of alpha against the dense runs: 88 - 90


@pytest.mark.parametrize("schema", [999, "1", 0, None, 1.0])
def test_a_record_of_another_schema_is_skipped_with_a_warning_not_read_as_this_ones(tmp_path, capsys, schema):
    from svdbench.report.load import load_runs

    record(tmp_path / "runs" / "other", schema=schema)
    record(tmp_path / "runs" / "ours", schema=1)
    record(tmp_path / "runs" / "by_hand")  # no schema: read as this version's
    runs, _, skipped = load_runs([tmp_path / "runs"])
    assert sorted(r.path.parent.name for r in runs) == ["by_hand", "ours"]
    assert "this svdbench reads results of schema 1" in skipped[0][1]
    assert "skipping" in capsys.readouterr().err


# ------------------------------------------------ r29a: DataLoader workers that fail, die or hang


class _Bad(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        raise ValueError(f"bad sample {i}")


def test_an_error_in_a_dataloader_worker_is_named_by_its_own_line_not_torchs_wrapper():
    loader = torch.utils.data.DataLoader(_Bad(), batch_size=2, num_workers=1)
    with pytest.raises(ValueError) as caught:
        next(iter(loader))
    assert one_line(caught.value) == "ValueError: bad sample 0"
    assert one_line(caught.value, with_type=True) == "ValueError: bad sample 0"


def test_a_second_stop_signal_raises_at_once_where_the_first_waits_for_the_next_step():
    with PreemptionGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard() and guard.signum == signal.SIGTERM  # the stage stops at its next step
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # a wait that never ends (a stuck DataLoader worker): the signal ends it
    with PreemptionGuard(orphaned=lambda: True) as guard:
        assert guard()  # orphaned: a stop, but no signal received
        os.kill(os.getpid(), signal.SIGTERM)  # the orphan watcher's: the first signal, taken at the next step
        assert guard.signum == signal.SIGTERM


DYING = """
import os
import torch
from svdbench.data.splits import DatasetSplits

class DS(torch.utils.data.Dataset):
    def __len__(self):
        return 128

    def __getitem__(self, i):
        if torch.utils.data.get_worker_info() is not None and i == 70:
            os._exit(3)  # as the out-of-memory killer ends a worker
        return torch.rand(3, 16, 16), i % 4

def dying(cfg, seed):
    return DatasetSplits(train=DS(), test=DS(), num_classes=4, input_shape=(3, 16, 16))
"""


@pytest.mark.slow
def test_a_dataloader_worker_that_dies_is_one_line_not_a_traceback(tmp_path, run_py, tiny):
    (tmp_path / "r29dying.py").write_text(DYING)
    mine = ["dataset._target_=r29dying.dying", "dataset.name=dying", "trainer.num_workers=2"]
    proc = run_py(*tiny(), "method=dense", *mine, f"hydra.run.dir={tmp_path / 'r'}", env={"PYTHONPATH": str(tmp_path)})
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in said, said[-3000:]
    assert "run failed: DataLoader worker (pid" in said and "exited unexpectedly" in said


@pytest.mark.parametrize("method", [["method=l1_filter", "method.speedup=1.5"], ["method=fpgm", "method.ratio=0.3"]])
def test_filter_pruning_of_a_model_torch_pruning_cannot_trace_is_one_line(capsys, tiny, method):
    vit = ["model=vit_fmnist", "model.kwargs.img_size=16", "model.kwargs.depth=0"]
    err = refused(capsys, *tiny(), *vit, *method, "--plan")
    assert "Torch-Pruning cannot trace the model's channels (ZeroDivisionError:" in err, err


# ------------------------------------------------ r29a: torchrun's variables set by hand


@pytest.mark.parametrize(
    "env, said",
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not a whole number"),
        ({"RANK": "abc"}, "RANK='abc' is not a whole number"),
        ({"MASTER_PORT": "abc"}, "MASTER_PORT='abc' is not a whole number"),
        ({"RANK": "5"}, "RANK=5 must be in [0, 1] (WORLD_SIZE=2)"),
        ({"RANK": "-1"}, "RANK=-1 must be in [0, 1] (WORLD_SIZE=2)"),
        ({"LOCAL_RANK": "-1"}, "LOCAL_RANK=-1 must be >= 0"),
        ({"MASTER_PORT": "70000"}, "MASTER_PORT=70000 must be in [1, 65535]"),
    ],
)
def test_torchruns_variables_set_by_hand_are_checked_before_anything_starts(monkeypatch, env, said):
    from svdbench import app

    base = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as refused_:
        app.torchrun_argv(["run.py", "hydra.run.dir=/x"])
    assert str(refused_.value).startswith(f"{said}: torchrun sets it")


def _rank(rank, port, tmp_path, *overrides):
    env = {**ENV, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}  # fmt: skip
    cmd = [sys.executable, "run.py", "+debug=tiny", "method=dense", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ranks_started_with_other_configs_are_refused_in_one_line_on_every_rank(tmp_path):
    port = _free_port()
    procs = [_rank(0, port, tmp_path, "seed=0"), _rank(1, port, tmp_path, "seed=1", "trainer.lr=5")]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 2 and "Traceback" not in err, err[-3000:]
        assert "rank 1 runs another config than rank 0" in out + err


@pytest.mark.slow
def test_a_rank_waiting_for_a_partner_that_never_comes_ends_on_sigterm(tmp_path):
    proc = _rank(0, _free_port(), tmp_path)
    time.sleep(12)  # in torch's rendezvous by now (or still starting: a stop there is one line too)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)  # torch's wait is 30 minutes
    assert proc.returncode in (143, -signal.SIGTERM)


TWIN = """
import signal, time
from svdbench import rundir, stop_channel
got = []
signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
rundir.RunLock.lender_gone = staticmethod(lambda: True)  # its locks' lender gone
stop_channel._owner.append(-1)  # and the channel's owner: both watchers find the orphan
rundir._watch_lender(0.01, grace=1.0)
stop_channel._watch_owner(0.01, grace=1.0)
time.sleep(0.5)
print(got, flush=True)
time.sleep(5)
print("still alive")
"""


def test_an_orphan_found_by_both_watchers_gets_one_sigterm_so_its_stage_still_saves():
    """A second SIGTERM stops a training stage at once (before it saves): the lender's and the channel's watchers
    each sent one to a worker of a lent sweep whose launching process died."""
    proc = subprocess.run([sys.executable, "-c", TWIN], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert proc.stdout.strip() == f"[{int(signal.SIGTERM)}]", proc.stdout + proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM


# ------------------------------------------------ r30b: a stop signal wrapped in another error


class _StopsWhileNamed:
    def __set_name__(self, owner, name):
        raise Terminated(signal.SIGTERM)  # as a signal handler raises it while a class is being made


def _wrapped_stop() -> BaseException:
    try:
        type("Made", (), {"field": _StopsWhileNamed()})  # Python 3.11: RuntimeError("Error calling __set_name__")
    except BaseException as err:
        return err
    raise AssertionError("no error")


def test_a_stop_signal_wrapped_in_another_error_is_an_interruption_recorded_as_such(tmp_path):
    from types import SimpleNamespace

    from svdbench.errors import interruption_in
    from svdbench.results import RunRecord
    from svdbench.stages import Leg, recorded

    wrapped = _wrapped_stop()
    assert isinstance(interruption_in(wrapped), Terminated) and interruption_in(ValueError("x")) is None
    rec = RunRecord(method="svd", model="m", dataset="d", seed=0, config={}, status="running")
    leg = Leg(method=None, record=rec, dir=tmp_path, checkpoints=None)
    with pytest.raises(Terminated), recorded(leg, SimpleNamespace(chain=lambda: None)):
        raise wrapped
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["status"] == "preempted" and saved["error"].startswith("interrupted (SIGTERM)")


WRAPPED_IN_JOB = """
import signal, sys
sys.argv = ["run.py", "+debug=tiny", "hydra.run.dir=" + sys.argv[1]]
from svdbench import train
from svdbench.errors import Terminated

def make_optimizer(*args, **kwargs):
    class Stops:
        def __set_name__(self, owner, name):
            raise Terminated(signal.SIGTERM)
    type("Made", (), {"field": Stops()})

train.make_optimizer = make_optimizer
import runpy
runpy.run_path("run.py", run_name="__main__")
"""


@pytest.mark.slow
def test_a_run_whose_stop_signal_came_wrapped_says_interrupted_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-c", WRAPPED_IN_JOB, str(tmp_path / "run")], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode == 143 and "Traceback" not in said, said[-3000:]
    assert "interrupted (SIGTERM): rerun with" in said
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "preempted"


# ------------------------------------------------ r30a: the settings column, a budget over finetune_epochs


def test_a_headline_key_that_varies_is_shown_at_its_default_too(tmp_path):
    from svdbench.report import build_report

    for target, macs in ((1.5, 660), (2.0, 500)):
        for seed in (0, 1):
            record(tmp_path / "runs" / f"l1_{target}_{seed}", "l1_filter", seed, 80.0, macs,
                   config={"seed": seed, "method": {"speedup": target}})  # fmt: skip
    rep = build_report([tmp_path / "runs"], tmp_path / "rep")
    assert sorted(r.settings for r in rep.rows) == ["speedup=1.5", "speedup=2"]


@pytest.mark.parametrize("case", ["not a url", "no folder", "other directions"])
def test_an_optuna_storage_the_sweep_cannot_use_is_one_line_before_it_starts(capsys, tiny, tmp_path, case):
    import optuna

    url = f"sqlite:///{tmp_path / 'st.db'}"
    if case == "other directions":
        optuna.create_study(study_name="svd_pareto", storage=url, directions=["maximize"])
        capsys.readouterr()  # Optuna's own line
    storage = {"not a url": "notaurl", "no folder": f"sqlite:///{tmp_path / 'nodir' / 'x.db'}"}.get(case, url)
    err = refused(capsys, "-m", "+sweep=optuna_pareto", *tiny(), "hydra.sweeper.n_trials=1",
                  f"hydra.sweeper.storage='{storage}'", f"hydra.sweep.dir={tmp_path / 'sw'}")  # fmt: skip
    said = {"not a url": "is not a database URL", "no folder": f"the folder {tmp_path / 'nodir'} does not exist",
            "other directions": "its study 'svd_pareto' runs in the directions ['maximize'], this sweep's are "
                                "['maximize', 'minimize']"}[case]  # fmt: skip
    assert said in err, err
    if case == "other directions":
        assert [t.state for t in optuna.load_study(study_name="svd_pareto", storage=url).trials] == []


def test_a_worker_death_the_loader_reports_is_not_called_an_input_error():
    """Seen by the loader itself (not by torch's SIGCHLD handler elsewhere), it was "input error: ... a batch could
    not be read", exit 2: the run failed, the data is not at fault."""
    from svdbench.data.batches import LoaderBatches

    class Dies:
        sampler = None

        def __iter__(self):
            return self

        def __next__(self):
            raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly with exit code 3.")

    with pytest.raises(RuntimeError, match=r"^DataLoader worker \(pid 1\) exited unexpectedly"):
        next(iter(LoaderBatches(Dies(), torch.device("cpu"))))
