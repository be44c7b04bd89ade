"""The baseline presets (TRP, SFP, FPGM, L1-norm; one per data set, the network chosen with ``model=``)
compose, network by network, to exactly the config of the 24 per-network files they replaced
(conf/experiment/<baseline>_<data>_<model>.yaml, removed after 8edd963, where the transcription below
was also checked against the files themselves); a network without published values is refused in one
line; every preset's header names its multirun over the networks it has values for.

The files are transcribed here as command-line overrides: what every file of one baseline and data
set set (:data:`COMMON`), then what differed by network (:data:`PER_NETWORK`). Composed on the
same conf/, the transcription and ``+experiment=<baseline>_<data> model=<net>`` must resolve to the
same config, key for key (everything but the ``hydra`` node)."""

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from svdbench import preflight
from svdbench.errors import InputError
from svdbench.published import BASELINES

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "experiments.md"

CIFAR = ["resnet20", "resnet32", "resnet56", "resnet110"]
IMAGENET = ["resnet18", "resnet50"]
#: the TRP ImageNet files required init_from (``${required:...}``): the comparison gives one
DENSE = "init_from=/data/dense"
_TRP = ["method=trp", "method.decomposition=channel", "method.period=1", "method.energy_kept=0.9",
        "method.nuclear_weight=3.0e-4", "method.threshold=0.05", "method.finetune_epochs=0"]  # fmt: skip
_SOFT = ["method.rounding=pruned", "method.finetune_epochs=0"]
#: SFP's and FPGM's ImageNet scripts (pruning_train.py, pruning_imagenet.py): 100 epochs, lr x0.1 every 30
_SOFT_IMAGENET = ["trainer.epochs=100", "trainer.milestones=[0.3,0.6,0.9]"]
#: (baseline, data set) -> what each of its files set: its recipe, its method, the values of its ``_self_``
COMMON = {
    ("trp", "cifar10"): ["+recipe=cifar_sgd", *_TRP, "model.shortcut=B", "trainer.bn_recalibration_batches=0"],
    ("trp", "imagenet"): ["+recipe=imagenet_sgd", *_TRP, "trainer.epochs=10", "trainer.lr=1.0e-4",
                          "trainer.schedule=constant", "trainer.bn_recalibration_batches=0", DENSE],
    ("l1_filter", "cifar10"): ["+recipe=cifar_sgd", "method=l1_filter", "method.finetune_epochs=40",
                               "trainer.finetune_lr=0.001", "trainer.finetune_schedule=constant"],
    ("l1_filter", "imagenet"): ["+recipe=imagenet_sgd", "method=l1_filter", "method.finetune_epochs=20",
                                "trainer.finetune_lr=0.001", "trainer.finetune_schedule=constant"],
    ("sfp", "cifar10"): ["+recipe=sfp_cifar10", "method=sfp", *_SOFT],
    ("sfp", "imagenet"): ["+recipe=imagenet_sgd", "method=sfp", *_SOFT, *_SOFT_IMAGENET],
    ("fpgm", "cifar10"): ["+recipe=sfp_cifar10", "method=fpgm", *_SOFT, "method.mask_gradients=true"],
    ("fpgm", "imagenet"): ["+recipe=imagenet_sgd", "method=fpgm", *_SOFT, "method.mask_gradients=true",
                           *_SOFT_IMAGENET],
}  # fmt: skip
#: file -> what it set beside COMMON: the values that differ by network
PER_NETWORK = {
    "trp_cifar10_resnet20": [],
    "trp_cifar10_resnet32": [],
    "trp_cifar10_resnet56": ["model.block=bottleneck"],
    "trp_cifar10_resnet110": ["model.block=bottleneck"],
    "trp_imagenet_resnet18": [],
    "trp_imagenet_resnet50": [],
    "l1_filter_cifar10_resnet20": ["method.speedup=1.38"],
    "l1_filter_cifar10_resnet32": ["method.speedup=1.38"],
    "l1_filter_cifar10_resnet56": ["method.speedup=1.38"],
    "l1_filter_cifar10_resnet110": ["method.speedup=1.63"],
    "l1_filter_imagenet_resnet18": ["method.speedup=1.32"],
    "l1_filter_imagenet_resnet50": ["method.speedup=1.32"],
    "sfp_cifar10_resnet20": ["method.ratio=0.3"],
    "sfp_cifar10_resnet32": ["method.ratio=0.3"],
    "sfp_cifar10_resnet56": ["method.ratio=0.4"],
    "sfp_cifar10_resnet110": ["method.ratio=0.3"],
    "sfp_imagenet_resnet18": ["method.ratio=0.3"],
    "sfp_imagenet_resnet50": ["method.ratio=0.3"],
    "fpgm_cifar10_resnet20": ["method.ratio=0.4"],
    "fpgm_cifar10_resnet32": ["method.ratio=0.4"],
    "fpgm_cifar10_resnet56": ["method.ratio=0.4"],
    "fpgm_cifar10_resnet110": ["method.ratio=0.4"],
    "fpgm_imagenet_resnet18": ["method.ratio=0.3"],
    "fpgm_imagenet_resnet50": ["method.ratio=0.3"],
}
#: the 24 files as (baseline, data set, network)
FILES = [(b, d, m) for (b, d) in COMMON for m in (CIFAR if d == "cifar10" else IMAGENET)]


def transcription(baseline: str, data: str, model: str) -> list[str]:
    """The overrides that compose what ``conf/experiment/<baseline>_<data>_<model>.yaml`` composed."""
    return [*COMMON[(baseline, data)], f"model={model}", *PER_NETWORK[f"{baseline}_{data}_{model}"]]


