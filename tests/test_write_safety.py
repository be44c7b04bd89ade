"""Reliability, third round: every file svdbench writes is its own and never written through a link; a
replaced run leaves nothing behind; one writer per run directory; every input is checked before work in
one line; tracking never costs a run. Each case failed before its fix (docs: README, "Reliability")."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ENV, ROOT

from svdbench import preflight
from svdbench.checkpoint import PreemptionGuard, load_checkpoint, save_checkpoint
from svdbench.config import LoggerConfig
from svdbench.data.splits import TensorSplits, check_splits
from svdbench.errors import CheckpointError, InputError
from svdbench.methods import Dense, SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.results import read_results
from svdbench.rundir import HOLDER_ENV, LOCK, RunLock, check_run_dir
from svdbench.tracking import Tracker, start

# ------------------------------------------------------------------ rule 1: its own files, never through a link


@pytest.mark.parametrize("name", [".svdbench.lock", "run.log", ".hydra/config.yaml", "results.json"])
def test_a_link_where_svdbench_writes_is_refused_and_the_victim_untouched(tmp_path, run_py, tiny, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    (run / name).parent.mkdir(parents=True)
    (run / name).symlink_to(victim)
    proc = run_py(*tiny(), f"hydra.run.dir={run}", timeout=120)
    assert proc.returncode == 2 and f"{name} is a link" in proc.stderr and "\n" not in proc.stderr.strip()
    assert victim.read_text() == "precious"


def test_the_lock_never_opens_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".svdbench.lock").symlink_to(victim)
    with pytest.raises(InputError, match="is a link, not svdbench's lock: remove it"):
        with RunLock(tmp_path / "run"):
            pass
    assert victim.read_text() == "precious"


def test_foreign_files_of_svdbench_names_are_refused_naming_them(tmp_path, tiny_cfg):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"my own model")
    (run / "dense.pt").write_bytes(b"my own weights")
    with pytest.raises(InputError, match=r"holds dense.pt, model.pt but no results.json"):
        run_experiment(tiny_cfg(), Dense(), run)
    assert (run / "model.pt").read_bytes() == b"my own model" and not (run / "results.json").exists()


# ------------------------------------------------------------------ rule 2: a replaced run leaves nothing behind


@pytest.mark.slow
def test_resume_false_removes_the_previous_runs_points_and_model(tmp_path, tiny_cfg):
    run = tmp_path / "run"
    run_experiment(tiny_cfg(save_model=True), SVDTraining.create(energy=0.05, energies=[0.2]), run)
    assert (run / "energy_0.2" / "results.json").is_file() and (run / "deployed.pt").is_file()
    (run / "notes.txt").write_text("mine")
    res = run_experiment(tiny_cfg(resume=False, save_model=False), SVDTraining.create(energy=0.1), run)
    assert res["status"] == "completed" and "operating_points" not in res
    assert not (run / "energy_0.2").exists() and not (run / "deployed.pt").exists()  # nothing left to count
    assert (run / "notes.txt").read_text() == "mine"  # what is not svdbench's stays


def test_resume_false_refuses_a_results_json_that_is_not_svdbench(tmp_path, tiny_cfg):
    (tmp_path / "results.json").write_text('{"status": "completed", "kept": true}')
    with pytest.raises(InputError, match="is not a svdbench result .*replaces only its own runs"):
        run_experiment(tiny_cfg(resume=False), Dense(), tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == {"status": "completed", "kept": True}


# ------------------------------------------------------------------ rule 3: one writer per run directory


@pytest.mark.slow
def test_a_sweep_whose_job_directory_is_held_writes_nothing(tmp_path, run_py, tiny):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    with RunLock(sweep / "0"):  # another process holds job 0's directory
        proc = run_py("-m", *tiny(), "seed=0,1", f"hydra.sweep.dir={sweep}", timeout=300)
    assert (
        proc.returncode == 2 and "job 0 (seed=0" in proc.stderr and "is in use by another svdbench run" in proc.stderr
    )
    assert sorted(p.name for p in sweep.rglob("*")) == ["0"]  # no .hydra, log or result written anywhere


@pytest.mark.slow
def test_a_joblib_sweeps_jobs_are_held_from_preflight_until_the_sweep_ends(tmp_path, run_py, start_run_py, tiny):
    """hydra/launcher=local_parallel: the launching process holds every job's lock for its workers, so a run
    started on a job's directory meanwhile is refused before it writes, and the job then records its own config."""
    sweep = tmp_path / "sweep"
    proc = start_run_py("-m", *tiny(), "seed=0,1,2,3,4,5", "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=1",
                        f"hydra.sweep.dir={sweep}")  # fmt: skip
    deadline = time.monotonic() + 240
    while not (sweep / "0" / "results.json").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before the test could try its directories"
    # the last job: five jobs still to run when the first is done (a loaded machine slows this command's start)
    single = run_py(*tiny(), "method=dense", f"hydra.run.dir={sweep / '5'}", timeout=120)
    assert single.returncode == 2 and "is in use by another svdbench run" in single.stderr, single.stderr[-2000:]
    assert proc.wait(timeout=300) == 0
    for job in ("0", "1", "2", "3", "4", "5"):
        assert json.loads((sweep / job / "results.json").read_text())["status"] == "completed"
        assert f"seed={job}" in (sweep / job / ".hydra" / "overrides.yaml").read_text()
        assert not (sweep / job / LOCK).exists()  # let go at the end
    assert "in use" not in (sweep / "5" / "run.log").read_text()


