"""The command line of ``run.py``: Hydra composes the config, this module checks it and runs the job.

- :func:`start` runs before Hydra: the torchrun additions to the command line, the schemas in
  ConfigStore, and :func:`svdbench.preflight.preflight`, which composes, validates and plans every job
  and checks its directory, so that a mistake stops with one line, exit code 2 and nothing written.
- :func:`job` is the body of the Hydra task: plan the run, track, run the pipeline, and turn
  every kind of failure into the right exit code (single run) or a recorded failure (multirun).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import hydra.core.utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from . import config as schema
from . import distributed, stop_channel, tracking
from .checkpoint import CHECKPOINT
from .command_line import fail
from .errors import (
    RECEIVED,
    CheckpointError,
    DivergedError,
    InputError,
    Preempted,
    data_worker_died,
    interrupted_by,
    interruption_in,
    one_line,
    output_closed,
    printable,
    sigterm_raises,
    swallowed,
)
from .held_dirs import DirectoryGone, check_in_place
from .methods import Method
from .methods.base import METHOD_GROUPS
from .pipeline import Run
from .preflight import hydra_names, override_value, plan, preflight
from .results import RESULTS_FILE, RunRecord, read_results, write_results
from .rundir import (
    HOLDER_ENV,
    HydraWrites,
    RunLock,
    check_hydra_paths,
    check_owned,
    clear_failed_job,
    failed_job_dir,
    previous_record,
)
from .summary import summary
from .sweep_stop import CUT_SHORT, GRACE_S, LEFT_RUNNING, POOL_ENDED, WorkerLost, register_backend, workers_stop_first

log = logging.getLogger("svdbench")


# ---------------------------------------------------------------------- before Hydra


def torchrun_argv(argv: list[str]) -> list[str]:
    """Command-line checks and additions for ``run.py`` under torchrun (``WORLD_SIZE > 1``).

    Every rank must use the same run directory, which Hydra would otherwise derive from the start
    time of each process: ``hydra.run.dir=...`` is required (ValueError otherwise), and
    multirun is refused (launch one torchrun per job). Ranks other than 0 write no ``.hydra/``
    folder and log to ``<job>_rank<r>.log`` beside rank 0's ``<job>.log``.
    """
    problem = distributed.launcher_var_problem()
    if problem:
        raise ValueError(f"{problem}: torchrun sets it (see docs/distributed.md); unset WORLD_SIZE for one process")
    if distributed.world_size() <= 1:
        return argv
    missing = distributed.missing_launcher_vars()
    if missing:
        raise ValueError(
            f"WORLD_SIZE={distributed.world_size()} but {', '.join(missing)} not set: launch with torchrun "
            "(see docs/distributed.md), or unset WORLD_SIZE for one process"
        )
    args = argv[1:]
    if any(a in ("-m", "--multirun") for a in args):
        raise ValueError("multirun under torchrun is not supported: launch one torchrun per job")
    if any(a.startswith("-") for a in args):  # --cfg, --help, ...: nothing is run
        return argv
    if not any(a.lstrip("+").startswith("hydra.run.dir=") for a in args):
        raise ValueError(
            f"torchrun with WORLD_SIZE={distributed.world_size()} needs hydra.run.dir=<dir>, the same on every rank"
            " (see docs/distributed.md)"
        )
    r = distributed.rank()
    if r == 0:
        return argv
    extra = ["hydra.output_subdir=null"]
    if not any(a.startswith(("hydra/job_logging=", "hydra.job_logging")) for a in args):
        extra.append(
            f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/${{hydra.job.name}}_rank{r}.log"
        )
    return [argv[0], *args, *extra]


def launch(main: Callable[[], Any]) -> None:
    """Run Hydra's ``main`` (after :func:`start`); Ctrl-C reaching the launching process (a parallel launcher's
    pool, between jobs) is one line, exit code 130, instead of the pool's traceback: every job that was training
    saved its checkpoint and said how to resume."""
    taken = len(RECEIVED)
    if stop_channel.opened():  # a parallel sweep, whose workers can be told to stop (preflight)
        register_backend()
    try:  # outside training too (job set-up, between jobs): the locks let go at exit; a parallel sweep's
        with sigterm_raises(), workers_stop_first():  # workers save their checkpoints before the pool ends
            main()
            dropped = swallowed(taken)
            if dropped is not None:  # raised where Python dropped it (a weakref callback): the command ends now
                raise dropped
    except KeyboardInterrupt as err:
        name, code = interrupted_by(err)
        saved = "stopped (each resumes from its last epoch)" if name == "SIGINT" else "saved their checkpoints"
        if LEFT_RUNNING:  # a parallel sweep's workers that did not stop within the grace: ended by the pool
            left = ", ".join(str(d) for d in LEFT_RUNNING)
            when = "when a second signal came" if CUT_SHORT else f"after {GRACE_S:.0f} s"
            print(f"interrupted ({name}): the jobs in {left} were still running {when} and were ended "
                  f"(each resumes from its last saved checkpoint); the others {saved}; rerun the same command (with "
                  "its hydra.sweep.dir) to resume", file=sys.stderr)  # fmt: skip
        elif JOBS_STARTED or os.environ.get(HOLDER_ENV) or stop_channel.opened():  # parallel workers may have run
            print(f"interrupted ({name}): the jobs that were training {saved}; rerun the same command (with its "
                  "hydra.sweep.dir) to resume", file=sys.stderr)  # fmt: skip
        else:
            print(f"interrupted ({name}) before the first job started: nothing was trained; rerun the same "
                  "command to start", file=sys.stderr)  # fmt: skip
        raise SystemExit(code) from None
    except SystemExit as err:  # a job of a parallel sweep ended it (its worker said why): the pool ended them all
        if POOL_ENDED and err.code not in (0, None):
            left = f"; still running after {GRACE_S:.0f} s, so ended: {', '.join(map(str, LEFT_RUNNING))}" if (
                LEFT_RUNNING) else ""  # fmt: skip
            print(f"the sweep stopped: a job ended it (exit code {err.code}; its lines above say why); the jobs under "
                  f"way stopped and recorded it{left}; rerun the same command (with its hydra.sweep.dir) to resume",
                  file=sys.stderr)  # fmt: skip
        raise
    except WorkerLost as err:  # a parallel launcher's worker killed (out of memory, say), and with it the others
        print(f"error: a worker process of the sweep ended unexpectedly ({err.exit_codes()}; out of memory?), and the "
              "pool ended the others: each of their jobs resumes from its last saved checkpoint; rerun the same "
              "command (with its hydra.sweep.dir) to resume", file=sys.stderr)  # fmt: skip
        raise SystemExit(1) from None


#: the jobs this process has started (the default launcher runs a sweep's jobs in it)
JOBS_STARTED = 0


def start(argv: list[str]) -> list[str]:
    """Everything before Hydra: the torchrun additions to ``argv``, the schemas, the preflight."""
    try:  # under torchrun: the same hydra.run.dir on every rank, rank 0's files only
        argv = torchrun_argv(argv)
    except ValueError as err:
        fail(str(err))
    try:  # composing and checking a sweep's every job takes seconds: Ctrl-C then is one line too
        with sigterm_raises():
            schema.register_configs()
            return preflight(argv)
    except KeyboardInterrupt as err:
        RunLock.release_held(remove_made=True)  # the jobs' locks taken so far, and the directories they made
        name, code = interrupted_by(err)
        print(f"interrupted ({name}) while starting: nothing was run or written", file=sys.stderr)
        raise SystemExit(code) from None
    except BrokenPipeError:  # --plan or --cfg job read by `| head`: it has what it wanted
        RunLock.release_held(remove_made=True)
        raise SystemExit(output_closed()) from None


# ---------------------------------------------------------------------- the job


def take_job_dir() -> None:
    """As Hydra starts a sweep's job: what its directory holds where Hydra is about to write (its log, its
    ``.hydra/*.yaml``), for a job refused before its pipeline starts to put back (:class:`HydraWrites`); nothing
    outside a sweep's job, whose directory preflight could not take ahead (an Optuna trial, a directory changed
    during the sweep). Never in the way of the job: a directory it cannot read is not taken."""
    try:
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN or not hc.runtime.get("output_dir"):
            return  # a single run's directory preflight took; or Hydra's own logging, before any job
    except Exception:
        return
    HydraWrites.taken = None  # another job's
    _stop_if_gone(Path(hc.runtime.output_dir), Path(os.path.abspath(str(hc.sweep.dir))))
    if stop_channel.stopping(every=0):  # a parallel sweep stopping: its workers start no other job
        print(f"job {hc.job.num} not started: the sweep is stopping", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM)
    try:
        raw = OmegaConf.to_container(hc, resolve=False)
        names = hydra_names(raw, str(hc.job.name))
    except Exception:  # a name preflight refuses: nothing to look at or put back
        return
    try:  # a link put where Hydra writes since preflight (a job it could not check ahead: an Optuna trial)
        check_hydra_paths(Path(hc.runtime.output_dir), names)
    except InputError as err:
        print(f"error: {one_line(err)}; the sweep stops", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        if RunLock.held_elsewhere(hc.runtime.output_dir):  # another process logs there now: a put-back log
            names = tuple(n for n in names if n.endswith("/"))  # would erase its newest lines: the folder only
        HydraWrites.take(Path(hc.runtime.output_dir), names)
    except Exception:  # a name preflight refuses, a file that cannot be read: nothing to put back
        pass


def _stop_if_gone(job_dir: Path, sweep_dir: Path) -> None:
    """A job whose directory, taken ahead by preflight, was moved or removed since (with the sweep's directory, or
    alone): the sweep stops in one line, exit code 1, and the empty directories Hydra has just made again at the
    old path are removed (Hydra has not written into them yet)."""
    try:
        check_in_place(job_dir / RESULTS_FILE)
    except DirectoryGone as err:
        for made in (job_dir, *[p for p in job_dir.parents if p == sweep_dir or sweep_dir in p.parents]):
            with contextlib.suppress(OSError):
                os.rmdir(made)  # only while empty
        print(f"error: {one_line(err)}; the sweep stops", file=sys.stderr)
        raise SystemExit(1) from None


def _take_job_dir_first(configure_log: Callable) -> Callable:
    """Hydra's ``configure_log``, which its ``run_job`` calls for every job after making the job's directory and
    before it opens the job's log and writes ``.hydra/*.yaml`` there, with :func:`take_job_dir` first."""

    @functools.wraps(configure_log)
    def configure(*args, **kwargs):
        take_job_dir()
        return configure_log(*args, **kwargs)

    configure.takes_job_dir = True
    return configure


if not getattr(hydra_utils.configure_log, "takes_job_dir", False):  # in every process that runs jobs (joblib's too)
    hydra_utils.configure_log = _take_job_dir_first(hydra_utils.configure_log)


def _interrupted(err: KeyboardInterrupt, cfg, run_dir: Path, sweep: str | None) -> NoReturn:
    """A job stopped by Ctrl-C or a stop signal: one line saying how to go on, exit 128 + signal."""
    name, code = interrupted_by(err)
    if _completed(run_dir):  # it arrived as the run ended: nothing to resume
        log.warning("interrupted (%s) as the run ended: the results in %s are complete", name, run_dir)
    elif not cfg.get("checkpoint", True):
        log.warning("interrupted (%s): %s", name, not_saved(run_dir))
    else:
        log.warning("interrupted (%s): %s from the last epoch", name, resume_hint(run_dir, sweep))
    raise SystemExit(code) from None


def _completed(run_dir: Path) -> bool:
    try:
        return read_results(run_dir / RESULTS_FILE).get("status") == "completed"
    except (ValueError, OSError):
        return False


def not_saved(run_dir: Path) -> str:
    """What an interrupted run with ``checkpoint=false`` says: the next run starts again from the beginning, or
    resumes from the checkpoint an earlier run left there (this run's work since it is lost)."""
    if (run_dir / CHECKPOINT).is_file():
        return (f"no checkpoint was saved (checkpoint=false): the same command resumes from the one an earlier run "
                f"left ({run_dir / CHECKPOINT}), without this run's work since; resume=false starts again")  # fmt: skip
    return "no checkpoint was saved (checkpoint=false): the same command starts the run again from its beginning"


def resume_hint(run_dir: Path, sweep_dir: str | None = None) -> str:
    """How to go on after an interruption: a sweep's job by the sweep's own command into its directory (it keeps
    completed jobs and resumes this one; a time-stamped default would be a new one), a single run by its
    directory."""
    if sweep_dir is not None:  # quoted for Hydra's grammar, then for the shell: a line to paste
        pinned = shlex.quote(f"hydra.sweep.dir={override_value(str(sweep_dir))}")
        return f"rerun the sweep's command with {pinned} to resume (its completed jobs are kept)"
    return f"rerun with {shlex.quote(f'hydra.run.dir={override_value(str(run_dir))}')} to resume"


def sweep_objectives(hc) -> int:
    """How many values the sweeper expects back: 0 (not Optuna: top1 is returned for the record),
    1 (Optuna, one direction) or the length of Optuna's ``direction`` list."""
    sweeper = hc.sweeper
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return 0
    direction = sweeper.get("direction")
    return len(direction) if OmegaConf.is_list(direction) else 1


def objective(hc, results: dict):
    """The accuracy the sweeper optimises, validation top-1 where the run held a validation split out
    (the test set never selects), else test top-1; with (.., macs) for a multi-objective Optuna
    sweep (``direction: [maximize, minimize]``)."""
    top1 = results["val_top1"] if results.get("val_top1") is not None else results["top1"]
    return (top1, results["macs"]) if sweep_objectives(hc) >= 2 else top1


def failed_job(hc, reason: str):
    """What a failed multirun job hands back: NaN for Hydra's basic sweeper (the other jobs go on),
    an exception for Optuna (which records the trial as FAIL; a NaN would break its bookkeeping)."""
    if sweep_objectives(hc):
        raise RuntimeError(f"job failed: {reason}") from None
    return math.nan


def record_failure(cfg: DictConfig, hc, run_dir: Path, reason: str, stage: str, config: dict | None = None) -> None:
    """results.json with ``status: failed`` and the reason, for a multirun job that stopped before
    the pipeline could write one; ``config``: the config the run would record (its plan's), where it was planned.
    A results.json already there is kept when it is completed (never
    lose a finished result) or when it already records this failure (the pipeline wrote it). A failure its
    directory cannot take (a completed result there, another process holding it) is recorded in the sweep's
    directory instead (:data:`svdbench.rundir.FAILED_JOBS`), so that the sweep's report counts the job as failed."""
    try:
        with RunLock(run_dir):
            why = _record_failure(cfg, hc, run_dir, reason, stage, config)
            if why is None:
                return
    except InputError as err:
        why = str(err)
    where = failed_job_dir(str(hc.sweep.dir), hc.job.num, run_dir)
    try:
        for p in (where.parent, where):
            if p.is_symlink():
                raise InputError(f"{p} is a link: svdbench never writes through it")
        with RunLock(where):
            old = previous_record(where)
            if old is not None and old.get("status") != "failed":
                raise InputError(f"{where / RESULTS_FILE} holds a run that is no job's failure")
            failure = _failure_record(cfg, hc, f"job {hc.job.num} in {run_dir}: {reason}", stage, config)
            failure.job_dir = _job_dir(run_dir, str(hc.sweep.dir))  # dropped once that holds the job's own run
            write_results(where, failure)
        log.warning("job %s's failure is recorded in %s (%s)", hc.job.num, where, why)
    except (InputError, OSError) as err:
        log.warning("job %s's failure is not recorded (%s; %s)", hc.job.num, why, one_line(err))


def _job_dir(run_dir: Path, sweep_dir: str) -> str:
    """A job's directory as a failure recorded beside the jobs names it: relative to the sweep's directory where
    it lies inside (a sweep moved elsewhere still finds it), else absolute."""
    job, sweep = Path(os.path.abspath(run_dir)), Path(os.path.abspath(sweep_dir))
    return str(job.relative_to(sweep)) if job.is_relative_to(sweep) and job != sweep else str(job)


def _record_failure(cfg: DictConfig, hc, run_dir: Path, reason: str, stage: str, config: dict | None) -> str | None:
    """None where the failure is recorded in ``run_dir`` (written now, or already there); else why not: a
    completed result there is kept, and so are files svdbench did not write (a results.json not its own, a deployed
    model or checkpoint without one: a failure record beside them would make them the job's to replace)."""
    path = run_dir / RESULTS_FILE
    try:
        old = read_results(path) if os.path.lexists(path) else None
    except (ValueError, OSError):
        return f"{path} is not svdbench's, and is kept"
    if old is not None and old.get("error") == reason:
        return None
    if old is not None and old.get("status") == "completed":
        return f"{run_dir} holds a completed result, which is kept"
    if old is None:
        try:
            check_owned(run_dir)
        except (InputError, CheckpointError) as err:
            return one_line(err)
    write_results(run_dir, _failure_record(cfg, hc, reason, stage, config))
    return None


def _failure_record(cfg: DictConfig, hc, reason: str, stage: str, config: dict | None = None) -> RunRecord:
    """The record of a failed job: ``config`` (its plan's, as a completed run records it) or else ``cfg`` resolved."""
    try:
        config = config if config is not None else OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable interpolation may be the very error
        config = OmegaConf.to_container(cfg, resolve=False)
    method = hc.runtime.choices.get("method") or OmegaConf.select(cfg, "method._target_", default="?")
    return RunRecord(
        status="failed",
        error=reason,
        stage=stage,
        method=str(method),
        model=str(OmegaConf.select(cfg, "model.name", default="?")),
        dataset=str(OmegaConf.select(cfg, "dataset.name", default="?")),
        seed=OmegaConf.select(cfg, "seed", default=None),
        config=config,
        overrides=list(hc.overrides.task),
    )


def _config(planned) -> dict | None:
    """The config a planned job records (None: not planned)."""
    return planned.config if planned is not None else None


def failure_note(path: Path) -> str:
    """What the line of a failed run says of its record ``path``: where the failure is recorded, only when
    results.json says so (status failed); that it could not be recorded (a full disk) otherwise."""
    try:
        status = read_results(path).get("status") if path.is_file() else None
    except (ValueError, OSError):
        status = "unreadable"
    if status == "failed":
        return f" (recorded in {path})"
    if status is None:  # it failed before the run wrote its record
        return ""
    return f" (the failure could not be recorded either: {path} still says {status})"


def wandb_names(hc) -> dict:
    """W&B group (shared by the jobs of one multirun, from the sweep directory) and run name."""
    if hc.mode != RunMode.MULTIRUN:
        return {"group": None, "name": None}
    name = f"{hc.job.num}-{hc.job.override_dirname}" if hc.job.override_dirname else str(hc.job.num)
    return {"group": tracking.group_from_sweep_dir(hc.sweep.dir), "name": name[:128]}


def _warn_unused_groups(method: Method, hc) -> None:
    """A warning for each group of METHOD_GROUPS set on the command line that the method does not take."""
    for group in set(METHOD_GROUPS) - set(method.Config.groups()):
        given = [o for o in hc.overrides.task if o.lstrip("+~").startswith(group)]
        if given:
            log.warning("method %s takes no %s: %s ignored", method.name, group, " ".join(given))


class PrintableRecords(logging.Filter):
    """A handler's filter that makes every record's text :func:`~svdbench.errors.printable`: a run directory
    whose name is not UTF-8 (``caf\\xe9``) is logged as ``caf\\xe9``, where the UTF-8 log file (Hydra's
    ``<job>.log``) or a strict console would refuse it with a "--- Logging error ---" traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not fit: logging reports that as it always does
            return True
        shown = printable(text)
        if shown != text:
            record.msg, record.args = shown, ()
        if record.exc_info and not record.exc_text:  # the traceback, formatted here so that it can be shown
            record.exc_text = printable(logging.Formatter().formatException(record.exc_info))
        return True


def printable_log() -> None:
    """:class:`PrintableRecords` on every handler of the root logger (where Hydra's job logging puts its
    console and file handlers, anew for every job of a multirun) and of svdbench's logger."""
    for handler in (*logging.getLogger().handlers, *log.handlers):
        if not any(isinstance(f, PrintableRecords) for f in handler.filters):
            handler.addFilter(PrintableRecords())


def job(cfg: DictConfig) -> float | tuple[float, float]:
    """The Hydra task: one run (or one job of a multirun) of the composed ``cfg``; in a parallel sweep's worker,
    marked under way for the launching process while it runs (:func:`svdbench.stop_channel.busy`)."""
    with stop_channel.busy(HydraConfig.get().runtime.output_dir):
        return _job(cfg)


def _job(cfg: DictConfig) -> float | tuple[float, float]:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    sweep = os.path.abspath(str(hc.sweep.dir)) if multirun else None
    logging.getLogger("svdbench").setLevel(cfg.logger.level)
    printable_log()
    global JOBS_STARTED
    JOBS_STARTED += 1
    tracker, ok, planned = tracking.Tracker(), False, None
    if multirun:  # a failure an earlier try of the sweep recorded beside the jobs is no longer so
        clear_failed_job(sweep, hc.job.num, run_dir)
    try:
        planned = plan(cfg, base=hc.runtime.cwd)  # the launch directory, also after hydra.job.chdir
        typed, method = planned.cfg, planned.method
        _warn_unused_groups(method, hc)
        tags = [method.name, typed.model.name, typed.dataset.name]
        if distributed.is_main():  # torchrun: one tracked run, from rank 0, begun once the directory is the run's
            tracker = tracking.Pending(typed.logger, config=planned.config, run_dir=run_dir, tags=tags,
                                       **wandb_names(hc))  # fmt: skip
        results = Run(planned, run_dir, tracker=tracker).execute()
        if multirun:  # a completed run of this config, kept as it was (results.json unchanged): its .hydra and log too
            HydraWrites.restore(run_dir)
        tracker.log_results(RunRecord.from_dict(results))
        ok = results.get("status") == "completed"
    except Preempted as err:
        if err.completed:
            log.warning("%s after the last training step: the results in %s are complete", err, run_dir)
        elif not cfg.get("checkpoint", True):
            log.warning("%s: %s", err, not_saved(run_dir))
        else:
            log.warning("%s: checkpoint saved in %s; %s", err, run_dir, resume_hint(run_dir, sweep))
        raise SystemExit(128 + err.signum) from None
    except KeyboardInterrupt as err:
        _interrupted(err, cfg, run_dir, sweep)
    except (CheckpointError, InputError) as err:
        what = "input error: " if isinstance(err, InputError) else ""
        log.error("%s%s", what, err)
        if multirun:
            record_failure(cfg, hc, run_dir, f"{type(err).__name__}: {err}", "input", _config(planned))
            HydraWrites.restore(run_dir)  # refused before the run began: another run's .hydra and log as they were
            return failed_job(hc, str(err))
        logging.shutdown()  # the log file closed before what Hydra wrote is put back
        HydraWrites.restore()  # refused before the run began: the directory as it was
        raise SystemExit(2) from None
    except DirectoryGone as err:  # nothing can be recorded there: a failure record would make it again
        log.error("run failed: %s%s", one_line(err), "; the sweep stops" if multirun else "")
        raise SystemExit(1) from None
    except (DivergedError, OSError) as err:  # not a bug: one line (the pipeline recorded it where it could)
        if multirun:  # the sweep goes on; the line says which job failed, as for any other failure
            log.error("job %s failed: %s", hc.job.num, one_line(err))
            record_failure(cfg, hc, run_dir, f"{type(err).__name__}: {err}", "run", _config(planned))
            return failed_job(hc, one_line(err))
        log.error("run failed: %s%s", one_line(err), failure_note(run_dir / RESULTS_FILE))
        raise SystemExit(1) from None
    except Exception as err:
        stop = interruption_in(err)
        if stop is not None:  # a stop signal wrapped in another error: an interruption still
            _interrupted(stop, cfg, run_dir, sweep)
        if not multirun and data_worker_died(err):  # raised wherever the main process was: not a bug of ours
            log.error("run failed: %s%s", one_line(err), failure_note(run_dir / RESULTS_FILE))
            raise SystemExit(1) from None
        if not multirun:
            raise
        # the pipeline wrote results.json (status failed) if training had started; the sweep goes on
        if data_worker_died(err):
            log.error("job %s failed: %s", hc.job.num, one_line(err))
        else:
            log.exception("job %s failed", hc.job.num)
        record_failure(cfg, hc, run_dir, f"{type(err).__name__}: {err}", "run", _config(planned))
        return failed_job(hc, one_line(err))
    finally:
        tracker.finish(exit_code=0 if ok else 1)
    log.info(summary(results, run_dir))
    failed = [str(p.get("label")) for p in results.get("operating_points") or [] if p.get("status") == "failed"]
    if failed:  # the main result stands (a sweep goes on with it); a single run ends with exit code 1
        log.error(
            "operating point%s %s failed (the reasons are above and in %s); rerun the same command to make %s",
            "s" * (len(failed) > 1), ", ".join(failed), RESULTS_FILE, "them" if len(failed) > 1 else "it",
        )  # fmt: skip
        if not multirun:
            raise SystemExit(1)
    return objective(hc, results)
