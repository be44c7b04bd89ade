"""conf/experiment/: the published settings compose into the schema with the values of
docs/method.md, each runs one tiny step on synthetic data of its dataset's shape, and
docs/experiments.md lists them. SVD training on CIFAR-10 as the authors ran it is one preset
(svd_cifar10_official) whose network, decomposition and regulariser are chosen on the command line:
the 24 published runs are their product, each with the authors' own lambda_s and energy, checked here
against a transcription of their commands. svd_cifar10_hoyer/_l1 are svdbench's lighter variant. The
baselines have one preset per data set too (trp_cifar10, ..., fpgm_imagenet), the network chosen with
``model=``: tests/test_baseline_presets.py checks them against the per-network files they replaced."""

import itertools
import re
from pathlib import Path

import pytest
import torch

from svdbench.data import val_size
from svdbench.errors import InputError
from svdbench.models import build_model
from svdbench.pipeline import run_experiment
from svdbench.published import BASELINES, SVD_CIFAR10

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
#: the published settings (the head-to-head presets, compare_*, are tested in test_compare.py)
EXPERIMENTS = [p for p in PRESETS if not p.startswith("compare_")]
CIFAR = ["resnet20", "resnet32", "resnet56", "resnet110"]
IMAGENET = ["resnet18", "resnet50"]
DOC = ROOT / "docs" / "experiments.md"
#: every published setting as (preset, extra overrides)
SETTINGS = (
    [
        (f"svd_cifar10_{r}", [f"model={m}", f"method.decomposition={d}"])
        for r, m, d in itertools.product(("hoyer", "l1"), CIFAR, ("channel", "spatial"))
    ]
    + [
        ("svd_cifar10_official", [f"model={m}", f"method.decomposition={d}", f"regularizer={r}"])
        for m, d, r in itertools.product(CIFAR, ("channel", "spatial"), ("hoyer", "hoyer_square", "l1"))
    ]
    + [(f"svd_imagenet_{m}", []) for m in IMAGENET]
    + [
        (f"{b}_{data}", [f"model={m}"])
        for b in ("trp", "l1_filter", "sfp", "fpgm")
        for data, models in (("cifar10", CIFAR), ("imagenet", IMAGENET))
        for m in models
    ]
)


def test_every_published_setting_has_a_preset():
    assert {preset for preset, _ in SETTINGS} == set(EXPERIMENTS)
    assert len(SETTINGS) == 16 + 24 + 2 + 24
    assert {(p, e[0]) for p, e in SETTINGS if p in BASELINES} == {
        (p, f"model={m}") for p in BASELINES for m in BASELINES[p]
    }


