"""Training throughput (images per second) of dense and SVD training, ResNet-8 and ResNet-20.

Batch 128 drawn from svdbench's in-memory data path (``TensorBatches`` with pad-crop and flip) on
random images: ResNet-8 on 1x28x28 (the Fashion-MNIST demo), ResNet-20 on 3x32x32 (CIFAR). SVD
training is the demo's: channel-wise, full rank during training, orthogonality 1.0, Hoyer 0.05.
Dense and SVD steps of the same model alternate one by one (``--pairs``); the table gives the
median step time and the images per second it implies.

    .venv/bin/python benchmarks/bench_throughput.py             # about 2-3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_throughput.py --models resnet8 --pairs 10
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import Trainer, build, machine, median, set_threads, table, write_result

SHAPES = {"resnet8": (1, 28, 28), "resnet20": (3, 32, 32)}


def endless(tb_factory):
    while True:
        yield from tb_factory()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet8", "resnet20"], choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=20, help="timed (dense, svd) step pairs per model")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="throughput")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    info = machine()
    from svdbench.data import TensorBatches

    results, rows = {}, []
    for name in args.models:
        shape = SHAPES[name]
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (2048, *shape), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 10, (2048,), generator=g)
        data = TensorBatches(x, y, args.batch, (0.5,) * shape[0], (0.5,) * shape[0], shuffle=True, pad=2,
                             flip=True, drop_last=True, generator=g)  # fmt: skip
        stream = endless(lambda data=data: iter(data))
        trainers = {}
        for kind in ("dense", "svd"):
            torch.manual_seed(0)
            net, meth = build(name, shape[0], kind, init="random")
            trainers[kind] = Trainer(net, meth, optimizer="adam", lr=2e-3)
        for t in trainers.values():
            for _ in range(args.warmup):
                t.step(*next(stream))
        secs = {"dense": [], "svd": []}
        for r in range(args.pairs):
            for kind in ("dense", "svd") if r % 2 == 0 else ("svd", "dense"):
                t0 = time.perf_counter()  # the batch (indexing + augmentation) counts too
                trainers[kind].step(*next(stream))
                secs[kind].append(time.perf_counter() - t0)
        ips = {k: args.batch / median(v) for k, v in secs.items()}
        results[name] = {
            "input": list(shape),
            "seconds_per_step": secs,
            "images_per_s": ips,
            "svd_over_dense_throughput": ips["svd"] / ips["dense"],
        }
        for kind in ("dense", "svd"):
            rows.append([name, kind, f"{shape[0]}x{shape[1]}x{shape[2]}", median(secs[kind]) * 1e3, ips[kind],
                         ips[kind] / ips["dense"]])  # fmt: skip
        print(f"{name}: dense {ips['dense']:.0f} img/s, svd {ips['svd']:.0f} img/s", flush=True)
    print()
    print(table(["model", "method", "input", "ms / step", "train images / s", "relative to dense"], rows))
    record = {
        "benchmark": "throughput",
        "settings": {**vars(args), "optimizer": "adam", "svd": "channel, init random, full rank, "
                     "orthogonality 1.0, hoyer 0.05", "data": "svdbench.data.TensorBatches, pad 2, flip"},
        "machine": info,
        "results": results,
    }  # fmt: skip
    print("wrote", write_result(args.out, record))
    return record


if __name__ == "__main__":
    main()
