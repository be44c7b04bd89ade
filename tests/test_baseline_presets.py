"""The baseline presets (TRP, SFP, FPGM, L1-norm) compose, network by network, to exactly the config the
24 per-network files they replace composed to (conf/experiment/<baseline>_<data>_<model>.yaml).

Those files are transcribed here as command-line overrides: what every file of one baseline and data
set set (:data:`COMMON`), then what differed by network (:data:`PER_NETWORK`). Composed on the
same conf/, the transcription and ``+experiment=<baseline>_<data> model=<net>`` must resolve to the
same config, key for key (everything but the ``hydra`` node)."""

import pytest
from omegaconf import OmegaConf

CIFAR = ["resnet20", "resnet32", "resnet56", "resnet110"]
IMAGENET = ["resnet18", "resnet50"]
#: the TRP ImageNet files required init_from (``${required:...}``): the comparison gives one
DENSE = "init_from=/data/dense"
_TRP = ["method=trp", "method.decomposition=channel", "method.period=1", "method.energy_kept=0.9",
        "method.nuclear_weight=3.0e-4", "method.threshold=0.05", "method.finetune_epochs=0"]  # fmt: skip
_SOFT = ["method.rounding=pruned", "method.finetune_epochs=0"]
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
    ("sfp", "imagenet"): ["+recipe=imagenet_sgd", "method=sfp", *_SOFT],
    ("fpgm", "cifar10"): ["+recipe=sfp_cifar10", "method=fpgm", *_SOFT, "method.mask_gradients=true"],
    ("fpgm", "imagenet"): ["+recipe=imagenet_sgd", "method=fpgm", *_SOFT, "method.mask_gradients=true"],
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
def test_the_old_file_composes_as_its_transcription(baseline, data, model, compose_cfg):
    extra = [DENSE] if (baseline, data) == ("trp", "imagenet") else []
    old = resolved(compose_cfg, [f"+experiment={baseline}_{data}_{model}", *extra])
    assert old == resolved(compose_cfg, transcription(baseline, data, model))


@pytest.mark.parametrize("baseline, data, model", FILES, ids=[f"{b}_{d}_{m}" for b, d, m in FILES])
def test_the_preset_composes_as_the_file_it_replaces(baseline, data, model, compose_cfg):
    extra = [DENSE] if (baseline, data) == ("trp", "imagenet") else []
    new = resolved(compose_cfg, [f"+experiment={baseline}_{data}", f"model={model}", *extra])
    assert new == resolved(compose_cfg, transcription(baseline, data, model))
