"""Reliability, round 11 (r11b: files written, concurrency and interruption; a hostile pass). Each case here
failed before its fix: a sweep's job refused as it starts leaving Hydra's files in another run's directory (F1),
a sweep whose end-of-sweep report was interrupted exiting 0 (F2), a failed-job record counted after the job's
directory got its completed run (F3) and a file of yours named ``.svdbench-kept.json`` deleted by a report (F4)."""

import inspect
import json
import logging
import shutil
import signal
from pathlib import Path

import hydra.core.utils as hydra_utils
import pytest
from conftest import record
from omegaconf import OmegaConf
from test_hostile_r10_writes import fake_hydra

from svdbench import app, cli, errors, rundir, sweep_report
from svdbench.report import build_report, outdir
from svdbench.report.load import load_runs
from svdbench.results import RESULTS_FILE
from svdbench.rundir import HydraWrites

# ------------------------------------------------------------------ F1: a refused job puts Hydra's files back


def test_hydra_writes_a_jobs_files_only_after_svdbench_takes_its_directory():
    """The snapshot of a sweep's job rides on Hydra's ``configure_log``, which ``run_job`` calls before it opens
    the job's log and writes ``.hydra/*.yaml`` (a Hydra that changes this order fails here)."""
    source = inspect.getsource(hydra_utils.run_job)
    assert source.index("configure_log(") < source.index("_save_config(")
    assert getattr(hydra_utils.configure_log, "takes_job_dir", False)


def completed_job(job: Path) -> dict[str, bytes]:
    """A completed run in ``job`` with Hydra's files: what they hold."""
    record(job)
    (job / ".hydra").mkdir(exist_ok=True)
    files = {
        f".hydra/{n}": f"{n}: the completed run's\n".encode() for n in ("config.yaml", "hydra.yaml", "overrides.yaml")
    }
    files["run.log"] = b"the completed run's log\n"
    for name, text in files.items():
        (job / name).write_bytes(text)
    return files


def test_a_refused_job_puts_back_its_directorys_hydra_files_and_log(tmp_path):
    job = tmp_path / "sw" / "0"
    before = completed_job(job)
    HydraWrites.take(job, ("run.log", ".hydra/"))  # as Hydra starts the job
    for name in before:  # what Hydra writes as the refused job starts
        (job / name).write_text("the refused job's\n")
    handler = logging.FileHandler(job / "run.log")  # Hydra's job log, open in the job's directory
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("svdbench").error("input error: the refused job's line")
        HydraWrites.restore(job)
        logging.getLogger("svdbench").warning("a line after the job was refused")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert {n: (job / n).read_bytes() for n in before} == before  # and nothing logged after it either


def test_a_jobs_snapshot_is_put_back_in_its_own_directory_only(tmp_path):
    job = tmp_path / "sw" / "0"
    completed_job(job)
    HydraWrites.take(job, ("run.log", ".hydra/"))
    (job / ".hydra" / "config.yaml").write_text("job 0's, as it ran on")
    HydraWrites.restore(tmp_path / "sw" / "1")  # job 1 refused in its own directory: nothing of job 0's touched
    assert (job / ".hydra" / "config.yaml").read_text() == "job 0's, as it ran on"


@pytest.fixture(scope="module")
def optuna_rerun(tmp_path_factory, run_py, tiny):
    """An Optuna sweep of one trial, rerun into its directory with another sampler seed: job 0, another trial,
    is refused as it starts (its directory holds the first trial's completed run). The sweep's directory, and
    what job 0's Hydra files and log held before the rerun."""
    sweep = tmp_path_factory.mktemp("r11") / "op"
    args = ("-m", "+sweep=optuna_pareto", *tiny(), "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep}")
    assert run_py(*args, timeout=200).returncode == 0
    before = {p.name: p.read_bytes() for p in [*(sweep / "0" / ".hydra").iterdir(), sweep / "0" / "run.log"]}
    proc = run_py(*args, "hydra.sweeper.sampler.seed=1", timeout=200)
    assert proc.returncode == 0 and "holds a completed run of another config" in proc.stderr, proc.stderr
    return sweep, before


@pytest.mark.slow
def test_an_optuna_rerun_leaves_a_completed_jobs_recorded_config_and_log_as_they_were(optuna_rerun):
    sweep, before = optuna_rerun
    after = {p.name: p.read_bytes() for p in [*(sweep / "0" / ".hydra").iterdir(), sweep / "0" / "run.log"]}
    assert after == before


# ------------------------------------------------------------------ F2: an interrupted sweep report is no success


@pytest.mark.parametrize(("signum", "how"), [(signal.SIGINT, "code"), (signal.SIGTERM, "code"),
                                             (signal.SIGINT, "raise"), (signal.SIGTERM, "raise")])  # fmt: skip
def test_a_sweep_whose_report_is_interrupted_exits_128_plus_the_signal(tmp_path, monkeypatch, caplog, signum, how):
    def interrupted(args):
        if how == "raise":  # the signal outside the report's own handling
            raise errors.Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        return 128 + signum

    monkeypatch.setattr(cli, "main", interrupted)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sw")}}})
    with pytest.raises(SystemExit) as stop:
        sweep_report.ReportAtEnd().on_multirun_end(config)
    assert stop.value.code == 128 + signum
    assert f"(exit {128 + signum}); make it with: svdbench report --out=" in caplog.text