def test_a_lock_lent_to_workers_lets_only_the_holders_children_in(tmp_path):
    """A child of the holder that was lent its locks (the environment variable) writes under them; a child
    without it, and the holder's lock once let go, behave as usual."""
    RunLock.hold(tmp_path)
    enter = f"from svdbench.rundir import RunLock\nwith RunLock({str(tmp_path)!r}): print('in')"
    try:
        refused = subprocess.run([sys.executable, "-c", enter], capture_output=True, text=True, cwd=ROOT, env=ENV)
        assert refused.returncode != 0 and "is in use by another svdbench run" in refused.stderr
        RunLock.lend_to_workers()
        lent = subprocess.run([sys.executable, "-c", enter], capture_output=True, text=True, cwd=ROOT,
                              env={**ENV, HOLDER_ENV: os.environ[HOLDER_ENV]})  # fmt: skip
        assert lent.returncode == 0 and lent.stdout.strip() == "in", lent.stderr
        other = {**ENV, HOLDER_ENV: str(os.getpid() + 1)}  # another process's pid: not this child's parent
        refused = subprocess.run([sys.executable, "-c", enter], capture_output=True, text=True, cwd=ROOT, env=other)
        assert refused.returncode != 0 and "is in use" in refused.stderr
    finally:
        os.environ.pop(HOLDER_ENV, None)
        RunLock.release_held()
    assert not (tmp_path / LOCK).exists()
    with RunLock(tmp_path):  # free again
        pass


def test_jobs_sharing_one_directory_are_refused_before_the_sweep(tmp_path, run_py, tiny):
    proc = run_py("-m", *tiny(), "seed=0,1", "hydra.sweep.subdir=same", f"hydra.sweep.dir={tmp_path}/s", timeout=120)
    assert (
        proc.returncode == 2 and "hydra.sweep.subdir=same puts job 0 (seed=0) and job 1 (seed=1) in one" in proc.stderr
    )
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ rule 4: every input checked before work


