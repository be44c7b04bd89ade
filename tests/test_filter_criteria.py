"""The filter-pruning family as an extension point: criteria in a registry (``register_criterion``),
a ``FilterPruning`` subclass naming one, and the contract both follow (per-filter scores of one
group, higher kept; the soft masks are the family's, not the criterion's). What a test registers
here is removed again afterwards (the ``registries`` fixture)."""

import re

import pytest
import torch
from baseline_nets import SHAPE, resnet8

from svdbench.errors import InputError
from svdbench.methods import CRITERIA, METHODS, FilterPruning, FilterPruningConfig, method_target, register_method
from svdbench.pruning import kept_channels, register_criterion, score


@pytest.fixture
def registries(monkeypatch):
    """METHODS and CRITERIA as they are now, restored after the test."""
    for registry in (METHODS, CRITERIA):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))


def test_the_built_in_criteria_are_registered_scores():
    assert CRITERIA.names()[:3] == ["l1", "l2", "fpgm"]
    filters = torch.randn(6, 10, dtype=torch.float64)
    assert torch.equal(score("l1", filters), filters.abs().sum(1))
    assert torch.equal(score("l2", filters), filters.norm(dim=1))
    assert torch.allclose(score("fpgm", filters), torch.cdist(filters, filters).sum(1))
    with pytest.raises(ValueError, match="filter-pruning criterion 'l1' is already registered"):
        register_criterion("l1")(lambda f: f.sum(1))


def test_a_plugin_criterion_prunes_exactly_the_filters_its_scores_say(registries):
    seen = []

    @register_criterion("channel_index")
    def channel_index(filters: torch.Tensor) -> torch.Tensor:  # the highest indices are kept
        seen.append(tuple(filters.shape))
        return torch.arange(filters.shape[0], dtype=torch.float64)

    @register_method("index_filter")
    class IndexFilterPruning(FilterPruning):
        criterion = "channel_index"
        pretrain_dense = True
        train_epochs = 0

    model = resnet8()
    before = {n: model.get_submodule(n).weight.detach().clone() for n in ("layer1.0.conv1", "layer3.0.conv1")}
    method = IndexFilterPruning.create(ratio=0.25)
    assert type(method.config) is FilterPruningConfig and method.config._target_ == method_target(IndexFilterPruning)
    method.prepare(model, SHAPE)
    method.compress(model)
    assert sorted(seen) == [(16, 16 * 9), (32, 16 * 9), (64, 32 * 9)]  # one group each: its conv1's filters
    for root, width in (("layer1.0.conv1", 16), ("layer2.0.conv1", 32), ("layer3.0.conv1", 64)):
        gone = width - kept_channels(width, 0.25)
        assert method.pruned[root] == list(range(gone))  # the lowest scores: the lowest indices
    for name, w in before.items():
        assert torch.equal(model.get_submodule(name).weight, w[len(w) // 4 :])
    assert method.details()["criterion"] == "channel_index" and METHODS.get("index_filter") is IndexFilterPruning


def test_soft_masks_are_removed_first_whatever_the_criterion_says(registries):
    register_criterion("channel_index")(lambda filters: torch.arange(filters.shape[0], dtype=torch.float64))

    class SoftIndex(FilterPruning):
        criterion = "channel_index"
        soft = True

    model = resnet8()
    method = SoftIndex.create(ratio=0.25)
    method.prepare(model, SHAPE)
    method.on_epoch_end(model, 0, "train")
    assert method.masks["layer1.0.conv1"].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert torch.all(model.layer1[0].conv1.weight[:4] == 0)
    mask = torch.zeros(16, dtype=torch.bool)
    mask[[3, 7, 12, 15]] = True  # as if an earlier epoch had zeroed these
    method.masks["layer1.0.conv1"] = mask
    method.compress(model)
    assert method.pruned["layer1.0.conv1"] == [3, 7, 12, 15] and method.pruned["layer2.0.conv1"] == list(range(8))


def test_an_unknown_criterion_is_refused_in_one_line_when_the_method_is_defined():
    with pytest.raises(InputError, match=r"^unknown filter-pruning criterion 'nope'; choose from l1, l2, fpgm") as err:

        class Nope(FilterPruning):
            criterion = "nope"

    assert "\n" not in str(err.value)


def test_a_criterion_breaking_the_contract_is_named(registries):
    register_criterion("too_few")(lambda filters: filters.abs().sum(1)[:-1])
    register_criterion("nan")(lambda filters: torch.full((filters.shape[0],), float("nan")))
    for name, message in (("too_few", "must return 16 scores, one per filter, got (15,)"), ("nan", "not finite")):
        method = type("Broken", (FilterPruning,), {"criterion": name}).create(ratio=0.25)
        method.prepare(resnet8(), SHAPE)
        with pytest.raises(ValueError, match=rf"^filter-pruning criterion '{name}' .*{re.escape(message)}"):
            method.compress(method.pruner.model)


def test_a_random_criterion_draws_from_the_default_generator(registries):
    register_criterion("test_random")(lambda filters: torch.rand(filters.shape[0]))
    RandomFilter = type("RandomFilter", (FilterPruning,), {"criterion": "test_random"})

    def plan(seed: int) -> dict:
        method = RandomFilter.create(ratio=0.5)
        model = method.prepare(resnet8(), SHAPE)
        torch.manual_seed(seed)  # as svdbench seeds every run
        method.compress(model)
        return method.pruned

    assert plan(1) == plan(1) != plan(2)
