"""``method.speedup`` for the low-rank methods (SVD training, post-hoc SVD, TRP): the energy search
against a brute-force scan of every breakpoint (each pruned, exported and counted by fvcore), the
largest reachable speed-up that ``check`` refuses beyond, the config rules, and the operating points
of ``method.speedups``. The end-to-end runs: tests/test_speedup_runs.py."""

import copy
import math

import numpy as np
import pytest
import torch
from baseline_nets import SHAPE, resnet8
from speedup_scan import assert_smallest, brute_force, dense_macs
from torch import nn

from svdbench import preflight
from svdbench.errors import InputError
from svdbench.lowrank import (
    decompose,
    energy_breakpoints,
    energy_for_speedup,
    export,
    kept_rank,
    lowrank_layers,
    prune,
    rank_one_speedup,
)
from svdbench.macs import analyze_macs
from svdbench.methods import TRP, PosthocSVD, PosthocSVDConfig, SVDConfig, SVDTraining, TRPConfig


def small_cnn() -> nn.Module:
    """Three convs (one strided) and a classifier: 42 singular values channel-wise, with the linear layer."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


@pytest.mark.parametrize(
    "decomposition, linear, round_to, merge",
    [("channel", True, 1, True), ("spatial", False, 4, True), ("channel", False, 2, False)],
)
def test_the_energy_found_is_the_smallest_of_a_brute_force_scan(decomposition, linear, round_to, merge):
    torch.manual_seed(0)
    net = small_cnn()
    dense = dense_macs(net)
    decompose(net, decomposition, "svd", linear=linear)
    scan = brute_force(net, dense, round_to, merge)
    most = rank_one_speedup(net, SHAPE, dense, round_to, merge)
    assert max(scan.values()) == pytest.approx(most, rel=1e-12)
    distinct = len(set(scan.values()))
    for target in sorted({1.05, 1.3, 1.7, 2.0, 2.5, most}):
        if target > most:
            continue
        before = {n: m.s.detach().clone() for n, m in lowrank_layers(net).items()}
        found = energy_for_speedup(net, SHAPE, target, dense, round_to, merge)
        assert_smallest(found.energy, found.speedup, scan, target)
        assert found.counts <= math.ceil(math.log2(len(scan))) + 1 and distinct > 3
        assert all(torch.equal(m.s, before[n]) for n, m in lowrank_layers(net).items())  # searched on copies
        work = copy.deepcopy(net)
        assert prune(work, energy=found.energy, round_to=round_to) == found.ranks
        assert dense / analyze_macs(export(work, merge), SHAPE).macs == found.speedup
    with pytest.raises(ValueError, match=r"method.speedup=.* is out of reach: at most .*x \(every layer at rank 1\)"):
        energy_for_speedup(net, SHAPE, most * 1.001, dense, round_to, merge)


def test_breakpoints_are_where_kept_rank_changes_ties_and_zeros_included():
    torch.manual_seed(0)
    for s in (torch.rand(40), torch.tensor([3.0, 2.0, 2.0, 2.0, 1.0, 0.5, 0.0, 0.0]), torch.randn(7) * 1e-3):
        b = energy_breakpoints(s)
        assert b[0] == 1.0 and np.all(np.diff(b) <= 0)
        for e in np.unique(b[b < 1]):
            below = np.nextafter(e, -np.inf)
            assert kept_rank(s, energy=float(e)) == max(1, int((b > e).sum()))
            if below >= 0:
                assert kept_rank(s, energy=float(below)) > kept_rank(s, energy=float(e))
    assert np.all(energy_breakpoints(torch.zeros(5)) == 0)


@pytest.mark.parametrize("method", [SVDTraining, PosthocSVD, TRP])
def test_check_refuses_a_target_beyond_every_layer_at_rank_1_in_one_line(method):
    net = resnet8()
    work = copy.deepcopy(net)
    if method is TRP:  # its eligible convs only: the stem stays dense
        names = TRP.create().eligible(work)
        assert "conv1" not in names
        decompose(work, "channel", "svd", skip=[n for n, m in work.named_modules() if isinstance(m, nn.Conv2d)
                                                 and n not in names])  # fmt: skip
    else:
        decompose(work, "channel", "svd")
    prune(work, ranks={n: 1 for n in lowrank_layers(work)})
    most = dense_macs(net) / analyze_macs(export(work), SHAPE).macs
    for settings in ({"speedup": 50.0}, {"speedups": [2.0, 50.0]}):
        with pytest.raises(ValueError) as err:
            method.create(**settings).check(net, SHAPE)
        key, value = next(iter(settings.items()))
        limit = f"{math.floor(most * 100) / 100:.2f}"  # rounded down: never printed as the target it misses
        assert str(err.value) == f"method.{key}={value} is out of reach: at most {limit}x (every layer at rank 1)"
    method.create(speedup=most).check(net, SHAPE)  # at the limit: reachable
    method.create(speedups=[most]).check(net, SHAPE)
    method.create().check(net, SHAPE)  # no target: nothing to check


def test_exactly_one_of_energy_threshold_and_speedup():
    assert SVDConfig().energy == 3e-4 and PosthocSVDConfig().energy == 0.32 and TRPConfig().threshold == 0.05
    assert SVDConfig(speedup=2).energy is None and TRPConfig(speedup=2).threshold is None
    assert PosthocSVDConfig(speedups=[1.5]).energy == 0.32  # points only: the main result keeps its default
    with pytest.raises(ValueError, match=r"^method.energy and method.threshold: set exactly one \(the other null\)$"):
        SVDConfig(energy=0.1, threshold=0.2)  # the message of before, while speedup is unset
    for config in (SVDConfig, PosthocSVDConfig, TRPConfig):
        with pytest.raises(ValueError, match="method.energy and method.threshold and method.speedup: set exactly one"):
            config(energy=0.1, speedup=2)
        with pytest.raises(ValueError, match=r"method.speedup must be > 1, got 1.0"):
            config(speedup=1.0)
        with pytest.raises(ValueError, match=r"method.speedups must each be > 1"):
            config(speedups=[2, 0.5])
        with pytest.raises(ValueError, match=r"method.speedups must not repeat a target \(speedup_2 twice\)"):
            config(speedups=[2, 1.5, 2.0])


def test_duplicate_speedups_are_a_config_error(compose_cfg, tiny):
    with pytest.raises(InputError, match=r"method.speedups must not repeat a target \(speedup_2 twice\)"):
        preflight.plan(compose_cfg([*tiny(), "method=svd", "method.speedups=[2,2.0]"]))


@pytest.mark.parametrize("method", [SVDTraining, PosthocSVD, TRP])
def test_speedup_points_are_labelled_configured_copies(method):
    main = method.create(speedups=[1.5, 2, 3.25])
    points = main.operating_points()
    assert [label for label, _ in points] == ["speedup_1.5", "speedup_2", "speedup_3.25"]
    for (_, p), x in zip(points, (1.5, 2.0, 3.25), strict=True):
        c = p.config
        assert type(p) is method and (c.speedup, c.energy, c.threshold, c.speedups) == (x, None, None, [])
        assert p.origin is main and p.targets() == [x]
    if method is SVDTraining:
        both = SVDTraining.create(speedup=2, energies=[0.1], speedups=[3]).operating_points()
        assert [(label, p.config.energy, p.config.speedup) for label, p in both] == [
            ("energy_0.1", 0.1, None), ("speedup_3", None, 3.0)
        ]  # fmt: skip


@pytest.mark.parametrize("method", [SVDTraining, PosthocSVD, TRP])
def test_a_point_compresses_as_a_run_with_that_speedup(method):
    """The point (its run's prepare and training) and a method configured with that speedup alone,
    prepared on the same dense model and compressed from the same trained one: the same outcome."""
    torch.manual_seed(0)
    dense = resnet8()
    settings = {"init": "svd"} if method is SVDTraining else {}
    main = method.create(speedups=[2.0], **settings)
    alone = method.create(speedup=2.0, **settings)
    nets = [m.prepare(copy.deepcopy(dense), SHAPE) for m in (main, alone)]
    if method is TRP:  # one truncation each, as the train stage makes
        for m, net in zip((main, alone), nets, strict=True):
            m.before_forward(net, 0, "train")
    (_, point), trained = main.operating_points()[0], nets[0]
    point.compress(copy.deepcopy(trained))
    alone.compress(nets[1])
    assert point.details() == alone.details()
    assert point.details()["speedup_reached"] >= 2.0 and point.details()["speedup_target"] == 2.0
    assert "energy_used" not in main.details()  # the run's own result was not searched


def test_compress_without_prepare_names_what_is_missing():
    net = decompose(resnet8(), "channel", "svd")
    with pytest.raises(RuntimeError, match="needs the input shape prepare"):
        PosthocSVD.create(speedup=2).compress(net)