#: source of every official SVD-training value below
START_UP = "yanghr/SVD_Prune_EDLCV CNN/cifar10/Start up code.md"
#: (model, decomposition, regularizer) -> (result folder the fine-tuning command loads, pruning of the model it
#: loads: ("e", energy) from the `-e` of the command that wrote it, or ("t", |s| threshold) from `--sensitivity`).
#: The folder names encode lambda_s ("01" = 0.1, "0003" = 3e-3); where the fine-tuning command loads an
#: unnamed folder, the lambda_s of the training command that wrote it is given instead.
OFFICIAL_SVD = {
    ("resnet20", "channel", "hoyer"): ("01", ("e", 3e-6)),
    ("resnet20", "channel", "hoyer_square"): (1e-2, ("t", 0.1)),  # unnamed folder: the training command's run
    ("resnet20", "channel", "l1"): ("03", ("e", 0.1)),
    ("resnet20", "spatial", "hoyer"): ("001", ("e", 0.1)),
    ("resnet20", "spatial", "hoyer_square"): (1e-2, ("t", 0.1)),
    ("resnet20", "spatial", "l1"): ("03", ("e", 0.1)),
    ("resnet32", "channel", "hoyer"): ("001", ("e", 5e-3)),
    ("resnet32", "channel", "hoyer_square"): ("0001", ("e", 1e-3)),
    ("resnet32", "channel", "l1"): ("003", ("e", 5e-2)),
    ("resnet32", "spatial", "hoyer"): ("0001", ("e", 5e-4)),
    ("resnet32", "spatial", "hoyer_square"): ("00003", ("e", 5e-3)),
    ("resnet32", "spatial", "l1"): ("01", ("e", 1e-2)),
    ("resnet56", "channel", "hoyer"): ("0001", ("e", 5e-3)),
    ("resnet56", "channel", "hoyer_square"): ("00001", ("e", 7e-3)),
    ("resnet56", "channel", "l1"): ("01", ("e", 0.1)),
    ("resnet56", "spatial", "hoyer"): ("0003", ("e", 1e-3)),  # written by the training command's own pruning
    ("resnet56", "spatial", "hoyer_square"): ("00001", ("e", 0.1)),
    ("resnet56", "spatial", "l1"): ("003", ("e", 0.1)),
    ("resnet110", "channel", "hoyer"): ("0001", ("e", 1e-2)),
    ("resnet110", "channel", "hoyer_square"): ("00003", ("e", 1e-3)),
    ("resnet110", "channel", "l1"): ("003", ("e", 0.3)),
    ("resnet110", "spatial", "hoyer"): ("0001", ("e", 1e-3)),
    ("resnet110", "spatial", "hoyer_square"): ("00003", ("e", 1e-3)),
    ("resnet110", "spatial", "l1"): ("003", ("e", 5e-2)),
}
#: the settings whose pruning value no command gives for the run fine-tuned (no command writes the pruned model the
#: fine-tuning loads): the result folder of the test command it is taken from
BORROWED = {("resnet32", "channel", "hoyer"): "Hoyer_Model32/0003", ("resnet32", "channel", "l1"): "L1_Model32/03"}
#: the block of the official CIFAR ResNets (origin_resnet.py of the same repository): bottleneck from depth 44
OFFICIAL_BLOCK = {"resnet20": "basic", "resnet32": "basic", "resnet56": "bottleneck", "resnet110": "bottleneck"}


def folder_lambda(folder) -> float:
    """The authors' folder name as lambda_s: "01" = 0.1, "007" = 0.07, "00003" = 3e-4."""
    return folder if isinstance(folder, float) else int(folder) / 10 ** (len(folder) - 1)


def test_the_docs_table_of_official_runs_is_the_one_the_preset_reads():
    rows = re.findall(
        r"^\| (resnet\d+) \| (channel|spatial) \| (\w+) \| ([\d.e-]+) \| (.+?) \| (yes|no) \|", DOC.read_text(), re.M
    )
    assert len(rows) == len(SVD_CIFAR10) == 24
    for model, dec, reg, weight, prune, agree in rows:
        s = SVD_CIFAR10[(model, dec, reg)]
        rule, value = prune.replace("\\|s\\|", "s").split(" ", 1)
        assert float(weight) == s.weight and (agree == "yes") == s.consistent
        assert float(value.split()[-1]) == (s.energy if rule == "e" else s.threshold)


def test_borrowed_values_say_where_they_come_from():
    """published.py and docs/experiments.md name the other run's command wherever a value is borrowed."""
    assert {k for k, s in SVD_CIFAR10.items() if s.borrowed} == set(BORROWED)
    text = DOC.read_text()
    for (model, dec, reg), folder in BORROWED.items():
        s = SVD_CIFAR10[(model, dec, reg)]
        assert folder in s.borrowed and float(s.borrowed.rsplit("lambda_s ", 1)[1].rstrip(")")) == folder_lambda(
            folder.rsplit("/", 1)[1]
        )
        row = re.search(rf"^\| {model} \| {dec} \| {reg} \|.*$", text, re.M).group(0)
        assert f"borrowed from the test command of {folder}" in row
    assert "--depth 110" in text  # the typo in the ResNet-32 pre-training command is noted


def test_folder_names_decode_as_the_authors_wrote_them():
    assert [folder_lambda(f) for f in ("01", "007", "0003", "00001", "03")] == [0.1, 0.07, 3e-3, 1e-4, 0.3]


def _epochs(fractions, epochs):
    return [round(f * epochs) for f in fractions]


