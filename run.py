"""Run one svdbench experiment (or a sweep with -m), configured by Hydra from conf/.

python run.py                                   # the demo: SVD training of ResNet-8 on Fashion-MNIST
python run.py model=resnet20 method=dense trainer.epochs=30
python run.py -m regularizer.weight=0.02,0.05 method.energy=0.02,0.05
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
from svdbench.checkpoint import CheckpointError, Preempted
from svdbench.config import register_configs, to_config
from svdbench.pipeline import InputError, run_experiment, summary

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
log = logging.getLogger("svdbench")
register_configs(BASELINE_SCHEMAS)


def one_line(err: BaseException) -> str:
    """The most specific single-line description of a (possibly chained) config or input error."""
    chain = [err]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    for e in reversed(chain):
        key = getattr(e, "full_key", None)
        msg = getattr(e, "msg", None) or str(e)
        first = next((ln.strip() for ln in str(msg).splitlines() if ln.strip()), type(e).__name__)
        if key and key not in first:
            return f"{first} (key: {key})"
        if first and first != type(e).__name__:
            return first
    return str(err).splitlines()[0]


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


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    logging.getLogger("svdbench").setLevel(cfg.logger.level)
    try:
        typed, method = build(cfg)
        results = run_experiment(typed, method, run_dir, config_dict=OmegaConf.to_container(cfg, resolve=True))
    except Preempted as err:
        log.warning("%s: checkpoint saved in %s; rerun with hydra.run.dir=%s to resume", err, run_dir, run_dir)
        raise SystemExit(128 + err.signum) from None
    except CheckpointError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    except InputError as err:
        log.error("input error: %s", err)
        if hc.mode == RunMode.MULTIRUN:
            return math.nan
        raise SystemExit(2) from None
    log.info(summary(results, run_dir))
    return results["top1"]


if __name__ == "__main__":
    preflight(sys.argv)
    main()
