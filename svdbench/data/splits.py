"""What a dataset is: an entry of :data:`DATASETS` (or a ``dataset._target_`` function) called as
``fn(cfg, seed)`` with the dataset config and the run's seed, returning :class:`TensorSplits` or :class:`DatasetSplits`.

Images are ``N x C x H x W`` (uint8 0..255, or float already scaled to [0, 1]); labels are ``N``
int64 class indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..registry import Registry

DATASETS: Registry[Callable[..., TensorSplits | DatasetSplits]] = Registry("dataset")
#: dataset name -> the settings of ``dataset`` that only it reads (the synthetic data's ``shape``,
#: ImageNet's ``image_size``): another dataset's config, as results.json records it, leaves them out
DATASET_KEYS: dict[str, tuple[str, ...]] = {}


def register_dataset(name: str, keys: tuple[str, ...] = ()) -> Callable:
    """Decorator: register a dataset function in :data:`DATASETS` as ``name``, with the ``dataset.*``
    settings only it reads (:data:`DATASET_KEYS`)."""

    def add(fn: Callable) -> Callable:
        DATASET_KEYS[name] = tuple(keys)
        return DATASETS.register(name)(fn)

    return add


Split = tuple[torch.Tensor, torch.Tensor]  # images N x C x H x W, labels N


@dataclass(kw_only=True)
class TensorSplits:
    """Splits held in memory as ``(images, labels)``. ``load_dataset`` normalises with the
    per-channel ``mean``/``std`` and augments the training split on the training device: random
    crop after zero padding by ``pad`` pixels and a random horizontal ``flip`` (with ``augment``)."""

    train: Split
    test: Split
    val: Split | None = None
    num_classes: int
    mean: Sequence[float]
    std: Sequence[float]
    pad: int = 0
    flip: bool = False


@dataclass(kw_only=True)
class DatasetSplits:
    """Splits as torch ``Dataset``s of ``(image C x H x W float, label)``, batched by DataLoaders;
    their transforms do the augmentation (reading ``cfg.augment``) and the normalisation."""

    train: Dataset
    test: Dataset
    val: Dataset | None = None
    num_classes: int
    input_shape: tuple[int, int, int]  # C, H, W
