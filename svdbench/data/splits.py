"""What a dataset is: an entry of :data:`DATASETS` (or a ``dataset._target_`` function) called as
``fn(cfg, seed)`` with the dataset config and the run's seed, returning :class:`TensorSplits` or :class:`DatasetSplits`.

Images are ``N x C x H x W`` (uint8 0..255, or float already scaled to [0, 1]); labels are ``N``
int64 class indices.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..errors import one_line, printable
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


def _check_tensor_fields(splits: TensorSplits, what: str) -> None:
    """A TensorSplits' splits are pairs of tensors, and its normalisation and augmentation fit the images:
    one mean and one std (> 0) per channel, ``pad`` >= 0."""
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        if split is None:
            continue
        if not (isinstance(split, (tuple, list)) and len(split) == 2 and all(torch.is_tensor(t) for t in split)):
            raise ValueError(f"dataset {what!r}, {name}: must be (images, labels) as torch tensors")
    if splits.train[0].dim() != 4:  # the images' shape named, not the mean that cannot fit it
        raise ValueError(f"dataset {what!r}, train: images of shape {tuple(splits.train[0].shape)}; give N x C x H x W "
                         "images (a grey-scale set too: C = 1, x.unsqueeze(1))")  # fmt: skip
    channels = splits.train[0].shape[1]
    for key in ("mean", "std"):
        values = getattr(splits, key)
        if not (isinstance(values, (tuple, list)) and len(values) == channels
                and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)):  # fmt: skip
            raise ValueError(f"dataset {what!r}: {key}={values!r}, one number per image channel ({channels})")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"dataset {what!r}: {key}={tuple(values)!r} must be finite")
    if any(v <= 0 for v in splits.std):
        raise ValueError(f"dataset {what!r}: std={tuple(splits.std)!r} must be > 0")
    if not isinstance(splits.pad, int) or isinstance(splits.pad, bool) or splits.pad < 0:
        raise ValueError(f"dataset {what!r}: pad={splits.pad!r} must be an integer >= 0")


def _check_images(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """In-memory images and labels are dense CPU tensors, the images bytes (uint8, 0..255) or finite floats in
    [0, 1] (what the normalisation expects: other integers, or floats of 0..255, would go in unscaled; a NaN test
    image would still be scored). ValueError in one line naming ``what``."""
    for t, kind in ((x, "images"), (y, "labels")):
        if t.layout != torch.strided or t.device.type != "cpu":
            raise ValueError(f"{what}: {kind} are a {t.layout} tensor on {t.device}; give a dense CPU tensor")
    if x.dtype == torch.uint8:
        return
    if not x.dtype.is_floating_point:
        raise ValueError(f"{what}: images of type {x.dtype}; give uint8 (0..255) or floats in [0, 1]")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what}: images hold NaN or infinite values")
    low, high = (float(v) for v in torch.aminmax(x.detach())) if x.numel() else (0.0, 0.0)
    if low < 0 or high > 1:
        raise ValueError(f"{what}: float images from {low:g} to {high:g}, outside [0, 1]; give uint8 (0..255) or "
                         "floats in [0, 1]")  # fmt: skip


def check_splits(splits: TensorSplits | DatasetSplits, what: str) -> None:
    """The splits as a whole, before any training: images N x C x H x W with one label each, labels
    integer classes in ``[0, num_classes)``, one image shape for every split (a ``DatasetSplits`` is
    checked on its first sample of each split). ValueError in one line naming the dataset and split."""
    n = splits.num_classes
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"dataset {what!r} has num_classes={n!r}: an integer, at least 2")
    if isinstance(splits, TensorSplits):
        _check_tensor_fields(splits, what)
    shapes = {}
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        if split is None:
            continue
        if isinstance(splits, TensorSplits):
            x, y = split
            if x.dim() != 4 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
                raise ValueError(
                    f"dataset {what!r}, {name}: {tuple(x.shape)} images and {tuple(y.shape)} labels; "
                    "N x C x H x W images need N labels"
                )
            _check_images(x, y, f"dataset {what!r}, {name}")
            shape, labels = tuple(x.shape[1:]), y
            if splits.pad > min(shape[1:]):
                raise ValueError(f"dataset {what!r}: pad={splits.pad} is more than the images' size {shape[1:]}")
        else:
            if isinstance(split, torch.utils.data.IterableDataset) or not hasattr(split, "__len__"):
                raise ValueError(f"dataset {what!r}, {name}: a {type(split).__name__}; a split must be a map-style "
                                 "Dataset (with __len__ and __getitem__)")  # fmt: skip
            try:  # the user's __len__ and first sample: their own error in one line
                size, item = len(split), (split[0] if len(split) else None)
            except Exception as err:
                raise ValueError(f"dataset {what!r}, {name}: its first sample cannot be read "
                                 f"({one_line(err, with_type=True)})") from None  # fmt: skip
            if size == 0:
                raise ValueError(f"dataset {what!r}, {name}: no samples")
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and torch.is_tensor(item[0])):
                size = f" of {len(item)}" if isinstance(item, (tuple, list)) else ""
                raise ValueError(f"dataset {what!r}, {name}: a sample must be (image tensor, label), got a "
                                 f"{type(item).__name__}{size}")  # fmt: skip
            x, label = item
            if not x.dtype.is_floating_point:  # the model takes floats; bytes would go in unscaled
                raise ValueError(f"dataset {what!r}, {name}: images of type {x.dtype}; a Dataset gives float images "
                                 "(its transform scales them: ToTensor)")  # fmt: skip
            integer = isinstance(label, numbers.Integral) or (
                torch.is_tensor(label) and label.dim() == 0 and not label.dtype.is_floating_point
            )
            if not integer or isinstance(label, bool) or (torch.is_tensor(label) and label.dtype == torch.bool):
                raise ValueError(f"dataset {what!r}, {name}: a label must be an integer class, got "
                                 f"{printable(repr(label))[:60]}")  # fmt: skip
            shape, labels = tuple(x.shape), torch.as_tensor([int(label)])
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(f"dataset {what!r}, {name}: labels of type {labels.dtype}, not integer classes")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= splits.num_classes:
            raise ValueError(
                f"dataset {what!r}, {name}: labels from {low} to {high}, outside [0, {splits.num_classes})"
            )
        shapes[name] = shape
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"dataset {what!r}: images of different shapes ({', '.join(f'{k} {v}' for k, v in shapes.items())})"
        )
    if isinstance(splits, DatasetSplits) and shapes and next(iter(shapes.values())) != tuple(splits.input_shape):
        raise ValueError(
            f"dataset {what!r}: images of shape {next(iter(shapes.values()))}, input_shape says "
            f"{tuple(splits.input_shape)}"
        )
