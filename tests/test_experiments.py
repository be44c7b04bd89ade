"""conf/experiment/: the published settings compose into the schema with the values of
docs/method.md, each runs one tiny step on synthetic data of its dataset's shape, and
docs/experiments.md lists them. SVD training on CIFAR-10 is two presets (Hoyer, L1) whose network
and decomposition are chosen on the command line: the 16 published combinations are their product."""

import itertools
import re
from pathlib import Path

import pytest

from svdbench.pipeline import run_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
CIFAR = ["resnet20", "resnet32", "resnet56", "resnet110"]
IMAGENET = ["resnet18", "resnet50"]
DOC = ROOT / "docs" / "experiments.md"
#: every published setting as (preset, extra overrides)
SETTINGS = (
    [
        (f"svd_cifar10_{r}", [f"model={m}", f"method.decomposition={d}"])
        for r, m, d in itertools.product(("hoyer", "l1"), CIFAR, ("channel", "spatial"))
    ]
    + [(f"svd_imagenet_{m}", []) for m in IMAGENET]
    + [
        (f"{b}_{data}_{m}", [])
        for b in ("trp", "l1_filter", "sfp", "fpgm")
        for data, models in (("cifar10", CIFAR), ("imagenet", IMAGENET))
        for m in models
    ]
)


def test_every_published_setting_has_a_preset():
    assert {preset for preset, _ in SETTINGS} == set(EXPERIMENTS)
    assert len(SETTINGS) == 16 + 2 + 24


def _epochs(fractions, epochs):
    return [round(f * epochs) for f in fractions]


@pytest.mark.parametrize("name, extra", SETTINGS, ids=[" ".join([n, *e]) for n, e in SETTINGS])
def test_preset_values_follow_the_method_docs(name, extra, compose_cfg, build):
    typed, method = build(compose_cfg([f"+experiment={name}", "dataset.root=/data/x", *extra]))
    tr = typed.trainer
    model = next((e.split("=")[1] for e in extra if e.startswith("model=")), None) or name.split("_")[-1]
    assert typed.model.name == model
    assert typed.dataset.name == ("imagenet" if "_imagenet_" in name else "cifar10")
    if name.startswith("svd_cifar10"):
        reg = name.split("_")[-1]
        dec = next(e.split("=")[1] for e in extra if e.startswith("method.decomposition="))
        assert (tr.optimizer, tr.lr, tr.batch_size, tr.epochs) == ("adam", 1e-3, 100, 164)
        assert _epochs(tr.milestones, 164) == [81, 122] and tr.gamma == 0.1
        assert (typed.method.orthogonality, typed.method.init, typed.method.decomposition) == (1.0, "random", dec)
        assert typed.regularizer.kind == reg
        lo, hi = (1e-3, 0.1) if reg == "hoyer" else (0.1, 0.3)  # docs/method.md 1.2 ranges
        assert lo <= typed.regularizer.weight <= hi and 1e-3 <= typed.method.energy <= 0.3
        assert typed.method.finetune_epochs == 164
    elif name.startswith("svd_imagenet"):
        recipe = (tr.optimizer, tr.lr, tr.momentum, tr.weight_decay, tr.batch_size, tr.epochs)
        assert recipe == ("sgd", 0.1, 0.9, 1e-4, 256, 90)
        assert _epochs(tr.milestones, 90) == [31, 61]
        assert (typed.method.orthogonality, typed.regularizer.kind, typed.regularizer.weight) == (2.0, "hoyer", 3e-3)
    elif name.startswith("trp"):
        m = typed.method
        assert (m.energy_kept, m.nuclear_weight, m.threshold) == (0.9, 3e-4, 0.05) and 1 <= m.period <= 20
        if "_cifar10_" in name:  # the authors' code truncates every iteration (--decouple-period 1)
            assert m.period == 1
        assert m.skip_first and m.skip_1x1
    elif name.startswith("l1_filter"):
        assert typed.method.speedup > 1 and typed.method.ratio is None
        assert (tr.finetune_schedule, tr.finetune_lr) == ("constant", 0.001)
    else:  # sfp, fpgm: soft pruning from scratch, removal at the end
        assert 0.2 <= typed.method.ratio <= 0.4 and typed.method.speedup is None
        assert typed.method.finetune_epochs == 0 and tr.epochs >= 90
        if name.startswith("fpgm"):  # as the authors' code: the selected filters' gradients are cleared
            assert typed.method.mask_gradients
    assert method.uses_regularizer == name.startswith("svd")  # only SVD training takes the sparsity term


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_preset_runs_one_tiny_step(name, tmp_path, compose_cfg, build):
    """The preset with its recipe shrunk to one step of two images: CIFAR's 3x32x32, or ImageNet's
    1000 classes at 3x64x64 (the ImageNet ResNets take any size; 224x224 only costs time here)."""
    shape = "[3,64,64]" if "_imagenet_" in name else "[3,32,32]"
    classes = 1000 if "_imagenet_" in name else 10
    cfg = compose_cfg([
        f"+experiment={name}", "dataset=synthetic", f"dataset.shape={shape}", f"dataset.num_classes={classes}",
        "dataset.num_train=2", "dataset.num_test=2", "trainer.epochs=1", "trainer.batch_size=2",
        "trainer.eval_batch_size=2", "trainer.progress=false", "trainer.bn_recalibration_batches=1",
        "trainer.device=cpu", "measure.latency=false", "save_model=false", "checkpoint=false",
    ])  # fmt: skip
    cfg.method.finetune_epochs = min(cfg.method.finetune_epochs, 1)  # the recipe's 164 (or 40) become 1
    typed, method = build(cfg)
    res = run_experiment(typed, method, tmp_path)
    assert res["status"] == "completed", res.get("error")
    assert res["history"] and res["macs"] > 0 and res["macs_dense"] > 0
    if name.startswith(("l1_filter", "sfp", "fpgm")):
        assert res["macs"] < res["macs_dense"]  # filters physically removed
    if name.startswith(("svd", "trp")):
        after, full = res["method_details"].get("ranks_after") or res["ranks"]["after"], res["ranks"].get("full")
        assert after and (full is None or all(after[k] <= full[k] for k in after))


def test_docs_table_lists_every_preset_with_its_command():
    text = DOC.read_text()
    listed = set(re.findall(r"\+experiment=(\w+)", text))
    assert listed == set(EXPERIMENTS)
