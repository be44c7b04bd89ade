"""The command line of ``run.py``: Hydra composes the config, this module checks it and runs the job.

- :func:`start` runs before Hydra: the torchrun additions to the command line, the schemas in
  ConfigStore, and :func:`preflight`, which composes and validates the config (of a single run, or
  every value of a multirun's command-line axes) so that a wrong key, type or value stops with one
  line, exit code 2 and nothing written; a single run's directory is checked too.
- :func:`job` is the body of the Hydra task: plan the run, track, run the pipeline, and turn
  every kind of failure into the right exit code (single run) or a recorded failure (multirun).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from . import config as schema
from . import distributed, tracking
from .errors import CheckpointError, DivergedError, InputError, Preempted, one_line
from .methods import Method
from .methods.base import METHOD_GROUPS
from .pipeline import Run
from .plan import RunPlan, make_plan
from .results import RESULTS_FILE, RunRecord, read_results, write_results
from .rundir import RunLock, check_run_dir, check_sweep_dir
from .summary import summary

log = logging.getLogger("svdbench")
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def plan(cfg: DictConfig, base: str | None = None) -> RunPlan:
    """The plan of the composed config ``cfg``: validated, the method built from its config and
    configured for the run (its starting point, the budget), a relative ``init_from`` taken from
    ``base`` (the launch directory; default: the current one); InputError in one line."""
    typed = schema.validate(cfg)
    cls = schema.method_class(typed.method)
    try:
        method = cls(typed.method)
    except (ValueError, TypeError) as err:
        raise InputError(one_line(err)) from None
    return make_plan(typed, method, base)


# ---------------------------------------------------------------------- before Hydra


@dataclass
class CommandLine:
    """What preflight needs of ``run.py``'s arguments."""

    overrides: list[str]
    config_dir: str | None = None
    config_path: str | None = None  # --config-path: the primary config directory instead of svdbench's conf/
    config_name: str = "config"
    multirun: bool = False
    print_job: bool = False  # --cfg job (with or without --resolve): print the run's config, run nothing


def parse_command_line(args: list[str]) -> CommandLine:
    """The overrides and the options preflight understands; ValueError for another option
    (``--help``, ``--cfg``, ...: nothing is run, it is left to Hydra)."""
    line = CommandLine([])
    it = iter(args)
    for a in it:
        flag, eq, value = a.partition("=")
        if flag in ("--cfg", "-c"):
            if (value if eq else next(it, "")) != "job":
                raise ValueError(a)  # --cfg hydra / all: Hydra's
            line.print_job = True
        elif a == "--resolve" and line.print_job:
            pass
        elif flag in ("--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp"):
            value = value if eq else next(it, "")
            if flag in ("--config-dir", "-cd"):
                line.config_dir = value
            elif flag in ("--config-path", "-cp"):
                line.config_path = value
            else:
                line.config_name = value
        elif a in ("-m", "--multirun"):
            line.multirun = True
        elif a.startswith("-"):
            raise ValueError(a)
        else:
            line.overrides.append(a)
    return line


def sweep_points(overrides: list[str]) -> list[list[str]]:
    """The jobs of a command-line sweep worth checking before it starts: the first value of every
    axis, then every other value of each axis with the others at their first. An axis that is not a
    finite list (``interval(a, b)``, for a sweeper that samples) is checked at its lower end ``a``."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    axes = []
    for text, o in zip(overrides, parsed, strict=True):
        key = text.split("=", 1)[0]
        if o.is_sweep_override() and not o.is_discrete_sweep():
            axes.append([f"{key}={o.value().start}"])
            continue
        try:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else None
        except Exception:  # not a sweep Hydra can list
            values = None
        axes.append([f"{key}={v}" for v in values] if values else [text])
    first = [a[0] for a in axes]
    points = [first]
    for i, axis in enumerate(axes):
        points += [[*first[:i], v, *first[i + 1 :]] for v in axis[1:]]
    return points


def preset_axes(line: CommandLine, first: list[str]) -> list[str]:
    """The sweep axes a preset declares (``hydra.sweeper.params`` of ``+sweep=...``), as overrides, but
    for keys the command line sets itself: preflight checks their values as the command line's. ``first``:
    the command line's first job (its axes at their first values)."""
    cfg = compose_config(first, line.config_dir, line.config_name, hydra=True, config_path=line.config_path)
    params = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False).get("params") or {}
    given = {o.split("=", 1)[0].lstrip("+~") for o in line.overrides}
    return [f"{k}={v}" for k, v in params.items() if k not in given]


