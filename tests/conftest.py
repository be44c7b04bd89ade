"""Shared fixtures: the repository root, the tiny configuration every end-to-end test runs (the debug
preset conf/debug/tiny.yaml, as overrides and as a typed config for in-process runs), a ``run.py``
launcher, Hydra composition of the real config, and generated data-set files. Tests marked ``slow``
run the pipeline end to end; ``pytest -m "not slow"`` skips them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from benchmarks.tiny_guard import TINY_PRESET, preset_overrides, read_preset
from svdbench import app
from svdbench.checkpoint import load_checkpoint
from svdbench.config import Config, DatasetConfig, ModelConfig, TrainerConfig, register_configs
from svdbench.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.setdefault("WANDB_MODE", "disabled")
# run.py subprocesses: one thread each, so a test never oversubscribes the 2 cores of CI
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
register_configs()

#: the tiny configuration of every end-to-end run (conf/debug/tiny.yaml: synthetic 16x16 data, ResNet-8, one
#: epoch each stage) as the command-line overrides it stands for
TINY = preset_overrides(TINY_PRESET)
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped cleanly on a machine without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny():
    """``tiny(*without)``: the tiny overrides, without those whose key starts with one of ``without``."""

    def make(*without: str) -> list[str]:
        return preset_overrides(TINY_PRESET, without)

    return make


@pytest.fixture(scope="session")
def env() -> dict:
    """The environment of every subprocess a test starts: W&B off, one thread."""
    return dict(ENV)


@pytest.fixture(scope="session")
def run_py():
    """``run_py(*args, timeout=300, env=None, cwd=ROOT)``: ``python run.py ARGS`` in a subprocess."""

    def run(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path = ROOT):
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env={**ENV, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    return run


@pytest.fixture(scope="session")
def start_run_py():
    """``start_run_py(*args)``: ``python run.py ARGS`` started in the background (a Popen)."""

    def start(*args: str, env: dict | None = None):
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env={**ENV, **(env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    return start


@pytest.fixture(scope="session")
def wait_for_checkpoint():
    """``wait_for_checkpoint(proc, run_dir, stage)``: block until ``checkpoint.pt`` holds ``stage``."""

    def wait(proc, out: Path, stage: str, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert proc.poll() is None, "run ended before it could be interrupted"
            ck = out / "checkpoint.pt"
            if ck.exists():
                try:
                    if load_checkpoint(ck)["stage"] == stage:
                        return
                except CheckpointError:  # being replaced right now
                    pass
            time.sleep(0.05)
        raise AssertionError("no checkpoint appeared")

    return wait


@pytest.fixture(scope="session")
def sigkill_in_stage(start_run_py, wait_for_checkpoint):
    """``sigkill_in_stage(args, out, stage)``: start ``run.py ARGS hydra.run.dir=OUT``, let it save a
    checkpoint in ``stage`` and go on into the next epoch, then SIGKILL it (nothing can be saved)."""

    def kill(args, out: Path, stage: str) -> None:
        proc = start_run_py(*args, f"hydra.run.dir={out}")
        wait_for_checkpoint(proc, out, stage)
        time.sleep(0.3)  # into the next epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    return kill


@pytest.fixture(scope="session")
def compose_cfg():
    """``compose_cfg(overrides, hydra=False)``: the config Hydra composes from conf/ (with its
    ``hydra`` node when asked)."""

    def make(overrides=(), hydra: bool = False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)

    return make


@pytest.fixture(scope="session")
def build():
    """``build(cfg)``: the validated config and the method, as ``run.py`` makes them."""
    return app.build


@pytest.fixture(scope="session")
def tiny_cfg():
    """``tiny_cfg(dataset=None, trainer=None, **top_level)``: the typed tiny configuration for
    ``run_experiment`` in this process: the model, data set and trainer of conf/debug/tiny.yaml (its
    groups' files with its values over them) on the CPU; ``dataset`` and ``trainer`` change keys of
    theirs. The method, ``save_model`` and ``measure`` are the caller's (the schema's defaults)."""
    groups, values = read_preset(TINY_PRESET)

    def group(name: str) -> dict:
        return {**yaml.safe_load((CONF / name / f"{groups[name]}.yaml").read_text()), **values.get(name, {})}

    def make(dataset: dict | None = None, trainer: dict | None = None, **kw) -> Config:
        return Config(
            model=ModelConfig(**group("model")),
            dataset=DatasetConfig(**{**group("dataset"), **(dataset or {})}),
            trainer=TrainerConfig(**{**values["trainer"], "device": "cpu", **(trainer or {})}),
            **kw,
        )

    return make
