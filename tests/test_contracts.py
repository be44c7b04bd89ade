"""Contracts every registered model family and data set keeps, as timm's test_models.py runs over
``list_models()``: the tests are parametrized over the registries themselves (``svdbench.models.MODELS``,
``svdbench.data.DATASETS``), so an entry registered tomorrow is tested without editing a list here. The
checks are :func:`svdbench.contracts.check_model` and :func:`~svdbench.contracts.check_dataset`, which a
plug-in's own test calls too.

- A model family builds, for a small input of unusual channel count and class count, a model whose
  forward pass gives one finite logit per class, and whose fvcore MAC count (``analyze_macs``, what
  every run records) is finite and positive. A family is tried with one or two small names
  (:data:`SMALL`; a family not named there with the names its conf/model/*.yaml choose, else it fails
  asking for one).
- A data set returns ``TensorSplits`` or ``DatasetSplits`` whose splits agree in image shape, whose
  labels are int64 in ``[0, num_classes)``, and whose sizes and class count are those of the files it read
  (generated under a temporary folder by the writers of tests/conftest.py, ``DATASET_FILES``; a data set
  that reads files and has no writer there fails asking for one); ``load_dataset`` batches it.
"""

import functools

import pytest
import yaml

from svdbench.contracts import check_dataset, check_model
from svdbench.data import DATASETS, DatasetError
from svdbench.models import MODELS, build_model

#: family -> the small names it is tried with (``test_resnet``: timm's own test network, 0.4 M parameters)
SMALL = {"cifar_resnet": ["resnet8"], "torchvision": ["resnet18"], "timm": ["test_resnet"]}


def names_of(family: str, root) -> list[str]:
    """The names ``family`` is tried with: :data:`SMALL`'s, else those of the model presets of that family."""
    if family in SMALL:
        return SMALL[family]
    presets = [yaml.safe_load(p.read_text()) for p in sorted((root / "conf" / "model").glob("*.yaml"))]
    return [p["name"] for p in presets if p.get("family") == family]


@pytest.mark.parametrize("family", MODELS.names())
def test_a_model_family_builds_runs_and_is_counted(family, root):
    names = names_of(family, root)
    if not names:
        pytest.fail(f"model family {family!r}: give it a small name in SMALL (tests/test_contracts.py)")
    for name in names:
        check_model(functools.partial(build_model, family, name))


@pytest.mark.parametrize("name", DATASETS.names())
def test_a_data_set_returns_consistent_splits(name, tmp_path, dataset_files):
    make = dataset_files.get(name)
    expected = make(tmp_path) if make else {}
    try:
        got = check_dataset(DATASETS.get(name), name, root=str(tmp_path), val_size=0)
    except DatasetError as err:
        pytest.fail(f"data set {name!r}: {err}. If it reads files, give it a writer of small ones in DATASET_FILES "
                    "(tests/conftest.py)")  # fmt: skip
    assert {k: got[k] for k in expected} == expected


def test_the_checks_fail_what_breaks_the_contract():
    import torch
    from torch import nn

    from svdbench.data import TensorSplits

    def two_logits(num_classes, in_channels):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(2))

    with pytest.raises(AssertionError, match="output of shape"):
        check_model(two_logits)

    def float_labels(cfg, seed):
        x = torch.rand(8, 1, 4, 4)
        return TensorSplits(train=(x, torch.zeros(8)), test=(x, torch.zeros(8)), num_classes=2, mean=(0.5,), std=(0.5,))

    with pytest.raises(AssertionError, match="labels are torch.float32, not int64"):
        check_dataset(float_labels)