def sampled_axes(overrides: list[str]) -> list[str]:
    """The overrides that a sampling sweeper (Optuna) draws from, not a list: ``interval(a, b)``."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        text for text, o in zip(overrides, parsed, strict=True) if o.is_sweep_override() and not o.is_discrete_sweep()
    ]


def compose_config(
    overrides: list[str],
    config_dir: str | None = None,
    config_name: str = "config",
    hydra: bool = False,
    config_path: str | None = None,
) -> DictConfig:
    """The config Hydra composes for ``overrides`` (``config_dir``: a user config directory searched
    beside svdbench's, as ``--config-dir`` does; ``config_path``: the primary config directory instead
    of svdbench's, absolute or relative to run.py's, as ``--config-path`` does; ``hydra``: with its
    ``hydra`` node, resolved)."""
    if config_dir:
        overrides = [*overrides, f"hydra.searchpath=[file://{os.path.abspath(config_dir)}]"]
    primary = os.path.join(os.path.dirname(CONF_DIR), config_path) if config_path else CONF_DIR
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=primary, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra)


def preflight(argv: list[str]) -> None:
    """Compose and validate the config before Hydra starts: exit code 2 with one line on stderr for
    any mistake, nothing written. A single run also has its run directory checked (writable, not
    holding another experiment); a multirun has every value of its axes checked (the command line's
    and its preset's ``hydra.sweeper.params``). ``--cfg job`` prints the config the run (or the
    sweep's first job) would record (what runs: resolved, the method configured for its starting point
    and budget) and exits; ``--help``, ``--cfg hydra`` and the like are left to
    Hydra."""
    try:
        line = parse_command_line(argv[1:])
    except ValueError:
        return
    try:
        overrides = line.overrides + (preset_axes(line, sweep_points(line.overrides)[0]) if line.multirun else [])
        points = sweep_points(overrides) if line.multirun else [overrides]
        sampled = sampled_axes(overrides)
    except InputError as err:
        fail(str(err))
    except Exception as err:  # an override Hydra cannot parse
        fail(schema.explain(err))
    if sampled and not line.multirun:
        fail(f"{sampled[0]} is a range to sample: run a sweep (-m) with a sampling sweeper (+sweep=optuna_pareto)")
    plans = []
    for point in points:
        try:
            cfg = compose_config(point, line.config_dir, line.config_name, hydra=True, config_path=line.config_path)
            if sampled and "optuna" not in str(OmegaConf.select(cfg, "hydra.sweeper._target_", default="")).lower():
                fail(f"{sampled[0]}: the basic sweeper cannot sweep a range; list the values (key=a,b,c) or use a "
                     "sampling sweeper (+sweep=optuna_pareto)")  # fmt: skip
            run_dir = OmegaConf.select(cfg, "hydra.run.dir")
            cfg_hydra = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)
            launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
            with open_dict(cfg):
                del cfg["hydra"]
            plans.append(plan(cfg))
        except InputError as err:
            fail(str(err))
        except Exception as err:
            fail(schema.explain(err))
    planned = plans[-1]
    if line.print_job:
        what = (
            f"the first of the sweep's jobs ({' '.join(points[0]) or 'no override'})" if line.multirun else "this run"
        )
        print(f"# the config {what} records in results.json: resolved, the method configured for its start and budget")
        print(OmegaConf.to_yaml(plans[0].config), end="")
        raise SystemExit(0)
    if line.multirun:
        check_launcher(launcher)
        check_sweep(cfg_hydra, len(points))
        return
    try:
        check_run_dir(run_dir)
    except InputError as err:
        fail(str(err))
    run_dir = Path(run_dir)
    try:  # before Hydra writes its .hydra/ into that directory
        done = Run(planned, run_dir).completed_result()
    except InputError as err:
        fail(str(err))
    if done is not None:  # nothing to do: say so, leave the directory as it is
        print(f"run directory {run_dir} already holds a completed run of this config\n{summary(done, run_dir)}")
        raise SystemExit(0)


#: launchers that need a program on the PATH: the part of ``hydra.launcher._target_`` -> (program, what)
LAUNCHER_NEEDS = {"SlurmLauncher": ("srun", "a SLURM cluster (srun and sbatch on the PATH)")}


def check_launcher(target: str) -> None:
    """A launcher that cannot start here is refused in one line before the sweep (submitit's SLURM
    launcher off a cluster), instead of its traceback."""
    for part, (program, what) in LAUNCHER_NEEDS.items():
        if part in target and shutil.which(program) is None:
            fail(
                f"hydra/launcher: {target.rsplit('.', 1)[-1]} needs {what}; on this machine run the sweep without it "
                "(the default launcher) or with hydra/launcher=local_parallel"
            )


def check_sweep(sweep: dict, jobs: int) -> None:
    """A multirun's sweep directory can be made and written (no link where Hydra writes), and its jobs
    do not share one directory (a ``hydra.sweep.subdir`` that names no job: ``${hydra.job.num}``)."""
    try:
        check_sweep_dir(sweep.get("dir") or "")
    except InputError as err:
        fail(str(err))
    subdir = str(sweep.get("subdir") or "")
    if jobs > 1 and "${" not in subdir:
        fail(
            f"hydra.sweep.subdir={subdir!r} puts every job of the sweep in one directory: name each job's own "
            "(the default ${hydra.job.num}, or e.g. seed${seed})"
        )


def fail(message: str) -> None:
    print(f"config error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def torchrun_argv(argv: list[str]) -> list[str]:
    """Command-line checks and additions for ``run.py`` under torchrun (``WORLD_SIZE > 1``).

    Every rank must use the same run directory, which Hydra would otherwise derive from the start
    time of each process: ``hydra.run.dir=...`` is required (ValueError otherwise), and
    multirun is refused (launch one torchrun per job). Ranks other than 0 write no ``.hydra/``
    folder and log to ``<job>_rank<r>.log`` beside rank 0's ``<job>.log``.
    """
    if distributed.world_size() <= 1:
        return argv
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


def start(argv: list[str]) -> list[str]:
    """Everything before Hydra: the torchrun additions to ``argv``, the schemas, the preflight."""
    try:  # under torchrun: the same hydra.run.dir on every rank, rank 0's files only
        argv = torchrun_argv(argv)
    except ValueError as err:
        fail(str(err))
    schema.register_configs()
    preflight(argv)
    return argv


# ---------------------------------------------------------------------- the job


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


def record_failure(cfg: DictConfig, hc, run_dir: Path, reason: str, stage: str) -> None:
    """results.json with ``status: failed`` and the reason, for a multirun job that stopped before
    the pipeline could write one. A results.json already there is kept when it is completed (never
    lose a finished result) or when it already records this failure (the pipeline wrote it); a
    directory another process holds (its run lock) is left to it, with a warning."""
    try:
        with RunLock(run_dir):
            _record_failure(cfg, hc, run_dir, reason, stage)
    except InputError as err:
        log.warning("job %s's failure is not recorded in %s: %s", hc.job.num, run_dir, err)


def _record_failure(cfg: DictConfig, hc, run_dir: Path, reason: str, stage: str) -> None:
    path = run_dir / RESULTS_FILE
    try:
        old = read_results(path) if path.is_file() else None
    except (ValueError, OSError):
        old = None
    if old is not None and (old.get("status") == "completed" or old.get("error") == reason):
        return
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable interpolation may be the very error
        config = OmegaConf.to_container(cfg, resolve=False)
    method = hc.runtime.choices.get("method") or OmegaConf.select(cfg, "method._target_", default="?")
    write_results(
        run_dir,
        RunRecord(
            status="failed",
            error=reason,
            stage=stage,
            method=str(method),
            model=str(OmegaConf.select(cfg, "model.name", default="?")),
            dataset=str(OmegaConf.select(cfg, "dataset.name", default="?")),
            seed=OmegaConf.select(cfg, "seed", default=None),
            config=config,
            overrides=list(hc.overrides.task),
        ),
    )


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


def job(cfg: DictConfig) -> float | tuple[float, float]:
    """The Hydra task: one run (or one job of a multirun) of the composed ``cfg``."""
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    logging.getLogger("svdbench").setLevel(cfg.logger.level)
    tracker, ok = tracking.Tracker(), False
    try:
        planned = plan(cfg, base=hc.runtime.cwd)  # the launch directory, also after hydra.job.chdir
        typed, method = planned.cfg, planned.method
        _warn_unused_groups(method, hc)
        tags = [method.name, typed.model.name, typed.dataset.name]
        if distributed.is_main():  # torchrun: one tracked run, from rank 0
            tracker = tracking.start(typed.logger, config=planned.config, run_dir=run_dir, tags=tags, **wandb_names(hc))
        results = Run(planned, run_dir, on_epoch=tracker.log_epoch).execute()
        tracker.log_results(RunRecord.from_dict(results))
        ok = results.get("status") == "completed"
    except Preempted as err:
        if err.completed:
            log.warning("%s after the last training step: the results in %s are complete", err, run_dir)
        else:
            log.warning("%s: checkpoint saved in %s; rerun with hydra.run.dir=%s to resume", err, run_dir, run_dir)
        raise SystemExit(128 + err.signum) from None
    except KeyboardInterrupt:
        log.warning("interrupted (SIGINT): rerun with hydra.run.dir=%s to resume from the last epoch", run_dir)
        raise SystemExit(130) from None
    except (CheckpointError, InputError) as err:
        what = "input error: " if isinstance(err, InputError) else ""
        log.error("%s%s", what, err)
        if multirun:
            record_failure(cfg, hc, run_dir, f"{type(err).__name__}: {err}", stage="input")
            return failed_job(hc, str(err))
        raise SystemExit(2) from None
    except (DivergedError, OSError) as err:  # not a bug: one line (the pipeline recorded it where it could)
        if multirun:
            record_failure(cfg, hc, run_dir, f"{type(err).__name__}: {err}", stage="run")
            return failed_job(hc, one_line(err))
        recorded = run_dir / RESULTS_FILE
        log.error("run failed: %s%s", one_line(err), f" ({recorded})" if recorded.is_file() else "")
        raise SystemExit(1) from None
    except Exception as err:
        if not multirun:
            raise
        # the pipeline wrote results.json (status failed) if training had started; the sweep goes on
        log.exception("job %s failed", hc.job.num)
        record_failure(cfg, hc, run_dir, f"{type(err).__name__}: {err}", stage="run")
        return failed_job(hc, one_line(err))
    finally:
        tracker.finish(exit_code=0 if ok else 1)
    log.info(summary(results, run_dir))
    return objective(hc, results)