def test_a_sweep_whose_report_fails_otherwise_still_ends_as_before(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cli, "main", lambda args: 1)
    sweep_report.ReportAtEnd().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert "(exit 1); make it with: svdbench report" in caplog.text


# ------------------------------------------------------------------ F3: a failure the job's own run made stale


def failed_job_1(sweep: Path, config: dict) -> Path:
    """Job 1 of ``sweep`` refused as it starts (its directory held another config's run): its failure recorded
    beside the jobs, with the config it would have recorded."""
    cfg = OmegaConf.create({"seed": 1, "model": {"name": "resnet8"}, "dataset": {"name": "synthetic"}})
    job = sweep / "1"
    app.record_failure(cfg, fake_hydra(sweep, 1), job, "InputError: holds a completed run of another config",
                       stage="input", config=config)  # fmt: skip
    where = sweep / rundir.FAILED_JOBS / "1" / RESULTS_FILE
    assert json.loads(where.read_text())["job_dir"] == "1"  # relative: a sweep moved elsewhere still finds it
    return job


def by_hand(sweep: Path, config: dict) -> Path:
    """The record :func:`failed_job_1` writes, as a file (without the job's directory, as an older svdbench wrote
    it: ``<sweep dir>/<num>`` is taken)."""
    where = sweep / rundir.FAILED_JOBS / "1"
    where.mkdir(parents=True)
    rec = {"status": "failed", "method": "svd", "model": "resnet8", "dataset": "synthetic", "seed": 1,
           "config": config, "error": "job 1 in ...: InputError: ...", "stage": "input"}  # fmt: skip
    (where / RESULTS_FILE).write_text(json.dumps(rec))
    return sweep / "1"


@pytest.mark.parametrize("write", [failed_job_1, by_hand])
def test_a_failed_job_record_is_dropped_once_the_jobs_directory_holds_its_own_completed_run(tmp_path, write):
    sweep = tmp_path / "sw"
    record(sweep / "0", seed=0)
    job = record(sweep / "1", seed=7, top1=50.0)  # another config's completed run, swapped in during the sweep
    write(sweep, {"seed": 1, "method": {"energy": 0.088}})
    assert len(load_runs([sweep])[1]) == 1  # still another config's run there: counted as failed
    record(job, seed=1, top1=88.0)  # the job's own config, run by hand into its directory
    runs, failed, skipped = load_runs([sweep])
    assert failed == [] and len(runs) == 2 and skipped == []


def test_a_failed_job_record_stays_counted_beside_a_run_of_another_config_made_later(tmp_path):
    sweep = tmp_path / "sw"
    record(sweep / "1", seed=7, top1=50.0)
    job = failed_job_1(sweep, {"seed": 1, "method": {"energy": 0.088}})
    record(job, seed=1, top1=77.0)  # made after the failure, but energy 0.077: not the job's config
    assert len(load_runs([sweep])[1]) == 1


@pytest.mark.slow
def test_a_refused_jobs_failure_goes_once_its_config_is_run_by_hand_into_its_directory(optuna_rerun, tmp_path, run_py):
    sweep = tmp_path / "op"
    shutil.copytree(optuna_rerun[0], sweep)
    failure = json.loads((sweep / rundir.FAILED_JOBS / "0" / RESULTS_FILE).read_text())
    assert len(load_runs([sweep])[1]) == 1
    shutil.rmtree(sweep / "0")  # the user's fix: the refused trial run into job 0's directory
    trial = [o for o in failure["overrides"] if not o.startswith("+sweep=")]  # its config, as a single run
    assert run_py(*trial, f"hydra.run.dir={sweep / '0'}", timeout=200).returncode == 0
    runs, failed, _ = load_runs([sweep])
    assert failed == [] and len(runs) == 1


# ------------------------------------------------------------------ F4: a .svdbench-kept.json of yours is kept


def test_a_file_of_yours_named_as_the_reports_kept_list_is_refused_and_kept(runs, tmp_path, capsys):
    out = tmp_path / "report"
    build_report([runs], out)
    summary = (out / "summary.json").read_bytes()
    (out / outdir.KEPT).write_text('["mine"]')
    assert cli.main(["report", "--out", str(out), str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out {out} holds {outdir.KEPT}, which this report writes: move yours or give another --out"
    assert (out / outdir.KEPT).read_text() == '["mine"]' and (out / "summary.json").read_bytes() == summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "runs"]  # no staging, no lock left


def test_a_kept_list_a_killed_report_left_in_out_goes_with_the_old_report(runs, tmp_path):
    out = tmp_path / "report"
    build_report([runs], out)
    outdir._write_kept(out, ["notes.txt"])  # a report killed between its swap and removing its list
    (out / "notes.txt").write_text("mine")
    build_report([runs], out)
    assert not (out / outdir.KEPT).exists() and (out / "notes.txt").read_text() == "mine"
