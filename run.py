"""Run one svdbench experiment (or a sweep with -m), configured by Hydra from conf/.

python run.py                                   # the demo: SVD training of ResNet-8 on Fashion-MNIST
python run.py model=resnet20 method=dense trainer.epochs=30
python run.py -m regularizer.weight=0.02,0.05 method.energy=0.02,0.05
python run.py -m +sweep=svd_grid                # a preset sweep (conf/sweep/, docs/sweeps.md)
python run.py logger=wandb                      # W&B tracking, offline by default
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from baselines.config import METHOD_SCHEMAS as BASELINE_SCHEMAS
from svdbench import distributed, tracking
from svdbench.config import register_configs, to_config
from svdbench.errors import CheckpointError, InputError, Preempted, one_line
from svdbench.pipeline import run_experiment, summary
from svdbench.results import RESULTS_FILE, read_results, write_results

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
log = logging.getLogger("svdbench")
register_configs(BASELINE_SCHEMAS)


def build(cfg: DictConfig):
    """Typed config (range checks) and the method object; raises InputError in one line."""
    try:
        typed = to_config(cfg)
        regularizer = instantiate(cfg.regularizer, _convert_="all")
        kwargs = OmegaConf.to_container(cfg.method, resolve=True)
        method = get_class(kwargs.pop("_target_"))(**kwargs, regularizer=regularizer)
    except Exception as err:  # OmegaConf validation, __post_init__ range checks, instantiate errors
        raise InputError(one_line(err)) from None
    return typed, method


def preflight(argv: list[str]) -> None:
    """Compose and validate the config of a single run before Hydra starts it, so a wrong key,
    type or value stops here with one line, exit code 2, and nothing written."""
    args = argv[1:]
    if any(a.startswith("-") for a in args):  # -m, --cfg, --help, --config-name ...: leave to Hydra
        return
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            build(compose(config_name="config", overrides=args))
    except InputError as err:
        print(f"config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:
        print(f"config error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None


def sweep_objectives(hc) -> int:
    """How many values the sweeper expects back: 0 (not Optuna: top1 is returned for the record),
    1 (Optuna, one direction) or the length of Optuna's ``direction`` list."""
    sweeper = hc.sweeper
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return 0
    direction = sweeper.get("direction")
    return len(direction) if OmegaConf.is_list(direction) else 1


def objective(hc, results: dict):
    """top1, or (top1, macs) for a multi-objective Optuna sweep (``direction: [maximize, minimize]``)."""
    return (results["top1"], results["macs"]) if sweep_objectives(hc) >= 2 else results["top1"]


def record_failure(cfg: DictConfig, hc, run_dir: Path, reason: str, stage: str) -> None:
    """results.json with ``status: failed`` and the reason, for a multirun job that stopped before
    the pipeline could write one. A results.json already there is kept when it is completed (never
    lose a finished result) or when it already records this failure (the pipeline wrote it)."""
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
    write_results(run_dir, {
        "status": "failed", "error": reason, "stage": stage,
        "method": hc.runtime.choices.get("method", OmegaConf.select(cfg, "method._target_", default="?")),
        "model": OmegaConf.select(cfg, "model.name", default="?"),
        "dataset": OmegaConf.select(cfg, "dataset.name", default="?"),
        "seed": OmegaConf.select(cfg, "seed", default=None), "config": config,
        "overrides": list(hc.overrides.task),
    })  # fmt: skip


def failed_job(hc, reason: str):
    """What a failed multirun job hands back: NaN for Hydra's basic sweeper (the other jobs go on),
    an exception for Optuna (which records the trial as FAIL; a NaN would break its bookkeeping)."""
    if sweep_objectives(hc):
        raise RuntimeError(f"job failed: {reason}") from None
    return math.nan


def wandb_names(hc) -> dict:
    """W&B group (shared by the jobs of one multirun, from the sweep directory) and run name."""
    if hc.mode != RunMode.MULTIRUN:
        return {"group": None, "name": None}
    name = f"{hc.job.num}-{hc.job.override_dirname}" if hc.job.override_dirname else str(hc.job.num)
    return {"group": tracking.group_from_sweep_dir(hc.sweep.dir), "name": name[:128]}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | tuple[float, float]:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    logging.getLogger("svdbench").setLevel(cfg.logger.level)
    tracker, ok = tracking.Tracker(), False
    try:
        typed, method = build(cfg)
        config = OmegaConf.to_container(cfg, resolve=True)
        tags = [getattr(method, "name", ""), typed.model.name, typed.dataset.name]
        if distributed.is_main():  # torchrun: one tracked run, from rank 0
            tracker = tracking.start(typed.logger, config=config, run_dir=run_dir, tags=tags, **wandb_names(hc))
        results = run_experiment(typed, method, run_dir, config_dict=config, on_epoch=tracker.log_epoch)
        tracker.log_results(results)
        ok = results.get("status") == "completed"
    except Preempted as err:
        log.warning("%s: checkpoint saved in %s; rerun with hydra.run.dir=%s to resume", err, run_dir, run_dir)
        raise SystemExit(128 + err.signum) from None
    except (CheckpointError, InputError) as err:
        what = "input error: " if isinstance(err, InputError) else ""
        log.error("%s%s", what, err)
        if multirun:
            record_failure(cfg, hc, run_dir, f"{type(err).__name__}: {err}", stage="input")
            return failed_job(hc, str(err))
        raise SystemExit(2) from None
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


if __name__ == "__main__":
    try:  # under torchrun: the same hydra.run.dir on every rank, rank 0's files only
        sys.argv = distributed.torchrun_argv(sys.argv)
    except ValueError as err:
        print(f"config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    preflight(sys.argv)
    main()
