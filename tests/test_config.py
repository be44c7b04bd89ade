"""Every config group option composes into the typed schema; bad values fail before any work."""

import pytest

from svdbench import preflight
from svdbench.config import Config, validate
from svdbench.errors import InputError
from svdbench.methods import METHODS


def options(root, group: str) -> list[str]:
    return sorted(p.stem for p in (root / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "dataset", "regularizer", "logger"])
def test_every_group_option_composes_and_validates(group, root, compose_cfg):
    found = options(root, group)
    assert found, f"no options in conf/{group}"
    for name in found:
        extra = ["dataset.root=/data/imagenet"] if (group, name) == ("dataset", "imagenet") else []
        assert isinstance(validate(compose_cfg([f"{group}={name}", *extra])), Config)


def test_every_registered_method_is_a_method_choice(compose_cfg, build):
    for name in METHODS:
        typed, method = build(compose_cfg([f"method={name}"]))
        assert method.name == name and type(typed.method) is METHODS.get(name).Config


def test_required_groups_and_defaults(root, compose_cfg):
    typed = validate(compose_cfg([]))
    assert (typed.model.name, typed.dataset.name, typed.method.regularizer.kind) == (
        "resnet8",
        "fashion_mnist",
        "hoyer",
    )
    assert typed.method.decomposition == "channel" and typed.seed == 0
    assert (typed.trainer.optimizer, typed.trainer.lr, typed.trainer.epochs) == ("adam", 0.002, 12)
    assert typed.method.energy == 3e-4 and typed.method.finetune_epochs == 3
    for name in ["resnet8", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet50", "timm"]:
        assert name in options(root, "model")
    for name in ["fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic"]:
        assert name in options(root, "dataset")
    for name in ["none", "l1", "hoyer", "hoyer_square"]:
        assert name in options(root, "regularizer")


def test_help_lists_real_choices_only(run_py):
    """No internal schema shows up as an option of a group (``method: dense, dense_schema, ...``)."""
    proc = run_py("--help")
    assert proc.returncode == 0
    groups = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line and not line.startswith(" "))
    assert groups["method"] == ", ".join(sorted(METHODS.names()))
    assert "schema" not in proc.stdout
    assert {"model", "dataset", "method", "regularizer", "trainer", "logger", "measure", "experiment"} <= groups.keys()


def test_help_says_what_svdbench_is_and_its_examples_compose(run_py, compose_cfg, build):
    proc = run_py("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("svdbench: a benchmark harness")
    assert "family: cifar_resnet" not in proc.stdout  # no dump of the default config with fields that do not apply
    lines = [ln.strip() for ln in proc.stdout.splitlines()]
    examples = [ln.split("#")[0].split()[2:] for ln in lines if ln.startswith("python run.py")]
    assert len(examples) >= 6
    for words in examples:
        overrides = [w for w in words if "=" in w and not w.startswith(("hydra.", "init_from="))]
        build(compose_cfg(overrides))  # every example's choices and keys exist and validate


BAD = [
    ("trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("+trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("++trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("method.energi=0.1", "Key 'energi' not in 'SVDConfig' (key: method.energi)"),
    ("+method.energi=0.1", "Key 'energi' not in 'SVDConfig' (key: method.energi)"),
    ("+seeed=1", "Key 'seeed' not in 'Config'"),
    ("trainer.lr=fast", "could not be converted to Float (key: trainer.lr)"),
    ("method.energy=1.0", "method.energy must be in [0, 1), got 1.0"),
    ("method.energy=-0.1", "method.energy must be in [0, 1)"),
    ("method.energy=0.1 method.threshold=0.2", "method.energy and method.threshold: set exactly one (the other null)"),
    ("regularizer.weight=-1", "regularizer.weight must be >= 0"),
    ("method.orthogonality=-2", "method.orthogonality must be >= 0"),
    ("method.decomposition=diagonal", "method.decomposition must be channel or spatial, got 'diagonal'"),
    ("trainer.optimizer=rmsprop", "trainer.optimizer must be sgd or adam"),
    ("trainer.milestones=[81,122]", "trainer.milestones are fractions of a stage"),
    ("model=resnet9", "Could not find 'model/resnet9'"),
    ("method=magic", "Could not find 'method/magic': choose from dense, fpgm, l1_filter, random_filter"),
    ("dataset.name=mnist", "dataset.name must be one of"),
    ("method=trp method.energy_train=0.95", "method.energy_train was renamed: use method.energy_kept"),
    ("method=trp +method.energy_train=0.95", "method.energy_train was renamed: use method.energy_kept"),
]


#: the same through run.py end to end (the whole table runs in-process in tests/test_attacks.py)
THROUGH_RUN_PY = [
    b
    for b in BAD
    if b[0]
    in (
        "trainer.lrr=0.1",
        "+trainer.lrr=0.1",
        "method=magic",
        "method=trp method.energy_train=0.95",
        "method.energy=1.0",
    )
]


@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", THROUGH_RUN_PY, ids=[b[0] for b in THROUGH_RUN_PY])
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, run_py, overrides, message):
    out = tmp_path / "run"
    proc = run_py(*overrides.split(), f"hydra.run.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("config error: ") and message in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("overrides, message", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_refused_before_hydra(tmp_path, capsys, overrides, message):
    with pytest.raises(SystemExit) as exit_:
        preflight.preflight(["run.py", *overrides.split(), f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.count("\n") == 0 and err == f"config error: {err[14:]}" and message in err
    assert not (tmp_path / "run").exists()


ADDED = [b for b in BAD if b[0].startswith("+")]


@pytest.mark.parametrize("overrides, message", ADDED, ids=[b[0] for b in ADDED])
def test_validate_refuses_what_compose_lets_through(compose_cfg, overrides, message):
    """In-process: a ``+key`` passes Hydra's composition and stops at validate()."""
    with pytest.raises(InputError) as err:
        validate(compose_cfg(overrides.split()))
    assert message in str(err.value)


def test_the_stages_optimiser_defaults_are_the_trainers():
    """OptimConfig (one stage) and TrainerConfig (the config group) share their defaults: a stage built
    from the default trainer is a default OptimConfig."""
    from svdbench.config import TrainerConfig
    from svdbench.optim import OptimConfig
    from svdbench.plan import optim_config

    assert optim_config(TrainerConfig()) == OptimConfig()