@pytest.mark.parametrize("name, extra", SETTINGS, ids=[" ".join([n, *e]) for n, e in SETTINGS])
def test_preset_values_follow_the_method_docs(name, extra, compose_cfg, build, imagenet_root):
    extra = [*extra, "init_from=/data/dense"] if name == "trp_imagenet" else extra
    typed, method = build(compose_cfg([f"+experiment={name}", f"dataset.root={imagenet_root}", *extra]))
    tr = typed.trainer
    model = next((e.split("=")[1] for e in extra if e.startswith("model=")), None) or name.split("_")[-1]
    assert typed.model.name == model
    assert typed.dataset.name == ("imagenet" if "_imagenet" in name else "cifar10")
    if name == "svd_cifar10_official":  # the authors' runs (START_UP), their network, three stages, no recalibration
        model, dec, reg = (e.split("=")[1] for e in extra)
        folder, (rule, value) = OFFICIAL_SVD[(model, dec, reg)]
        m = typed.method
        assert (typed.method.regularizer.kind, typed.method.regularizer.weight) == (
            reg,
            pytest.approx(folder_lambda(folder)),
        )
        assert (m.energy, m.threshold) == ((value, None) if rule == "e" else (None, value))
        assert (typed.model.shortcut, typed.model.block) == ("B", OFFICIAL_BLOCK[model])
        assert (m.orthogonal_epochs, tr.epochs, m.finetune_epochs) == (164, 164, 164)
        assert (tr.optimizer, tr.lr, tr.batch_size, tr.weight_decay) == ("adam", 1e-3, 100, 0.0)
        assert _epochs(tr.milestones, 164) == [81, 122] and tr.gamma == 0.1 and tr.finetune_lr is None
        assert (m.orthogonality, m.init, m.decomposition, tr.bn_recalibration_batches) == (1.0, "random", dec, 0)
        assert m.abs_singular_values  # resnet.py's forward: diag(|Sigma|)
    elif name.startswith("svd_cifar10"):
        reg = name.split("_")[-1]
        dec = next(e.split("=")[1] for e in extra if e.startswith("method.decomposition="))
        assert (tr.optimizer, tr.lr, tr.batch_size, tr.epochs) == ("adam", 1e-3, 100, 164)
        assert _epochs(tr.milestones, 164) == [81, 122] and tr.gamma == 0.1
        assert (typed.method.orthogonality, typed.method.init, typed.method.decomposition) == (1.0, "random", dec)
        assert not typed.method.abs_singular_values  # svdbench's variant: signed s
        assert typed.method.regularizer.kind == reg
        lo, hi = (1e-3, 0.1) if reg == "hoyer" else (0.1, 0.3)  # docs/method.md 1.2 ranges
        assert lo <= typed.method.regularizer.weight <= hi and 1e-3 <= typed.method.energy <= 0.3
        assert typed.method.finetune_epochs == 164
    elif name.startswith("svd_imagenet"):
        recipe = (tr.optimizer, tr.lr, tr.momentum, tr.weight_decay, tr.batch_size, tr.epochs)
        assert recipe == ("sgd", 0.1, 0.9, 1e-4, 256, 90)
        assert _epochs(tr.milestones, 90) == [31, 61]
        assert (typed.method.orthogonality, typed.method.regularizer.kind, typed.method.regularizer.weight) == (
            2.0,
            "hoyer",
            3e-3,
        )
        # CNN/imagenet/start_up.txt: an orthogonality-only first training, pruning at e = 1e-3, fine-tuning at lr 0.1
        assert (typed.method.orthogonal_epochs, typed.method.energy, typed.method.finetune_epochs) == (90, 1e-3, 90)
        assert tr.finetune_lr is None and tr.bn_recalibration_batches == 0
        assert typed.method.abs_singular_values  # the ImageNet resnet.py's forward: diag(|Sigma|)
    elif name.startswith("trp"):
        m = typed.method
        assert (m.energy_kept, m.nuclear_weight, m.threshold) == (0.9, 3e-4, 0.05) and 1 <= m.period <= 20
        assert m.period == 1  # the authors' code truncates every iteration (--decouple-period 1)
        assert tr.bn_recalibration_batches == 0
        if name == "trp_cifar10":  # their network (models/cifar/resnet.py of Trained-Rank-Pruning)
            assert (typed.model.shortcut, typed.model.block) == ("B", OFFICIAL_BLOCK[model])
        else:  # the paper: 10 epochs of TRP fine-tuning of a trained dense model at lr 1e-4
            assert typed.init_from == "/data/dense" and (tr.epochs, tr.lr, tr.schedule) == (10, 1e-4, "constant")
        assert m.skip_first and m.skip_1x1
    elif name.startswith("l1_filter"):
        assert typed.method.speedup > 1 and typed.method.ratio is None
        assert (tr.finetune_schedule, tr.finetune_lr) == ("constant", 0.001)
    else:  # sfp, fpgm: soft pruning from scratch, removal at the end
        assert 0.2 <= typed.method.ratio <= 0.4 and typed.method.speedup is None
        assert typed.method.finetune_epochs == 0 and tr.epochs >= 90
        assert typed.method.rounding == "pruned"  # int(C * rate) filters, as the authors' code
        if name.startswith("fpgm"):  # as the authors' code: the selected filters' gradients are cleared
            assert typed.method.mask_gradients
    assert ("regularizer" in method.Config.groups()) == name.startswith("svd")  # only SVD training takes one


