"""Contracts every registered model family and data set keeps, as timm's test_models.py runs over
``list_models()``: the tests are parametrized over the registries themselves (``svdbench.models.MODELS``,
``svdbench.data.DATASETS``), so an entry registered tomorrow is tested without editing a list here.

- A model family builds, for a small input of unusual channel count and class count, a model whose
  forward pass gives one finite logit per class, and whose fvcore MAC count (``analyze_macs``, what
  every run records) is finite and positive. A family is tried with one or two small names
  (:data:`SMALL`; a family not named there with the names its conf/model/*.yaml choose, else it fails
  asking for one).
- A data set returns ``TensorSplits`` or ``DatasetSplits`` whose splits agree in image shape, whose
  labels lie in ``[0, num_classes)``, and whose sizes and class count are those of the files it read
  (generated under a temporary folder by the writers of tests/conftest.py, ``DATASET_FILES``; a data set
  that reads files and has no writer there fails asking for one); ``load_dataset`` batches it.
"""

import math

import pytest
import torch
import yaml

from svdbench.config import DatasetConfig
from svdbench.data import DATASETS, DatasetError, DatasetSplits, TensorSplits, load_dataset
from svdbench.macs import analyze_macs
from svdbench.models import MODELS, build_model

#: family -> the small names it is tried with (``test_resnet``: timm's own test network, 0.4 M parameters)
SMALL = {"cifar_resnet": ["resnet8"], "torchvision": ["resnet18"], "timm": ["test_resnet"]}
IN_CHANNELS, NUM_CLASSES, SIZE = 2, 7, 32


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
        model = build_model(family, name, NUM_CLASSES, IN_CHANNELS).eval()
        assert isinstance(model, torch.nn.Module)
        with torch.no_grad():
            out = model(torch.randn(2, IN_CHANNELS, SIZE, SIZE))
        assert out.shape == (2, NUM_CLASSES) and torch.isfinite(out).all(), f"{family}/{name}"
        count = analyze_macs(model, (1, IN_CHANNELS, SIZE, SIZE))
        assert count.macs > 0 and math.isfinite(count.macs), f"{family}/{name}: {count.macs} MACs"


def _check_tensors(splits: TensorSplits) -> tuple[int, int, tuple[int, ...]]:
    shapes = set()
    for split in (splits.train, splits.test, splits.val):
        if split is None:
            continue
        x, y = split
        assert x.dim() == 4 and y.shape == (len(x),) and len(x) > 0
        assert x.dtype == torch.uint8 or (x.is_floating_point() and 0 <= x.min() and x.max() <= 1)
        # integer labels (splits.py says int64; Fashion-MNIST's reader gives the IDX files' uint8, which
        # TensorBatches turns into int64 as it does any integer type)
        assert not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool), y.dtype
        assert 0 <= y.min() and y.max() < splits.num_classes
        shapes.add(tuple(x.shape[1:]))
    assert len(shapes) == 1, f"splits of different image shapes: {shapes}"
    (shape,) = shapes
    assert len(splits.mean) == len(splits.std) == shape[0] and min(splits.std) > 0
    return len(splits.train[1]), len(splits.test[1]), shape


def _check_datasets(splits: DatasetSplits) -> tuple[int, int, tuple[int, ...]]:
    shape = tuple(splits.input_shape)
    assert len(shape) == 3
    for ds in (splits.train, splits.test, splits.val):
        if ds is None:
            continue
        assert len(ds) > 0
        for x, y in ds:
            assert tuple(x.shape) == shape and x.is_floating_point()
            assert 0 <= int(y) < splits.num_classes
    return len(splits.train), len(splits.test), shape


@pytest.mark.parametrize("name", DATASETS.names())
def test_a_data_set_returns_consistent_splits(name, tmp_path, dataset_files):
    make = dataset_files.get(name)
    expected = make(tmp_path) if make else {}
    cfg = DatasetConfig(name=name, root=str(tmp_path), download=False, val_size=0)
    try:
        splits = DATASETS.get(name)(cfg, 0)
    except DatasetError as err:
        pytest.fail(f"data set {name!r}: {err}. If it reads files, give it a writer of small ones in DATASET_FILES "
                    "(tests/conftest.py)")  # fmt: skip
    assert isinstance(splits, (TensorSplits, DatasetSplits)), type(splits)
    assert splits.num_classes >= 2
    check = _check_tensors if isinstance(splits, TensorSplits) else _check_datasets
    num_train, num_test, shape = check(splits)
    got = {"num_train": num_train, "num_test": num_test, "num_classes": splits.num_classes, "shape": shape}
    assert {k: got[k] for k in expected} == expected
    bundle = load_dataset(cfg, batch_size=4, eval_batch_size=4)
    x, y = next(iter(bundle.train))
    assert tuple(x.shape) == (min(4, num_train), *shape) == (len(y), *bundle.input_shape)
    assert (bundle.num_train, bundle.num_test, bundle.num_classes) == (num_train, num_test, splits.num_classes)
