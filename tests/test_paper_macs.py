"""The second MAC count, in the SVD-training authors' convention (svdbench.paper_macs): convolutions
only, every decomposed conv as its factor pair. Checked against fvcore's conv count of independently
built models (the dense net; the decomposed net exported with every layer as its pair), recorded by a
run beside fvcore's count, and used by ``svdbench report --x macs_paper``."""

import json

import pytest
import torch
from torch import nn

from svdbench import lowrank
from svdbench.macs import analyze_macs
from svdbench.methods import SVDTraining
from svdbench.models import cifar_resnet
from svdbench.paper_macs import paper_macs
from svdbench.pipeline import run_experiment

SHAPE = (1, 3, 32, 32)


def conv_macs(model: nn.Module) -> int:
    """fvcore's count of the conv operators alone."""
    return analyze_macs(model, SHAPE).by_operator.get("conv", 0)


def pruned(decomposition: str, ranks: float) -> nn.Module:
    """The authors' ResNet-20 (option B) with every conv decomposed and cut to ``ranks`` of its full rank."""
    torch.manual_seed(0)
    net = lowrank.decompose(cifar_resnet(20, shortcut="B"), decomposition, "svd", min_rank=1)
    keep = {n: max(1, int(m.full_rank * ranks)) for n, m in lowrank.lowrank_layers(net).items()}
    lowrank.prune(net, ranks=keep)
    return net


def test_dense_count_is_the_conv_count_without_the_classifier():
    net = cifar_resnet(20, shortcut="B")
    count = analyze_macs(net, SHAPE)
    assert paper_macs(net, SHAPE) == count.by_operator["conv"]
    assert count.macs - paper_macs(net, SHAPE) == 64 * 10  # the 64 -> 10 classifier is left out


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
@pytest.mark.parametrize("share", [0.3, 1.0])
def test_every_decomposed_conv_counts_as_its_pair(decomposition, share):
    """fvcore on the model exported with every layer as its pair (no merging) gives the same count: the
    stride-2 convs' spatial first factor (output Win wide) included; at full rank the pairs cost more than
    dense, and fvcore's count of the default export (unprofitable layers merged back) is below it."""
    net = pruned(decomposition, share)
    pairs = lowrank.export(net, merge_unprofitable=False)
    assert paper_macs(net, SHAPE) == conv_macs(pairs)
    merged = lowrank.export(net)
    if share == 1.0:
        dense = paper_macs(cifar_resnet(20, shortcut="B"), SHAPE)
        assert conv_macs(merged) < paper_macs(net, SHAPE) and paper_macs(net, SHAPE) > dense
    else:
        assert conv_macs(merged) <= paper_macs(net, SHAPE)


def test_the_authors_print_modules_formula():
    """A transcription of the authors' per-layer formula (resnet.py print_modules) on one stride-2 layer."""
    net = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False))
    for dec in ("channel", "spatial"):
        layer = lowrank.decompose_layer(net[0], dec)
        layer.keep(torch.arange(5))
        h = w = 8  # output of a 16x16 input at stride 2
        if dec == "channel":
            expect = h * w * 3**2 * 16 * 5 + h * w * 1 * 5 * 32
        else:
            expect = (h * w * 2) * 3 * 1 * 16 * 5 + h * w * 3 * 1 * 5 * 32  # feature_size*stride for the first
        assert paper_macs(nn.Sequential(layer), (1, 16, 16, 16)) == expect


@pytest.mark.slow
def test_a_run_records_both_counts_and_the_report_reads_the_authors_one(tmp_path, tiny_cfg, capsys):
    from svdbench.report import build_report

    method = SVDTraining.create(init="svd", energy=0.3)
    res = run_experiment(tiny_cfg(), method, tmp_path / "svd")
    paper = res["macs_paper"]
    assert set(paper) == {"macs", "dense", "speedup", "convention"}
    fc = res["mac_counter"]["dense"]["by_operator"]
    assert paper["dense"] == fc["conv"] and paper["speedup"] == pytest.approx(paper["dense"] / paper["macs"])
    assert paper["macs"] >= res["mac_counter"]["by_operator"]["conv"]  # pairs never merged back
    old = tmp_path / "old"
    old.mkdir()
    rec = json.loads((tmp_path / "svd" / "results.json").read_text())
    del rec["macs_paper"]
    (old / "results.json").write_text(json.dumps(rec))
    from svdbench.axes import MACS_PAPER

    rep = build_report([tmp_path], tmp_path / "report", axis=MACS_PAPER)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "authors' speed-up" in text and f"{paper['speedup']:.2f}x" in text
    assert any("macs_paper" in why for _, why in rep.skipped)
