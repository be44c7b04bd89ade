"""Batches of a loaded split: the :class:`Batches` protocol, the :class:`DataBundle` a dataset
loads into, in-memory :class:`TensorBatches` (batched augmentation on the training device) and the
DataLoader wrapper with its evaluation-shard sampler (datasets read through torch ``Dataset``s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import torch

from ..errors import DatasetError, data_worker_died, one_line


class Batches(Protocol):
    """Re-iterable ``(images B x C x H x W float, labels B int64)`` batches, one pass per epoch."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


@dataclass
class DataBundle:
    """A loaded dataset: its batched splits, input shape ``(C, H, W)``, class count and the sizes
    of the training, test and validation splits (after subsetting, before sharding)."""

    name: str
    train: Batches
    test: Batches
    input_shape: tuple[int, int, int]
    num_classes: int
    num_train: int
    num_test: int
    val: Batches | None = None  # the validation split (held out of training), if there is one
    num_val: int = 0
    dropped_per_epoch: int = 0  # training samples left out of each epoch: a last batch of one sample


class TensorBatches:
    """Mini-batches of an in-memory split: ``images`` N x C x H x W (uint8 0..255, or float in
    [0, 1]) and ``labels`` N (int64).

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
        images = images.detach()  # a tensor that requires grad: no graph through the normalisation below
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


class LoaderBatches:
    """A DataLoader's batches moved to ``device``; a ``DistributedSampler`` gets a new epoch per pass. A batch that
    cannot be read (a sample of another shape, a ``__getitem__`` that fails past the first sample) is a
    DatasetError in one line naming ``what`` (the dataset and split)."""

    def __init__(self, loader, device, shard=None, what: str = "the dataset"):
        self.loader, self.device, self.shard, self.what = loader, device, shard, what
        self.epoch = 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new permutation per pass, the same on every rank
            sampler.set_epoch(self.epoch)
            self.epoch += 1
        batches = iter(self.loader)
        while True:
            try:
                x, y = next(batches)
            except StopIteration:
                return
            except DatasetError:
                raise
            except Exception as err:  # the user's Dataset: its error in one line, not the DataLoader's traceback
                if data_worker_died(err):  # not the data's fault: the run fails (exit 1), as wherever torch sees it
                    raise
                raise DatasetError(
                    f"{self.what}: a batch could not be read ({one_line(err, with_type=True)})"
                ) from None
            if not (torch.is_tensor(x) and x.dtype.is_floating_point) or not bool(torch.isfinite(x).all()):
                what = "hold NaN or infinite values" if torch.is_tensor(x) and x.dtype.is_floating_point else (
                    f"are of type {getattr(x, 'dtype', type(x).__name__)}, not floats")  # fmt: skip
                raise DatasetError(f"{self.what}: a batch's images {what}")
            yield x.float().to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class EvalShard(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, ...`` of ``n``: disjoint, covering, no padding."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))
