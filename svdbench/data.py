"""Datasets: Fashion-MNIST, CIFAR-10/100 and synthetic data held in memory as tensors (batched
augmentation on the training device, no per-sample PIL work), ImageNet through ImageFolder and a
torchvision DataLoader.

``load_dataset(...)`` returns a :class:`DataBundle` with ``train`` and ``test`` iterables of
``(images, labels)`` batches, the input shape ``(C, H, W)`` and the class count.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np
import torch

from .errors import DatasetError, one_line

log = logging.getLogger(__name__)

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
STATS = {  # per-channel mean, std of the training split
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic")


class Batches(Protocol):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


@dataclass
class DataBundle:
    name: str
    train: Batches
    test: Batches
    input_shape: tuple[int, int, int]
    num_classes: int
    num_train: int
    num_test: int


class TensorBatches:
    """Mini-batches of an in-memory split ``images`` (N,C,H,W uint8 or float) and ``labels`` (N).

    Images are converted to normalised float once; augmentation (``pad`` pixels of random
    crop, horizontal ``flip``) is applied per batch with tensor operations. ``shuffle`` draws a
    new permutation each epoch from ``generator``.

    ``shard=(rank, world)`` (data-parallel training, one process per rank): this process takes
    positions ``rank, rank + world, ...`` of each epoch's order. Every rank draws the same
    permutation (its ``generator`` is seeded identically), so the shards are disjoint and cover the
    split. A shuffled (training) split is first padded by wrapping around to a multiple of
    ``world``, as ``DistributedSampler`` does, so that every rank runs as many batches as the
    others; an evaluation split is not padded (no sample counted twice). Augmentation is drawn for
    the whole global batch and each rank takes its part: the ranks' generators stay in step.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean,
        std,
        shuffle: bool = False,
        pad: int = 0,
        flip: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> None:
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard}")
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        m = torch.tensor(mean).view(1, -1, 1, 1)
        s = torch.tensor(std).view(1, -1, 1, 1)
        self.images = ((x - m) / s).to(device)
        self.labels = labels.long().to(device)
        self.batch_size, self.shuffle, self.pad, self.flip = batch_size, shuffle, pad, flip
        self.drop_last = drop_last
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.shard = tuple(shard) if shard is not None and shard[1] > 1 else None

    def __len__(self) -> int:
        n = self.num_local()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def num_local(self) -> int:
        """Samples per epoch in this process's shard (the whole split without sharding)."""
        n = len(self.labels)
        if self.shard is None:
            return n
        rank, world = self.shard
        return len(range(rank, -(-n // world) * world if self.shuffle else n, world))

    def shard_order(self, order: torch.Tensor) -> torch.Tensor:
        """This process's positions of an epoch's ``order`` (all of it without sharding)."""
        if self.shard is None:
            return order
        rank, world = self.shard
        n = len(order)
        if self.shuffle and n % world:
            total = -(-n // world) * world
            order = order.repeat(-(-total // n))[:total]
        return order[rank::world]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = self.shard_order(order).to(self.images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x, y = self.images[idx], self.labels[idx]
            yield self.augment(x), y

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop after zero padding by ``pad`` (in normalised space, i.e. padded with the
        normalised zero) and random horizontal flip, drawn per sample (for a shard: drawn for the
        global batch of ``world * b`` samples, of which this rank's are every world-th)."""
        b, _, h, w = x.shape
        rank, world = self.shard if self.shard is not None else (0, 1)
        n = b * world
        if self.pad:
            p = self.pad
            xp = torch.nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=self.generator)[rank::world].to(x.device)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=self.generator)[rank::world].to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            bi = torch.arange(b, device=x.device)[:, None, None, None]
            ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = xp[bi, ci, rows, cols]
        if self.flip:
            mask = (torch.rand(n, generator=self.generator)[rank::world] < 0.5).to(x.device)
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x


# --------------------------------------------------------------------------- readers
def _read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) into a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: truncated IDX file ({arr.size} of {int(np.prod(dims))} values)")
    return torch.from_numpy(arr.reshape(dims).copy())


def _find_idx(root: Path, stem: str) -> Path | None:
    for d in (root, root / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (d / name).is_file():
                return d / name
    return None


def fashion_mnist_root(root: str | None) -> Path | None:
    """The first folder holding the four Fashion-MNIST files: ``root``, ``$SVDBENCH_DATA``,
    Debian's ``/usr/share/datasets/fashion-mnist``, ``./data``."""
    candidates = [root] if root else [os.environ.get("SVDBENCH_DATA"), FASHION_SYSTEM_DIR, "data"]
    for c in candidates:
        if c and all(_find_idx(Path(c), s) for s in FASHION_FILES.values()):
            return Path(c)
    return None


def load_fashion_mnist(root: str | None, download: bool) -> tuple[torch.Tensor, ...]:
    found = fashion_mnist_root(root)
    if found is None and download:
        import torchvision

        target = root or "data"
        log.info("downloading Fashion-MNIST to %s", target)
        try:
            torchvision.datasets.FashionMNIST(target, train=True, download=True)
            torchvision.datasets.FashionMNIST(target, train=False, download=True)
        except Exception as err:  # network errors come in many types
            raise DatasetError(f"Fashion-MNIST not found and download failed: {one_line(err).rstrip(':')}") from None
        found = fashion_mnist_root(target)
    if found is None:
        where = root or f"$SVDBENCH_DATA, {FASHION_SYSTEM_DIR} or ./data"
        raise DatasetError(f"Fashion-MNIST files not found in {where} (set dataset.root, or dataset.download=true)")
    t = {k: _read_idx(_find_idx(found, s)) for k, s in FASHION_FILES.items()}
    return (t["train_images"].unsqueeze(1), t["train_labels"], t["test_images"].unsqueeze(1), t["test_labels"])


CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def load_cifar(name: str, root: str | None, download: bool) -> tuple[torch.Tensor, ...]:
    """Read the python-pickle CIFAR batches under ``root`` (torchvision's layout); download them
    with torchvision when missing and ``download`` is true."""
    folder, train_files, test_files, label_key = CIFAR_LAYOUT[name]
    base = Path(root or "data")
    if not (base / folder).is_dir() and download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        try:
            cls(str(base), train=True, download=True)
        except Exception as err:
            raise DatasetError(f"{name} not found in {base} and download failed: {one_line(err).rstrip(':')}") from None
    if not (base / folder).is_dir():
        raise DatasetError(f"{name} not found: expected {base / folder} (set dataset.root, or dataset.download=true)")

    def read(files):
        xs, ys = [], []
        for f in files:
            try:
                with open(base / folder / f, "rb") as fh:
                    d = pickle.load(fh, encoding="bytes")
            except (OSError, pickle.UnpicklingError, EOFError) as err:
                raise DatasetError(f"cannot read {base / folder / f}: {err}") from None
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[label_key], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    return (*read(train_files), *read(test_files))


def make_synthetic(
    num_train: int, num_test: int, shape: Iterable[int], num_classes: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """A learnable toy task: each class is a fixed random pattern plus Gaussian noise, as uint8."""
    shape = tuple(shape)
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand((num_classes, *shape), generator=g)

    def draw(n):
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = protos[y] + 0.35 * torch.randn((n, *shape), generator=g)
        return (x.clamp(0, 1) * 255).to(torch.uint8), y

    return (*draw(num_train), *draw(num_test))


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


class _LoaderBatches:
    def __init__(self, loader, device, shard=None):
        self.loader, self.device, self.shard = loader, device, shard
        self.epoch = 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new permutation per pass, the same on every rank
            sampler.set_epoch(self.epoch)
            self.epoch += 1
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class _EvalShard(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, ...`` of ``n``: disjoint, covering, no padding."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


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
            test_ds, eval_batch_size, sampler=_EvalShard(len(test_ds), rank, world), num_workers=num_workers
        )
    else:
        shard = None
        train = DataLoader(train_ds, batch_size, shuffle=True, num_workers=num_workers, generator=g, drop_last=False)
        test = DataLoader(test_ds, eval_batch_size, num_workers=num_workers)
    return DataBundle(
        "imagenet",
        _LoaderBatches(train, "cpu", shard),
        _LoaderBatches(test, "cpu", shard),
        (3, image_size, image_size),
        classes,
        len(train_ds),
        len(test_ds),
    )
