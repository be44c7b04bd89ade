"""Datasets by name, or your own through ``dataset._target_``, loaded into batches.

A dataset is a function ``fn(cfg, seed) -> TensorSplits | DatasetSplits`` (see :mod:`.splits`; ``seed``
is the run's, for data that is generated or split at random),
registered in :data:`DATASETS` (built in: Fashion-MNIST, CIFAR-10/100 and ImageNet in
:mod:`.files`, generated data in :mod:`.synthetic`) or named by ``cfg._target_``
(``"module.function"``, reading its own settings from ``cfg.kwargs``). :func:`load_dataset` calls
it and returns a :class:`DataBundle` of ``(images, labels)`` batches: in-memory splits as
:class:`TensorBatches` (normalised once, augmented per batch on the training device), ``Dataset``
splits through DataLoaders.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..errors import DatasetError, InputError, one_line
from ..registry import import_object
from .batches import Batches, DataBundle, EvalShard, LoaderBatches, TensorBatches
from .files import STATS, check_files, fashion_mnist_root, load_cifar, load_fashion_mnist
from .splits import DATASET_KEYS, DATASETS, DatasetSplits, TensorSplits, check_splits, register_dataset
from .synthetic import make_synthetic

log = logging.getLogger("svdbench")

__all__ = [
    "DATASET_KEYS",
    "DATASETS",
    "STATS",
    "Batches",
    "DataBundle",
    "DatasetError",
    "DatasetSplits",
    "EvalShard",
    "LoaderBatches",
    "TensorBatches",
    "TensorSplits",
    "check_files",
    "fashion_mnist_root",
    "load_cifar",
    "load_dataset",
    "load_fashion_mnist",
    "make_synthetic",
    "register_dataset",
]


def _dataset_function(cfg):
    """``cfg._target_`` imported when set, else the registered entry named ``cfg.name``; either
    failure is a one-line DatasetError."""
    target = getattr(cfg, "_target_", None)
    try:
        fn = import_object(target, "dataset._target_") if target else DATASETS.get(cfg.name)
    except InputError as err:
        raise DatasetError(str(err)) from None
    if not callable(fn):
        raise DatasetError(f"dataset._target_ {target!r} is not a function")
    return fn


def load_dataset(
    cfg,
    *,
    batch_size: int,
    eval_batch_size: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    shard: tuple[int, int] | None = None,
) -> DataBundle:
    """Make the dataset of ``cfg`` (a :class:`svdbench.config.DatasetConfig`, or any object with
    its attributes) and batch it: ``batch_size`` for training (shuffled and augmented from ``seed``
    when ``cfg.augment``), ``eval_batch_size`` for the test and validation splits. The validation
    split is the dataset's own, or ``dataset.val_size`` training images held out
    (:func:`hold_out_validation`).
    ``cfg.train_subset``/``cfg.test_subset`` keep the first N samples (all when N is larger).
    ``shard=(rank, world)``: this process's part of every split (see :class:`TensorBatches`;
    ``batch_size`` is per process). In-memory batches live on ``device``; DataLoader batches come
    on the CPU, loaded by ``num_workers`` workers."""
    fn = _dataset_function(cfg)
    what = getattr(cfg, "_target_", None) or cfg.name
    try:
        splits = fn(cfg, seed)
    except DatasetError:
        raise
    except (Exception, SystemExit) as err:  # a dataset function of one's own that fails (argparse exits): bad input
        raise DatasetError(f"dataset {what!r} failed: {one_line(err, with_type=True)}") from None
    if isinstance(splits, (TensorSplits, DatasetSplits)):
        try:
            check_splits(splits, what)
        except ValueError as err:
            raise DatasetError(str(err)) from None
    asked = getattr(cfg, "val_size", None)
    if getattr(splits, "val", None) is not None and asked is not None:
        raise DatasetError(
            f"dataset.val_size={asked}, but dataset {what!r} brings its own validation split: "
            "leave dataset.val_size unset"
        )
    splits = hold_out_validation(splits, val_size(cfg))
    if isinstance(splits, TensorSplits):
        return _tensor_bundle(cfg, splits, batch_size, eval_batch_size, seed, device, shard)
    if isinstance(splits, DatasetSplits):
        return _loader_bundle(cfg, splits, batch_size, eval_batch_size, seed, num_workers, shard)
    raise DatasetError(f"dataset {what!r} returned {type(splits).__name__}, not TensorSplits or DatasetSplits")


#: images held out of the training split for validation when ``dataset.val_size`` is null (and no
#: ``train_subset`` is asked: then in proportion, :func:`val_size`)
VAL_SIZE = {"fashion_mnist": 5000, "cifar10": 5000, "cifar100": 5000}
#: the training splits' sizes of those datasets, of which :data:`VAL_SIZE` are held out
TRAIN_SIZE = {"fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000}
#: the generator seed of the held-out draw: the same images for every run, seed and method
VAL_SEED = 20200421


#: (image channels, classes) of the built-in datasets whose files say no more than their name
BUILT_IN_SHAPES = {"fashion_mnist": (1, 10), "cifar10": (3, 10), "cifar100": (3, 100), "imagenet": (3, 1000)}


def channels_and_classes(cfg) -> tuple[int, int] | None:
    """The image channels and classes a dataset config gives without loading it (a built-in dataset, the
    synthetic one's ``shape`` and ``num_classes``); None for a dataset of one's own."""
    if getattr(cfg, "_target_", None):
        return None
    if cfg.name == "synthetic":
        return int(cfg.shape[0]), int(cfg.num_classes)
    return BUILT_IN_SHAPES.get(cfg.name)


def val_size(cfg) -> int:
    """``dataset.val_size``, or the dataset's default: :data:`VAL_SIZE` images (0 for the others), scaled with
    ``train_subset`` N to the same proportion, ``min(V, ceil(N V / (T - V)))`` of a training split of T (a
    Fashion-MNIST run on 2000 training images holds out 182, not 5000)."""
    n = getattr(cfg, "val_size", None)
    if n is not None or getattr(cfg, "_target_", None):
        return n or 0
    default, subset = VAL_SIZE.get(cfg.name, 0), getattr(cfg, "train_subset", None)
    if not default or not subset:
        return default
    return min(default, math.ceil(subset * default / (TRAIN_SIZE[cfg.name] - default)))


def hold_out_validation(splits: TensorSplits | DatasetSplits, n: int):
    """``splits`` with ``n`` training images moved to a validation split, drawn by a generator of
    fixed seed (:data:`VAL_SEED`), never from the test split. A dataset that brings its own
    validation split keeps it; ``n = 0`` leaves the splits alone."""
    if not isinstance(splits, (TensorSplits, DatasetSplits)) or n <= 0 or splits.val is not None:
        return splits
    total = len(splits.train[1]) if isinstance(splits, TensorSplits) else len(splits.train)
    if n >= total:
        raise DatasetError(f"dataset.val_size={n} leaves no training images (the training split has {total})")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(VAL_SEED))
    val_idx, train_idx = order[:n].sort().values, order[n:].sort().values
    if isinstance(splits, TensorSplits):
        x, y = splits.train
        return dataclasses.replace(splits, train=(x[train_idx], y[train_idx]), val=(x[val_idx], y[val_idx]))
    return dataclasses.replace(
        splits, train=Subset(splits.train, train_idx.tolist()), val=Subset(splits.train, val_idx.tolist())
    )


def _subset_size(n: int | None, available: int, key: str) -> int:
    """How many samples ``dataset.<key>`` keeps of ``available``: all without it; a request for more
    than there are keeps all of them and says so (the record holds the real counts)."""
    if n and n > available:
        log.warning("dataset.%s=%d, but the split has %d samples: using %d", key, n, available, available)
    return min(n, available) if n else available


def _first(split: tuple[torch.Tensor, torch.Tensor], n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = split
    return (x, y) if not n else (x[:n], y[:n])


def _lone_last_batch(n: int, batch_size: int) -> bool:
    """Whether an epoch of ``n`` training samples ends in a batch of one sample, which is dropped: a
    BatchNorm layer on 1x1 maps cannot normalise one sample (a different one each epoch: shuffled)."""
    if n > 1 and n % batch_size == 1:
        log.warning(
            "%d training samples in batches of %d: the last batch of one sample is dropped each epoch "
            "(BatchNorm cannot train on one sample)",
            n,
            batch_size,
        )
        return True
    return False


def _tensor_bundle(cfg, s: TensorSplits, batch_size, eval_batch_size, seed, device, shard) -> DataBundle:
    xtr, ytr = _first(s.train, _subset_size(cfg.train_subset, len(s.train[1]), "train_subset"))
    xte, yte = _first(s.test, _subset_size(cfg.test_subset, len(s.test[1]), "test_subset"))
    train = TensorBatches(
        xtr,
        ytr,
        batch_size,
        s.mean,
        s.std,
        shuffle=True,
        pad=s.pad if cfg.augment else 0,
        flip=s.flip and cfg.augment,
        generator=torch.Generator().manual_seed(seed),
        device=device,
        shard=shard,
    )
    train.drop_last = _lone_last_batch(train.num_local(), batch_size)

    def evaluation(x, y):
        return TensorBatches(x, y, eval_batch_size, s.mean, s.std, device=device, shard=shard)

    val = evaluation(*s.val) if s.val is not None else None
    return DataBundle(
        cfg.name,
        train,
        evaluation(xte, yte),
        tuple(xtr.shape[1:]),
        s.num_classes,
        len(ytr),
        len(yte),
        val=val,
        num_val=len(s.val[1]) if s.val is not None else 0,
        dropped_per_epoch=int(train.drop_last),
    )


def _loader_bundle(cfg, s: DatasetSplits, batch_size, eval_batch_size, seed, num_workers, shard) -> DataBundle:
    """The training split through a shuffling DataLoader, the others in order. With
    ``shard=(rank, world)`` training goes through a ``DistributedSampler`` (padded, reshuffled per
    pass) and evaluation through disjoint unpadded slices."""
    train_ds, test_ds = s.train, s.test
    if cfg.train_subset:
        train_ds = Subset(train_ds, range(_subset_size(cfg.train_subset, len(train_ds), "train_subset")))
    if cfg.test_subset:
        test_ds = Subset(test_ds, range(_subset_size(cfg.test_subset, len(test_ds), "test_subset")))
    if shard is not None and shard[1] > 1:
        rank, world = shard
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        g = torch.Generator().manual_seed(seed * 100_003 + rank)  # workers' augmentation seeds differ per rank
        drop = _lone_last_batch(len(sampler), batch_size)
        train = DataLoader(train_ds, batch_size, sampler=sampler, num_workers=num_workers, generator=g, drop_last=drop)

        def evaluation(ds):
            return DataLoader(ds, eval_batch_size, sampler=EvalShard(len(ds), rank, world), num_workers=num_workers)

    else:
        shard = None
        g = torch.Generator().manual_seed(seed)
        drop = _lone_last_batch(len(train_ds), batch_size)
        train = DataLoader(train_ds, batch_size, shuffle=True, num_workers=num_workers, generator=g, drop_last=drop)

        def evaluation(ds):
            return DataLoader(ds, eval_batch_size, num_workers=num_workers)

    val = LoaderBatches(evaluation(s.val), "cpu", shard, f"dataset {cfg.name!r}, val") if s.val is not None else None
    return DataBundle(
        cfg.name,
        LoaderBatches(train, "cpu", shard, f"dataset {cfg.name!r}, train"),
        LoaderBatches(evaluation(test_ds), "cpu", shard, f"dataset {cfg.name!r}, test"),
        tuple(s.input_shape),
        s.num_classes,
        len(train_ds),
        len(test_ds),
        val=val,
        num_val=len(s.val) if s.val is not None else 0,
        dropped_per_epoch=int(train.drop_last),
    )