def resolved(compose_cfg, overrides) -> dict:
    """The composed config, every interpolation resolved, without the ``hydra`` node."""
    return OmegaConf.to_container(compose_cfg(overrides), resolve=True, throw_on_missing=True)


def test_the_transcription_covers_24_files():
    assert len(FILES) == len(PER_NETWORK) == 24
    assert {f"{b}_{d}_{m}" for b, d, m in FILES} == set(PER_NETWORK)


@pytest.mark.parametrize("baseline, data, model", FILES, ids=[f"{b}_{d}_{m}" for b, d, m in FILES])
def test_the_preset_composes_as_the_file_it_replaces(baseline, data, model, compose_cfg):
    extra = [DENSE] if (baseline, data) == ("trp", "imagenet") else []
    new = resolved(compose_cfg, [f"+experiment={baseline}_{data}", f"model={model}", *extra])
    assert new == resolved(compose_cfg, transcription(baseline, data, model))


#: the network a preset runs when the command line names none
DEFAULT = {"trp_cifar10": "resnet20", "l1_filter_cifar10": "resnet56", "sfp_cifar10": "resnet56",
           "fpgm_cifar10": "resnet56"}  # fmt: skip


def test_one_preset_per_baseline_and_data_set():
    assert set(BASELINES) == {f"{b}_{d}" for b, d in COMMON}
    assert {(f"{b}_{d}", m) for b, d, m in FILES} == {(p, m) for p, table in BASELINES.items() for m in table}


@pytest.mark.parametrize("preset", sorted(BASELINES))
def test_without_a_network_the_preset_runs_its_default(preset, compose_cfg):
    model = DEFAULT.get(preset, "resnet50")
    extra = [DENSE] if preset == "trp_imagenet" else []
    assert resolved(compose_cfg, [f"+experiment={preset}", *extra]) == resolved(
        compose_cfg, [f"+experiment={preset}", f"model={model}", *extra]
    )


@pytest.mark.parametrize("preset", sorted(BASELINES))
def test_a_network_without_published_values_is_refused_in_one_line(preset, compose_cfg, build, capsys, imagenet_root):
    other = "resnet8" if "cifar10" in preset else "resnet34"  # a network of the same family
    choose = f"model={other}" if other == "resnet8" else f"model.name={other}"
    known = ", ".join(BASELINES[preset])
    if preset == "trp_cifar10":  # the authors' network (its block) is looked up first
        message = f"no official network for model={other}: one of {known}"
    else:
        message = f"no published {preset} setting for model={other}: one of {known}"
    with pytest.raises(InputError) as err:
        build(compose_cfg([f"+experiment={preset}", choose, DENSE]))
    assert str(err.value).startswith(f"{message} (key: ") and "\n" not in str(err.value)
    first = next(iter(BASELINES[preset]))  # what run.py says of a multirun over both, before Hydra starts
    key, value = choose.split("=")
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(
            ["run.py", "-m", f"+experiment={preset}", f"{key}={first},{value}", DENSE, f"dataset.root={imagenet_root}"]
        )
    assert stop.value.code == 2 and capsys.readouterr().err == f"config error: {err.value}\n"


def test_a_value_on_the_command_line_wins(compose_cfg, build):
    typed, _ = build(compose_cfg(["+experiment=sfp_cifar10", "method.ratio=0.2"]))
    assert (typed.model.name, typed.method.ratio) == ("resnet56", 0.2)
    typed, _ = build(compose_cfg(["+experiment=l1_filter_cifar10", "model=resnet110", "method.speedup=2.0"]))
    assert typed.method.speedup == 2.0
    typed, _ = build(compose_cfg(["+experiment=trp_cifar10", "model=resnet56", "method.energy_kept=0.95"]))
    assert (typed.method.energy_kept, typed.model.block) == (0.95, "bottleneck")


@pytest.mark.parametrize("preset", sorted(BASELINES))
def test_the_header_gives_the_multirun_over_every_network(preset):
    """Its jobs are the networks of the preset's table (each composes and validates: test_experiments.py)."""
    header = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text()
    line = re.search(rf"^#   python run\.py -m \+experiment={preset} model=(\S+)", header, re.M)
    assert line, f"{preset}.yaml names no -m model=... line"
    assert line.group(1).split(",") == list(BASELINES[preset])


def test_the_docs_table_is_the_one_the_presets_read():
    rows = re.findall(r"^\| (\w+) \| (resnet\d+) \| (.+?) \| (yes|no) \| (.*?) ?\|$", DOC.read_text(), re.M)
    rows = [r for r in rows if r[0] in BASELINES]
    assert [(p, m) for p, m, *_ in rows] == [(p, m) for p in BASELINES for m in BASELINES[p]]
    for preset, model, values, published, note in rows:
        setting = BASELINES[preset][model]
        given = {k: float(v) for k, v in (pair.split(" ") for pair in values.split(", "))}
        assert given == {k: v for k, v in vars(setting).items() if isinstance(v, float)}
        assert ((published == "yes"), note) == (setting.published, setting.note)


@pytest.mark.parametrize("preset", ["sfp_imagenet", "fpgm_imagenet"])
def test_soft_pruning_on_imagenet_runs_the_authors_schedule(preset, compose_cfg):
    """The authors' ImageNet scripts: 100 epochs at lr 0.1, x0.1 at epochs 30, 60 and 90."""
    cfg = compose_cfg([f"+experiment={preset}", "model=resnet50"])
    t = cfg.trainer
    assert (t.epochs, t.lr, t.gamma) == (100, 0.1, 0.1)
    assert [round(m * t.epochs) for m in t.milestones] == [30, 60, 90]
