"""A method that changes the architecture in ``prepare`` and does not compress (factorised training at a
fixed rank, built from the public low-rank blocks): its run records the layers' full ranks, deploys the
pairs of small layers and leaves no ``dense.pt`` (its factors are not a dense starting point)."""

from dataclasses import dataclass

import pytest

from svdbench.lowrank import decompose, export, lowrank_layers, prune
from svdbench.methods import Method, MethodConfig
from svdbench.pipeline import run_experiment


@dataclass
class FixedRankConfig(MethodConfig):
    share: float = 0.5  # of each layer's full rank, kept from the start


class FixedRank(Method):
    Config = FixedRankConfig

    def prepare(self, model, input_shape):
        decompose(model, "channel", "random")
        prune(model, ranks={n: max(1, int(m.full_rank * self.config.share)) for n, m in lowrank_layers(model).items()})
        return model

    def export(self, model):
        return export(model)


@pytest.mark.slow
def test_a_fixed_rank_method_records_full_ranks_and_leaves_no_dense_checkpoint(tmp_path, tiny_cfg):
    res = run_experiment(tiny_cfg(), FixedRank(), tmp_path)
    full, after = res["ranks"]["full"], res["ranks"]["after"]
    assert full["layer1.0.conv1"] == 16 and full["layer3.0.conv1"] == 64  # min(Cout, Cin*k*k): the full rank
    assert after == {n: max(1, int(r * 0.5)) for n, r in full.items()}  # the ranks the method trained at
    assert not (tmp_path / "dense.pt").exists()
    assert res["status"] == "completed" and res["macs"] < res["macs_dense"]
