"""Every config group option composes into the typed schema; bad values fail before any work."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

import run as run_module
from svdbench.config import Config, to_config

CONF = Path(run_module.CONF_DIR)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_cfg(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("group", ["model", "dataset", "method", "regularizer", "trainer", "logger"])
def test_every_group_option_composes_and_validates(group):
    found = options(group)
    assert found, f"no options in conf/{group}"
    for name in found:
        extra = ["dataset.root=/data/imagenet"] if (group, name) == ("dataset", "imagenet") else []
        cfg = compose_cfg([f"{group}={name}", *extra])
        typed = to_config(cfg)
        assert isinstance(typed, Config)
        if group == "method":
            assert get_class(cfg.method._target_) is not None


def test_required_groups_and_defaults():
    typed = to_config(compose_cfg([]))
    assert (typed.model.name, typed.dataset.name, typed.regularizer.kind) == ("resnet8", "fashion_mnist", "hoyer")
    assert typed.method.decomposition == "channel" and typed.seed == 0
    for name in ["resnet8", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet50", "timm"]:
        assert name in options("model")
    for name in ["fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic"]:
        assert name in options("dataset")
    for name in ["none", "l1", "hoyer", "hoyer_square"]:
        assert name in options("regularizer")


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
        ("method.energi=0.1", "Key 'energi' not in 'SVDMethodConfig'"),
        ("trainer.lr=fast", "could not be converted to Float (key: trainer.lr)"),
        ("method.energy=1.0", "method.energy must be in [0, 1), got 1.0"),
        ("method.energy=-0.1", "method.energy must be in [0, 1)"),
        ("regularizer.weight=-1", "regularizer.weight must be >= 0"),
        ("method.orthogonality=-2", "method.orthogonality must be >= 0"),
        ("method.decomposition=diagonal", "method.decomposition must be channel or spatial"),
        ("trainer.optimizer=rmsprop", "trainer.optimizer must be sgd or adam"),
        ("trainer.milestones=[81,122]", "trainer.milestones are fractions of a stage"),
        ("model=resnet9", "Could not find 'model/resnet9'"),
        ("dataset.name=mnist", "dataset.name must be one of"),
    ],
)
def test_bad_config_one_line_no_results(tmp_path, root, override, message):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "run.py", override, f"hydra.run.dir={out}"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("config error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
