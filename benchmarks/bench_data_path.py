"""Epoch time of svdbench's in-memory data path over torchvision's DataLoader path.

Both train the same ResNet-8 (dense, SGD, batch 128) for one epoch on Fashion-MNIST with the
same augmentation (2-pixel pad-crop, horizontal flip, normalisation):

- ``in-memory``: ``svdbench.data.load_dataset`` of ``fashion_mnist``: the split held as one
  normalised tensor, augmentation by batched tensor operations;
- ``dataloader-wN``: ``torchvision.datasets.FashionMNIST`` reading the same raw files with
  ``RandomCrop(28, padding=2)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` per sample
  (PIL), through a ``DataLoader`` with ``num_workers`` N (0 and 2 by default).

It reports the end-to-end epoch time (data + training step) and, separately, the data-only
time of one epoch (iterating the batches without the model): the first is what a run feels, the
second isolates the data path. Target: in-memory at least 3x faster end to end.

The training epochs of all paths run interleaved, batch by batch (path A's next batch and step,
then path B's, ...), each path with its own identically initialised model, and each path's time
is the sum of its own batch fetches and steps: load from other jobs then hits every path alike.
DataLoader workers keep preparing batches in the background while the other paths compute,
which, if anything, flatters the ``num_workers > 0`` paths.

    .venv/bin/python benchmarks/bench_data_path.py --subset 10000    # about 2-4 minutes on 2 cores
    .venv/bin/python benchmarks/bench_data_path.py                   # the full 60k training split

The Debian files in /usr/share/datasets/fashion-mnist are gzipped; torchvision expects
``root/FashionMNIST/raw/`` with the un-gzipped files: they are decompressed into a temporary
folder (``--root`` to read another folder holding the four ``*-ubyte.gz`` files).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
from _common import Trainer, build, machine, set_threads, table, write_result

TARGET = 3.0


def torchvision_root(src: Path, tmp: Path) -> Path:
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in sorted(src.glob("*-ubyte.gz")):
        with gzip.open(gz, "rb") as f_in, open(raw / gz.name[:-3], "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
    return tmp


def dataloader(root: Path, batch: int, workers: int, subset: int | None, seed: int = 0):
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets
    from torchvision import transforms as T

    from svdbench.data import STATS

    mean, std = STATS["fashion_mnist"]
    tf = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    ds = datasets.FashionMNIST(str(root), train=True, transform=tf, download=False)
    if subset:
        ds = Subset(ds, range(min(subset, len(ds))))
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch, shuffle=True, num_workers=workers, generator=g, persistent_workers=False)


def in_memory(root: Path, batch: int, subset: int | None):
    from svdbench.config import DatasetConfig
    from svdbench.data import load_dataset

    cfg = DatasetConfig(name="fashion_mnist", root=str(root), download=False, train_subset=subset, augment=True)
    return load_dataset(cfg, batch_size=batch, eval_batch_size=512).train


def data_only(batches, passes: int = 3) -> tuple[float, int]:
    """The fastest of ``passes`` full passes over the batches (the first also warms caches; on a
    loaded machine the fastest pass is the one least disturbed by other jobs)."""
    best, n = float("inf"), 0
    for _ in range(passes):
        t, n = time.perf_counter(), 0
        for x, _ in batches:
            n += x.shape[0]
        best = min(best, time.perf_counter() - t)
    return best, n


def train_epochs_interleaved(paths: dict, trainers: dict) -> dict[str, tuple[float, int]]:
    """One epoch per path, interleaved batch by batch; per path (seconds, samples)."""
    its = {name: iter(batches) for name, batches in paths.items()}
    spent = {name: [0.0, 0] for name in paths}
    while its:
        for name in list(its):
            t = time.perf_counter()
            try:
                x, y = next(its[name])
            except StopIteration:
                spent[name][0] += time.perf_counter() - t
                del its[name]
                continue
            trainers[name].step(x, y)
            spent[name][0] += time.perf_counter() - t
            spent[name][1] += x.shape[0]
    return {k: (v[0], v[1]) for k, v in spent.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subset", type=int, default=None, help="time on the first N training samples")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to compare")
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="folder with the *-ubyte.gz files")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="data_path")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    info = machine()
    src = Path(args.root)
    if not list(src.glob("*-ubyte.gz")):
        raise SystemExit(f"no Fashion-MNIST *-ubyte.gz files in {src} (use --root)")
    res: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="svdbench-fmnist-") as tmp:
        tv_root = torchvision_root(src, Path(tmp))
        t = time.perf_counter()
        mem = in_memory(src, args.batch, args.subset)
        setup_mem = time.perf_counter() - t
        paths = {"in-memory": (mem, setup_mem)}
        for w in args.workers:
            t = time.perf_counter()
            dl = dataloader(tv_root, args.batch, w, args.subset)
            paths[f"dataloader-w{w}"] = (dl, time.perf_counter() - t)
        # data-only passes first (the fastest of three: the first warms the page cache and the
        # workers' imports), then one training epoch per path with a fresh, identical model each
        for name, (batches, setup) in paths.items():
            secs, n = data_only(batches)
            res[name] = {"setup_s": setup, "data_only_s": secs, "samples": n}
            print(f"{name}: setup {setup:.2f} s, data only {secs:.2f} s", flush=True)
        trainers = {}
        for name in paths:
            torch.manual_seed(0)
            trainers[name] = Trainer(*build("resnet8", 1, "dense"))
        epochs = train_epochs_interleaved({k: v[0] for k, v in paths.items()}, trainers)
        for name, (secs, n) in epochs.items():
            res[name].update(epoch_s=secs, images_per_s=n / secs)
            print(f"{name}: epoch {secs:.2f} s ({n / secs:.0f} img/s)", flush=True)
    base = res["in-memory"]
    rows = []
    for name, r in res.items():
        r["epoch_over_in_memory"] = r["epoch_s"] / base["epoch_s"]
        r["data_only_over_in_memory"] = r["data_only_s"] / base["data_only_s"]
        rows.append([name, r["setup_s"], r["data_only_s"], r["epoch_s"], r["images_per_s"],
                     r["epoch_over_in_memory"], r["data_only_over_in_memory"]])  # fmt: skip
    print()
    print(table(["path", "setup s", "data-only epoch s", "train epoch s", "train img/s",
                 "epoch time / in-memory", "data-only time / in-memory"], rows))  # fmt: skip
    best_loader = min((r["epoch_s"] for k, r in res.items() if k != "in-memory"), default=None)
    speedup = best_loader / base["epoch_s"] if best_loader else None
    compute_share = None
    if speedup is not None:
        # the share of the in-memory epoch that is model compute (its data part is data_only_s)
        compute_share = max(0.0, 1 - base["data_only_s"] / base["epoch_s"])
        print(f"\nin-memory end to end {speedup:.2f}x faster than the best DataLoader setting "
              f"(target {TARGET}x: {'met' if speedup >= TARGET else 'NOT met'}); the model step is "
              f"{100 * compute_share:.1f}% of the in-memory epoch")  # fmt: skip
    record = {
        "benchmark": "data_path",
        "settings": {
            **vars(args),
            "model": "resnet8 (dense)",
            "optimizer": "sgd",
            "augmentation": "pad-crop 2, horizontal flip, normalise",
        },  # fmt: skip
        "machine": info,
        "results": res,
        "end_to_end_speedup_vs_best_dataloader": speedup,
        "in_memory_compute_share": compute_share,
        "target": TARGET,
        "target_met": bool(speedup is not None and speedup >= TARGET),
    }
    print("wrote", write_result(args.out, record))
    return record


if __name__ == "__main__":
    main()