@pytest.mark.parametrize(
    "args, line",
    [
        (["hydra.run.dir="], "config error: the run directory is empty: give hydra.run.dir=<dir>"),
        (["-m", "seed=0,1", "hydra.sweep.dir=FILE"], "config error: sweep directory FILE is a file, not a directory"),
        (["+experiment=svd_cifar10_official", "model=resnet20", "method=trp"],
         "config error: In 'recipe/svd_cifar10': ConfigKeyError raised while composing config: Key 'init' not in "
         "'TRPConfig'"),
        (["--config-path", "conf", "trainer.lr=-1"], "config error: trainer.lr must be > 0, got -1.0"),
        (["-m", "hydra/launcher=slurm", "seed=0,1"],
         "config error: hydra/launcher: SlurmLauncher needs a SLURM cluster (srun and sbatch on the PATH); on this "
         "machine run the sweep without it (the default launcher) or with hydra/launcher=local_parallel"),
        (["+debug=tiny", "method.energies=[0.1,0.1000001]"],
         "config error: method.energies label two points alike (energy_0.1): give distinct energies, got [0.1, "
         "0.1000001]"),
        (["-m", "trainer.lr=interval(0.001,0.01)"],
         "config error: trainer.lr=interval(0.001,0.01): the basic sweeper cannot sweep a range; list the values "
         "(key=a,b,c) or use a sampling sweeper (+sweep=optuna_pareto)"),
    ],
)  # fmt: skip
def test_command_line_mistakes_are_one_line_naming_the_cause(tmp_path, run_py, args, line):
    (tmp_path / "file").write_text("")
    args = [a.replace("FILE", str(tmp_path / "file")) for a in args]
    proc = run_py(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == line.replace("FILE", str(tmp_path / "file"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written, not even in the cwd


@pytest.mark.slow
def test_an_optuna_sweep_takes_an_interval(tmp_path, run_py, tiny):
    proc = run_py("-m", "+sweep=optuna_pareto", "trainer.lr=interval(0.001,0.01)", "hydra.sweeper.n_trials=1",
                  *tiny(), f"hydra.sweep.dir={tmp_path}/o", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_results(tmp_path / "o" / "0" / "results.json")["status"] == "completed"


def _splits(x, y, **kw):
    return TensorSplits(train=(x, y), test=(x, y), num_classes=10, mean=(0.5,), std=(0.5,), **kw)


@pytest.mark.parametrize(
    "splits, fragment",
    [
        (_splits(torch.rand(8, 1, 4, 4), torch.full((8,), 200)), "train: labels from 200 to 200, outside [0, 10)"),
        (_splits(torch.rand(64, 1, 4, 4), torch.zeros(10, dtype=torch.long)), "train: (64, 1, 4, 4) images and (10,)"),
        (TensorSplits(train=(torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)),
                      test=(torch.rand(8, 1, 20, 20), torch.zeros(8, dtype=torch.long)), num_classes=2, mean=(0.5,),
                      std=(0.5,)), "images of different shapes (train (1, 28, 28), test (1, 20, 20))"),
        (_splits(torch.rand(8, 1, 4, 4), torch.rand(8)), "labels of type torch.float32"),
    ],
)  # fmt: skip
def test_data_is_checked_as_a_whole_before_training(splits, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_splits(splits, "mine")


@pytest.mark.slow
def test_a_last_batch_of_one_sample_is_dropped_and_recorded(tmp_path, tiny_cfg):
    """BatchNorm on 1x1 maps (ResNet-18 on 16x16 inputs) cannot train on one sample: 129 images in batches
    of 128 drop the lone one each epoch instead of failing."""
    cfg = tiny_cfg(dataset={"num_train": 129}, trainer={"batch_size": 128})
    cfg.model.family, cfg.model.name = "torchvision", "resnet18"
    res = run_experiment(cfg, Dense(), tmp_path)
    assert res["status"] == "completed" and res["samples"]["dropped_per_epoch"] == 1
    assert res["samples"]["train"] == 129


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_it(tmp_path, tiny_cfg, start_run_py, wait_for_checkpoint):
    run = tmp_path / "run"
    proc = start_run_py("+debug=tiny", "trainer.epochs=3", "dataset.num_train=768", f"hydra.run.dir={run}")
    wait_for_checkpoint(proc, run, "train")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    state = load_checkpoint(run / "checkpoint.pt")
    plan = preflight.plan(preflight.compose_config(["+debug=tiny", "trainer.epochs=3", "dataset.num_train=768"]))
    for damage, fragment in [("step", "is at epoch 0, step 100000"), ("shape", "holds another model")]:
        bad = {**state, "train": dict(state["train"])}  # a fresh copy per case
        if damage == "step":
            bad["train"]["epoch"], bad["train"]["step_in_epoch"] = 0, 100000
        else:
            bad["train"]["model"] = {**bad["train"]["model"], "fc.weight": torch.zeros(3, 3)}
        save_checkpoint(bad, run / "checkpoint.pt")
        with pytest.raises(CheckpointError, match=fragment) as err:
            run_experiment(plan.cfg, plan.method, run)
        assert "checkpoint.pt" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_cut_run_resumes_when_only_where_the_data_lives_changed(tmp_path, start_run_py, wait_for_checkpoint, run_py):
    run = tmp_path / "run"
    base = ["+debug=tiny", "trainer.epochs=3", "dataset.num_train=768", f"hydra.run.dir={run}"]
    proc = start_run_py(*base)
    wait_for_checkpoint(proc, run, "train")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    other = run_py(*base, "trainer.lr=0.01", timeout=120)  # another experiment: refused, naming the key
    assert other.returncode == 2 and "trainer.lr: 0.002 there, 0.01 here" in other.stderr
    same = run_py(*base, f"dataset.root={tmp_path}", "trainer.eval_batch_size=17", "logger.level=WARNING", timeout=300)
    assert same.returncode == 0, same.stderr[-2000:]
    assert read_results(run / "results.json")["status"] == "completed"


@pytest.mark.slow
def test_init_from_is_found_from_the_launch_directory_when_the_job_changes_directory(tmp_path, run_py):
    dense = run_py("+debug=tiny", "method=dense", "hydra.run.dir=dense", cwd=tmp_path, timeout=300)
    assert dense.returncode == 0, dense.stderr[-2000:]
    proc = run_py("+debug=tiny", "method=l1_filter", "init_from=dense", "hydra.job.chdir=true", "hydra.run.dir=l1",
                  cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = read_results(tmp_path / "l1" / "results.json")
    # recorded absolute, as the run resolved it (round 10, F2): a later reader opens it from anywhere
    assert res["status"] == "completed" and res["init_from"] == str(tmp_path / "dense") and res["dense_start"]


# ------------------------------------------------------------------ rule 5: tracking never costs a run


def test_a_tracking_directory_that_cannot_be_made_switches_tracking_off(tmp_path, caplog):
    (tmp_path / "file").write_text("")
    cfg = LoggerConfig(name="wandb", mode="offline", dir=str(tmp_path / "file" / "wandb"))
    tracker = start(cfg, config={}, run_dir=tmp_path)
    assert type(tracker) is Tracker and "W&B tracking off" in caplog.text


def test_the_foreign_file_check_keeps_a_killed_runs_checkpoints(tmp_path):
    """A run killed before it wrote results.json (older versions) leaves checkpoints of its own: not foreign."""
    save_checkpoint({"version": 1, "config": {}, "stage": "train"}, tmp_path / "checkpoint.pt")
    check_run_dir(tmp_path)  # no error


@pytest.mark.slow
def test_of_two_runs_started_together_the_refused_one_writes_nothing(tmp_path, start_run_py, tiny):
    """The run's lock is taken in preflight, before Hydra writes .hydra/ and the log: the command that
    does not get it leaves the winner's recorded config as it was."""
    run = tmp_path / "run"
    procs = {m: start_run_py(*tiny(), f"method={m}", f"hydra.run.dir={run}") for m in ("svd", "trp")}
    outs = {m: p.communicate(timeout=300) for m, p in procs.items()}
    codes = {m: p.returncode for m, p in procs.items()}
    assert sorted(codes.values()) == [0, 2], outs
    winner = next(m for m, c in codes.items() if c == 0)
    loser = next(m for m, c in codes.items() if c == 2)
    assert "is in use by another svdbench run" in outs[loser][1]
    assert json.loads((run / "results.json").read_text())["method"] == winner
    assert f"method={winner}" in (run / ".hydra" / "overrides.yaml").read_text()
    assert f"method={loser}" not in (run / "run.log").read_text()


@pytest.mark.slow
def test_a_sweeps_later_job_directory_is_its_own_from_the_start(tmp_path, start_run_py, run_py, tiny):
    """A sweep of the basic launcher holds every job's lock from its preflight: a single run into a job
    directory the sweep has not reached yet is refused before it writes, and the job runs there later."""
    sweep = tmp_path / "sw"
    proc = start_run_py("-m", *tiny("trainer.epochs"), "trainer.epochs=8", "method=dense", "seed=0,1",
                        f"hydra.sweep.dir={sweep}")  # fmt: skip
    deadline = time.time() + 120
    while not (sweep / "0" / "results.json").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    single = run_py(*tiny(), "method=trp", f"hydra.run.dir={sweep / '1'}", timeout=120)
    out, err = proc.communicate(timeout=300)
    assert single.returncode == 2 and "is in use by another svdbench run" in single.stderr
    assert proc.returncode == 0, err[-2000:]
    assert json.loads((sweep / "1" / "results.json").read_text())["method"] == "dense"
    assert "method=trp" not in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.slow
def test_a_run_refused_in_its_job_leaves_the_directory_as_it_was(tmp_path, run_py, tiny):
    """An input found wrong only once the job runs (a starting point of another architecture): what Hydra
    wrote is put back, so another run's recorded config stays its own and a new directory is not left."""
    dense = tmp_path / "dense"
    assert run_py(*tiny(), "method=dense", f"hydra.run.dir={dense}").returncode == 0
    svd = tmp_path / "svd"
    assert run_py(*tiny(), "method=svd", f"hydra.run.dir={svd}").returncode == 0
    before = {p.name: p.read_bytes() for p in (svd / ".hydra").iterdir()}
    bad = ["model=resnet20", f"init_from={dense}", "method=svd"]
    proc = run_py(*tiny(), *bad, "resume=false", f"hydra.run.dir={svd}")
    assert proc.returncode == 2 and "holds another architecture" in proc.stdout + proc.stderr
    assert {p.name: p.read_bytes() for p in (svd / ".hydra").iterdir()} == before
    proc = run_py(*tiny(), *bad, f"hydra.run.dir={tmp_path / 'new'}")
    assert proc.returncode == 2 and not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", [".svdbench.lock", "run.log"])
def test_a_hard_link_where_svdbench_writes_in_place_is_refused_and_the_file_kept(tmp_path, capsys, tiny, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n" * 100)
    run = tmp_path / "run"
    run.mkdir()
    os.link(victim, run / name)
    with pytest.raises(SystemExit):
        preflight.preflight(["run.py", *tiny(), f"hydra.run.dir={run}"])
    assert f"{name} is a hard link" in capsys.readouterr().err
    assert victim.read_text() == "precious\n" * 100


def test_an_empty_hydra_file_a_killed_start_left_is_taken_as_hydras(tmp_path, capsys, tiny):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("")
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", *tiny(), f"hydra.run.dir={run}", "--plan"])
    assert stop.value.code == 0, capsys.readouterr().err


@pytest.mark.slow
def test_two_runs_started_together_without_a_directory_get_one_each(tmp_path, root, tiny):
    import subprocess
    import sys

    from conftest import ENV

    cmds = [[sys.executable, str(root / "run.py"), *tiny(), f"method={m}"] for m in ("svd", "trp")]
    procs = [subprocess.Popen(c, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in cmds]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    made = sorted(p.parent for p in (tmp_path / "outputs").rglob("results.json"))
    assert len(made) == 2 and {json.loads((d / "results.json").read_text())["method"] for d in made} == {"svd", "trp"}


def test_a_worker_whose_lender_is_gone_stops_as_if_terminated(monkeypatch):
    """A sweep's worker (its locks lent by its parent) whose parent died: the locks are let go, so it stops at its
    next step as on SIGTERM (checkpoint saved) instead of writing on as an orphan beside a rerun."""
    monkeypatch.setenv(HOLDER_ENV, "4194305")  # inherited, but no lock taken under it: not a worker
    assert not RunLock.lender_gone()
    monkeypatch.setattr(RunLock, "lender", str(os.getppid()))  # writing under its parent's lock: alive
    assert not RunLock.lender_gone()
    monkeypatch.setattr(RunLock, "lender", "4194305")  # under a lock of a parent it no longer has: gone
    assert RunLock.lender_gone()
    guard = PreemptionGuard(orphaned=lambda: True)
    assert guard() and guard.signum == signal.SIGTERM
    assert not PreemptionGuard(orphaned=lambda: False)()


@pytest.mark.slow
def test_killing_a_joblib_sweep_stops_its_workers_too(tmp_path, start_run_py, tiny):
    sweep = tmp_path / "sweep"
    proc = start_run_py("-m", *tiny(), "seed=0,1", "trainer.epochs=400", "hydra/launcher=local_parallel",
                        "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={sweep}")  # fmt: skip
    deadline = time.monotonic() + 240
    while not (sweep / "0" / "checkpoint.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # the launching process: its job locks go with it
    proc.wait(timeout=60)
    record = sweep / "0" / "results.json"
    while time.monotonic() < deadline:  # the worker stops at its next step, as on SIGTERM
        if record.is_file() and json.loads(record.read_text())["status"] != "running":
            break
        time.sleep(0.2)
    assert json.loads(record.read_text())["status"] == "preempted"


WATCH = """
import signal, time
from svdbench import rundir
got = []
signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
rundir.RunLock.lender_gone = staticmethod(lambda: False)
rundir._watch_lender(0.01, grace=0.5)
time.sleep(0.3)
print(got, end=" ")
rundir.RunLock.lender_gone = staticmethod(lambda: True)  # the sweep's launching process dies
time.sleep(0.2)
print(got, flush=True)
time.sleep(5)  # an idle worker that outlives the signal: ended after the grace
print("still alive")
"""


def test_a_worker_is_stopped_by_signal_whatever_it_does_when_its_lender_dies():
    """Not only between training steps (timing a model, writing results): a thread sends the worker SIGTERM."""
    proc = subprocess.run([sys.executable, "-c", WATCH], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert proc.stdout.strip() == f"[] [{int(signal.SIGTERM)}]", proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM


@pytest.mark.slow
def test_an_inherited_lender_variable_stops_nothing(tmp_path, run_py, tiny):
    """$SVDBENCH_LOCKS_HELD_BY leaked into a plain run (no lock lent to it): the run completes, no SIGTERM claimed."""
    proc = run_py(*tiny(), f"hydra.run.dir={tmp_path}/r", env={HOLDER_ENV: "1"}, timeout=300)
    assert proc.returncode == 0 and "SIGTERM" not in proc.stderr
    assert json.loads((tmp_path / "r" / "results.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_ctrl_c_on_a_joblib_sweep_is_one_line_from_each_process(tmp_path, tiny):
    """Ctrl-C reaches the whole process group: each job that was training saves its checkpoint and says how to
    resume; the launching process says so in one line (no traceback through joblib), exit code 130."""
    sweep = tmp_path / "sweep"
    argv = [sys.executable, str(ROOT / "run.py"), "-m", *tiny(), "seed=0,1", "trainer.epochs=400",
            "hydra/launcher=local_parallel", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not all((sweep / j / "checkpoint.pt").is_file() for j in "01") and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err + out, err[-3000:]
    assert "interrupted (SIGINT): the jobs that were training stopped (each resumes from its last epoch)" in err