def test_published_values_give_way_to_the_command_line_and_refuse_what_was_not_published(compose_cfg, build):
    typed, _ = build(compose_cfg(["+experiment=svd_cifar10_official", "regularizer.weight=0.02", "method.energy=0.2"]))
    assert (typed.method.regularizer.weight, typed.method.energy) == (0.02, 0.2)
    with pytest.raises(InputError, match="no official network for model=resnet8"):
        build(compose_cfg(["+experiment=svd_cifar10_official", "model=resnet8"]))
    with pytest.raises(InputError, match="published no SVD-training run for model=resnet20.*regularizer=none"):
        build(compose_cfg(["+experiment=svd_cifar10_official", "regularizer=none"]))
    with pytest.raises(InputError, match="^this preset needs init_from=<a trained dense model"):
        build(compose_cfg(["+experiment=trp_imagenet", "dataset.root=/data/x"]))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_reproduction_presets_train_as_the_authors_did_in_fp32_on_every_training_image(
    name, compose_cfg, imagenet_root
):
    """No validation split held out (the authors' codes train on all 50000 CIFAR-10 images; a reproduction
    selects nothing) and fp32 (trainer.amp=off: their codes run no autocast)."""
    cfg = compose_cfg([f"+experiment={name}", f"dataset.root={imagenet_root}"])  # not built: trp_imagenet needs a start
    assert cfg.trainer.amp == "off"
    assert val_size(cfg.dataset) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_preset_runs_one_tiny_step(name, tmp_path, compose_cfg, build):
    """The preset with its recipe shrunk to one step of two images: CIFAR's 3x32x32, or ImageNet's
    1000 classes at 3x64x64 (the ImageNet ResNets take any size; 224x224 only costs time here)."""
    shape = "[3,64,64]" if "_imagenet" in name else "[3,32,32]"
    classes = 1000 if "_imagenet" in name else 10
    cfg = compose_cfg([
        f"+experiment={name}", "dataset=synthetic", f"dataset.shape={shape}", f"dataset.num_classes={classes}",
        "dataset.num_train=2", "dataset.num_test=2", "trainer.epochs=1", "trainer.batch_size=2",
        "trainer.eval_batch_size=2", "trainer.progress=false", "trainer.bn_recalibration_batches=1",
        "trainer.device=cpu", "measure.latency=false", "save_model=false", "checkpoint=false",
    ])  # fmt: skip
    cfg.method.finetune_epochs = min(cfg.method.finetune_epochs, 1)  # the recipe's 164 (or 40) become 1
    if "orthogonal_epochs" in cfg.method:
        cfg.method.orthogonal_epochs = min(cfg.method.orthogonal_epochs, 1)
    if name == "trp_imagenet":  # trains from a dense model: one of this architecture, untrained
        dense = build_model("torchvision", cfg.model.name, classes, 3)
        (tmp_path / "init").mkdir()
        torch.save(dense.state_dict(), tmp_path / "init" / "dense.pt")
        cfg.init_from = str(tmp_path / "init" / "dense.pt")
    typed, method = build(cfg)
    res = run_experiment(typed, method, tmp_path / "run")
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
    assert listed == set(PRESETS)
