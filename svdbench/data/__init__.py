"""Datasets: Fashion-MNIST, CIFAR-10/100 and synthetic data held in memory as tensors (batched
augmentation on the training device, no per-sample PIL work), ImageNet through ImageFolder and a
torchvision DataLoader.

``load_dataset(...)`` returns a :class:`DataBundle` with ``train`` and ``test`` iterables of
``(images, labels)`` batches, the input shape ``(C, H, W)`` and the class count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from ..errors import DatasetError
from .batches import Batches, DataBundle, EvalShard, LoaderBatches, TensorBatches
from .files import CIFAR_LAYOUT, STATS, fashion_mnist_root, load_cifar, load_fashion_mnist
from .synthetic import make_synthetic

__all__ = [
    "DATASETS",
    "STATS",
    "Batches",
    "DataBundle",
    "DatasetError",
    "EvalShard",
    "LoaderBatches",
    "TensorBatches",
    "fashion_mnist_root",
    "load_cifar",
    "load_dataset",
    "load_fashion_mnist",
    "make_synthetic",
]

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic")


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None):
    return (x, y) if not n else (x[:n], y[:n])


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    batch_size: int = 128,
    eval_batch_size: int = 512,
    train_subset: int | None = None,
    test_subset: int | None = None,
    augment: bool = True,
    download: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    image_size: int = 224,
    synthetic_shape: Iterable[int] = (3, 32, 32),
    synthetic_classes: int = 10,
    synthetic_train: int = 512,
    synthetic_test: int = 256,
    shard: tuple[int, int] | None = None,
) -> DataBundle:
    """Load one of ``DATASETS``. ``train_subset``/``test_subset`` keep the first N samples.
    ``shard=(rank, world)``: this process's part of both splits (see :class:`TensorBatches`;
    ``batch_size`` is per process)."""
    gen = torch.Generator().manual_seed(seed)
    if name == "imagenet":
        return _imagenet(
            root, batch_size, eval_batch_size, train_subset, test_subset, augment, seed, num_workers, image_size, shard
        )
    if name == "fashion_mnist":
        xtr, ytr, xte, yte = load_fashion_mnist(root, download)
        stats, pad, flip, classes = STATS[name], 2, True, 10
    elif name in CIFAR_LAYOUT:
        xtr, ytr, xte, yte = load_cifar(name, root, download)
        stats, pad, flip, classes = STATS[name], 4, True, 10 if name == "cifar10" else 100
    elif name == "synthetic":
        shape = tuple(synthetic_shape)
        xtr, ytr, xte, yte = make_synthetic(synthetic_train, synthetic_test, shape, synthetic_classes, seed)
        stats = ((0.5,) * shape[0], (0.5,) * shape[0])
        pad, flip, classes = 0, False, synthetic_classes
    else:
        raise DatasetError(f"unknown dataset {name!r}; choose from {DATASETS}")
    xtr, ytr = _subset(xtr, ytr, train_subset)
    xte, yte = _subset(xte, yte, test_subset)
    train = TensorBatches(
        xtr,
        ytr,
        batch_size,
        *stats,
        shuffle=True,
        pad=pad if augment else 0,
        flip=flip and augment,
        generator=gen,
        device=device,
        shard=shard,
    )
    test = TensorBatches(xte, yte, eval_batch_size, *stats, device=device, shard=shard)
    return DataBundle(name, train, test, tuple(xtr.shape[1:]), classes, len(ytr), len(yte))


def _imagenet(
    root, batch_size, eval_batch_size, train_subset, test_subset, augment, seed, num_workers, image_size, shard=None
) -> DataBundle:
    """ImageFolder at ``root/train`` and ``root/val``: the standard RandomResizedCrop / flip recipe.
    With ``shard=(rank, world)`` the training split goes through a ``DistributedSampler`` (padded,
    reshuffled per pass) and the validation split through disjoint unpadded slices."""
    from torch.utils.data import DataLoader, DistributedSampler, Subset
    from torchvision import datasets
    from torchvision import transforms as T

    if not root or not (Path(root) / "train").is_dir() or not (Path(root) / "val").is_dir():
        raise DatasetError(f"imagenet needs dataset.root with train/ and val/ ImageFolder trees, got {root!r}")
    mean, std = STATS["imagenet"]
    norm = [T.ToTensor(), T.Normalize(mean, std)]
    train_tf = T.Compose(
        (
            [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
            if augment
            else [T.Resize(int(image_size * 8 / 7)), T.CenterCrop(image_size)]
        )
        + norm
    )
    test_tf = T.Compose([T.Resize(int(image_size * 8 / 7)), T.CenterCrop(image_size)] + norm)
    train_ds = datasets.ImageFolder(str(Path(root) / "train"), train_tf)
    test_ds = datasets.ImageFolder(str(Path(root) / "val"), test_tf)
    classes = len(train_ds.classes)
    if train_subset:
        train_ds = Subset(train_ds, range(min(train_subset, len(train_ds))))
    if test_subset:
        test_ds = Subset(test_ds, range(min(test_subset, len(test_ds))))
    g = torch.Generator().manual_seed(seed)
    if shard is not None and shard[1] > 1:
        rank, world = shard
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        g = torch.Generator().manual_seed(seed * 100_003 + rank)  # workers' augmentation seeds differ per rank
        train = DataLoader(train_ds, batch_size, sampler=sampler, num_workers=num_workers, generator=g)
        test = DataLoader(
            test_ds, eval_batch_size, sampler=EvalShard(len(test_ds), rank, world), num_workers=num_workers
        )
    else:
        shard = None
        train = DataLoader(train_ds, batch_size, shuffle=True, num_workers=num_workers, generator=g, drop_last=False)
        test = DataLoader(test_ds, eval_batch_size, num_workers=num_workers)
    return DataBundle(
        "imagenet",
        LoaderBatches(train, "cpu", shard),
        LoaderBatches(test, "cpu", shard),
        (3, image_size, image_size),
        classes,
        len(train_ds),
        len(test_ds),
    )
