"""SVD-training step time over dense step time (target: at most 1.15).

ResNet-20 decomposed channel-wise at full rank (init svd), orthogonality (lambda_o = 1) and Hoyer
(lambda_s = 0.05) regularisers on, batch 128 of 32x32x3, SGD, on the CPU. A step is forward,
loss + regulariser, backward and optimiser step. Dense and SVD steps alternate one by one
(``--pairs`` pairs, the order swapped every pair) so that load from other jobs hits both alike;
the headline is the ratio of the median step times, beside the ratio of the fastest steps and
the median of the per-pair ratios.

    .venv/bin/python benchmarks/bench_step_time.py                # about 1-2 minutes on 2 cores
    .venv/bin/python benchmarks/bench_step_time.py --pairs 40     # steadier on a busy machine
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from _common import Trainer, build, machine, median, set_threads, table, time_steps, write_result

TARGET = 1.15


def forward_modes(model, x) -> dict[str, str]:
    """Which forward each decomposed layer chooses for this input: ``rebuild`` (W = U diag(s) V^T,
    one convolution) or ``factors`` (two convolutions)."""
    from svdbench.lowrank import lowrank_layers

    modes, hooks = {}, []
    for name, layer in lowrank_layers(model).items():

        def hook(mod, inp, name=name):
            modes[name] = "factors" if mod.use_factors(inp[0]) else "rebuild"

        hooks.append(layer.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return modes


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=20, help="timed (dense, svd) step pairs")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default="step_time")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    info = machine()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    trainers = {}
    for kind in ("dense", "svd"):
        net, meth = build(args.model, 3, kind, init="svd")
        trainers[kind] = Trainer(net, meth)
    modes = forward_modes(trainers["svd"].model, x)
    for t in trainers.values():
        for _ in range(args.warmup):
            t.step(x, y)
    per_pair, times = [], {"dense": [], "svd": []}
    for r in range(args.pairs):
        order = ("dense", "svd") if r % 2 == 0 else ("svd", "dense")
        got = {k: time_steps(lambda k=k: trainers[k].step(x, y), 1) for k in order}
        for k, v in got.items():
            times[k].append(v)
        per_pair.append(got["svd"] / got["dense"])
    ratio = median(times["svd"]) / median(times["dense"])
    ratio_min = min(times["svd"]) / min(times["dense"])
    rows = [
        ["dense", median(times["dense"]) * 1e3, min(times["dense"]) * 1e3, args.batch / median(times["dense"]), 1.0],
        ["svd (full rank)", median(times["svd"]) * 1e3, min(times["svd"]) * 1e3, args.batch / median(times["svd"]),
         ratio],
    ]  # fmt: skip
    print(table(["model", "ms / step (median)", "ms / step (fastest)", "images / s", "median step time / dense"],
                rows))  # fmt: skip
    print(f"\nratio of the fastest steps {ratio_min:.3f}; median of per-pair ratios {median(per_pair):.3f}")
    counts = Counter(modes.values())
    print(f"\nforward modes chosen: {dict(counts)}; SVD/dense step-time ratio {ratio:.3f} "
          f"(target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")  # fmt: skip
    record = {
        "benchmark": "step_time",
        "settings": {
            **vars(args),
            "decomposition": "channel",
            "init": "svd",
            "orthogonality": 1.0,
            "regularizer": "hoyer",
            "regularizer_weight": 0.05,
            "optimizer": "sgd",
            "input": [3, 32, 32],
        },  # fmt: skip
        "machine": info,
        "ms_per_step": {k: [t * 1e3 for t in v] for k, v in times.items()},
        "ratio": ratio,
        "ratio_fastest": ratio_min,
        "ratio_per_pair_median": median(per_pair),
        "target": TARGET,
        "target_met": ratio <= TARGET,
        "forward_modes": modes,
        "forward_mode_counts": dict(counts),
    }
    print("wrote", write_result(args.out, record))
    return record


if __name__ == "__main__":
    main()
