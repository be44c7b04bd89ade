"""``method.round_to``: every method that picks ranks or channels rounds them up to a multiple (or
keeps them whole), records them before and after, and the MACs are those of the rounded model."""

import pytest

from svdbench.deployed import load_deployed
from svdbench.macs import count_macs
from svdbench.methods import TRP, L1FilterPruning, PosthocSVD, SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.regularizers import SparsityRegularizer

LOWRANK = {
    "svd": lambda **kw: SVDTraining.create(regularizer=SparsityRegularizer("hoyer", 0.05), energy=0.2, **kw),
    "svd_posthoc": lambda **kw: PosthocSVD.create(energy=0.3, **kw),
    "trp": lambda **kw: TRP.create(energy=0.2, **kw),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", LOWRANK)
def test_rounded_ranks_are_multiples_or_full_and_macs_are_recounted(name, tmp_path, tiny_cfg):
    plain = run_experiment(tiny_cfg(save_model=False), LOWRANK[name](finetune_epochs=0), tmp_path / "plain")
    res = run_experiment(tiny_cfg(save_model=True), LOWRANK[name](round_to=8, finetune_epochs=0), tmp_path / "r8")
    d = res["method_details"]
    full, unrounded, after = d["ranks_before"], d["ranks_unrounded"], d["ranks_after"]
    assert res["config"]["method"]["round_to"] == 8 and after and set(after) == set(unrounded)
    for layer, r in after.items():
        assert r % 8 == 0 or r == full[layer], (layer, r)
        assert unrounded[layer] <= r <= full[layer]
    assert unrounded == plain["method_details"]["ranks_after"]  # the same rule before rounding
    assert any(after[k] > unrounded[k] for k in after)  # something was rounded
    deployed = load_deployed(tmp_path / "r8")
    assert res["macs"] == count_macs(deployed, res["input_shape"]) >= plain["macs"]


@pytest.mark.slow
def test_filter_widths_are_multiples_or_whole(tmp_path, tiny_cfg):
    res = run_experiment(tiny_cfg(), L1FilterPruning.create(ratio=0.3, round_to=8, finetune_epochs=0), tmp_path)
    d = res["method_details"]
    before, after = d["channels_before"], d["channels_after"]
    changed = [k for k in after if after[k] != before[k]]
    assert changed and all(after[k] % 8 == 0 for k in changed)


@pytest.mark.parametrize("cls", [SVDTraining, PosthocSVD, TRP, L1FilterPruning])
def test_round_to_is_checked_and_reaches_every_operating_point(cls):
    with pytest.raises(ValueError, match="method.round_to"):
        cls.create(round_to=0)
    if cls is SVDTraining:
        method = cls.create(regularizer=SparsityRegularizer("hoyer", 0.05), round_to=16, energies=[0.1, 0.2])
        assert [m.config.round_to for _, m in method.operating_points()] == [16, 16]
