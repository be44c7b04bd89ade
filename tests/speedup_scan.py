"""The brute-force scan the energy search is tested against (tests/test_speedup_targets.py,
tests/test_speedup_runs.py): every energy at which some layer's rank can change, each pruned by
kept_rank itself, exported and counted by fvcore."""

import copy

import numpy as np
import torch
from baseline_nets import SHAPE
from torch import nn

from svdbench.lowrank import export, kept_rank, lowrank_layers, prune, round_rank
from svdbench.macs import analyze_macs


def dense_macs(model: nn.Module) -> int:
    return analyze_macs(model, SHAPE).macs


def brute_force(model: nn.Module, dense: int, round_to: int = 1, merge: bool = True, shape=SHAPE) -> dict[float, float]:
    """Energy -> fvcore speed-up of the exported copy pruned at it, for 0 and every tail fraction
    ``sum_{j>=k} s_j^2 / sum s^2`` of every layer (and the floats within 2 ulps of it), by kept_rank
    itself: an independent scan of every energy at which some rank can change. One thread: hundreds
    of small traces, which a second thread only slows down on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _scan(model, dense, round_to, merge, shape)
    finally:
        torch.set_num_threads(threads)


def _scan(model: nn.Module, dense: int, round_to: int, merge: bool, shape) -> dict[float, float]:
    layers = lowrank_layers(model)
    candidates = {0.0}
    for m in layers.values():
        sq = np.sort(m.s.detach().double().abs().cpu().numpy())[::-1] ** 2
        for b in (np.cumsum(sq[::-1])[::-1] / sq.sum())[1:]:
            for step in (-np.inf, np.inf):
                e = b
                for _ in range(3):
                    candidates.add(float(e))
                    e = np.nextafter(e, step)
    counted, scan = {}, {}
    for e in sorted(c for c in candidates if 0 <= c < 1):
        ranks = tuple(round_rank(kept_rank(m.s, energy=e), m.rank, round_to) for m in layers.values())
        if ranks not in counted:
            work = copy.deepcopy(model)
            prune(work, ranks=dict(zip(layers, ranks, strict=True)))
            counted[ranks] = dense / analyze_macs(export(work, merge), shape).macs
        scan[e] = counted[ranks]
    return scan


def assert_smallest(energy: float, speedup: float, scan: dict[float, float], target: float) -> None:
    """``energy`` (found by the search, reaching ``speedup``) is the smallest of the scan that reaches
    ``target``, with the scan's speed-up there; every smaller energy of the scan falls short."""
    speedups = [scan[e] for e in sorted(scan)]
    assert speedups == sorted(speedups), "deployed MACs must fall monotonically with the energy"
    reaching = [e for e, x in scan.items() if x >= target]
    assert energy == min(reaching) and speedup == scan[energy] >= target
    assert all(x < target for e, x in scan.items() if e < energy)
