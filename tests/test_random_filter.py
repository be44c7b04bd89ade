"""``random_filter``: L1-norm's schedule, groups and counts with the filters drawn at random per group
(criterion ``random``, torch's default generator: seeded, reproducible); and ``speedup_target`` in
the filter-pruning details where a ``speedup`` drove the pruning."""

import pytest
import torch
from baseline_nets import SHAPE, resnet8

from svdbench.contracts import check_method
from svdbench.methods import CRITERIA, METHODS, L1FilterPruning, RandomFilterPruning
from svdbench.pruning import score


def pruned(cls, seed: int, **settings) -> tuple[dict, dict]:
    """The channels each group lost, and the details, of ``cls`` pruning the same ResNet-8 under ``seed``."""
    torch.manual_seed(0)
    model = resnet8()
    method = cls.create(**settings)
    method.check(model, SHAPE)
    method.prepare(model, SHAPE)
    torch.manual_seed(seed)  # as svdbench seeds every run
    method.compress(model)
    return method.pruned, method.details()


def test_random_filter_is_registered_with_l1_filter_s_schedule():
    assert METHODS.get("random_filter") is RandomFilterPruning and "random" in CRITERIA.names()
    assert (RandomFilterPruning.criterion, RandomFilterPruning.soft) == ("random", False)
    assert RandomFilterPruning.pretrain_dense and RandomFilterPruning.train_epochs == 0
    assert RandomFilterPruning.Config is L1FilterPruning.Config
    check_method(RandomFilterPruning)


@pytest.mark.parametrize("settings", [{"ratio": 0.5}, {"speedup": 2.0}])
def test_random_filter_prunes_other_filters_than_l1_with_the_same_counts(settings):
    l1, l1_details = pruned(L1FilterPruning, 1, **settings)
    first, details = pruned(RandomFilterPruning, 1, **settings)
    again, _ = pruned(RandomFilterPruning, 1, **settings)
    other, _ = pruned(RandomFilterPruning, 2, **settings)
    assert first == again != other  # seeded: reproducible, and another seed draws others
    assert first != l1
    for plan in (other, l1):
        assert {k: len(v) for k, v in plan.items()} == {k: len(v) for k, v in first.items()}
    assert details["criterion"] == "random" and details["ratio_used"] == l1_details["ratio_used"]
    assert details["channels_after"] == l1_details["channels_after"]
    assert details.get("speedup_target") == settings.get("speedup") == l1_details.get("speedup_target")


def test_the_random_criterion_draws_one_score_per_filter_from_the_default_generator():
    filters = torch.randn(6, 10, dtype=torch.float64)
    torch.manual_seed(3)
    a = score("random", filters)
    torch.manual_seed(3)
    assert torch.equal(a, score("random", filters)) and a.shape == (6,) and not torch.equal(a, score("random", filters))
