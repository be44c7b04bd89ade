"""The dense start's validation curve: how converged the model every method starts from is.

    python benchmarks/dense_curve.py outputs/study/dense --png docs/results_dense_curve.png

Reads the ``results.json`` of each dense run under the directory (one per seed, trained with
``trainer.epoch_eval=[val]`` so every epoch has a validation top-1), plots validation top-1 against the
epoch (one line per seed) and prints, per seed, the last epochs' values and the convergence figures
docs/results.md states: the largest change between consecutive epochs over the last ``--last`` epochs,
and the mean of those epochs against the mean of the ``--last`` before them. The binomial standard
error of a top-1 on the validation split, sqrt(p (1 - p) / n), is printed beside them: a change below it
is inside the split's sampling noise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def curves(directory: Path) -> dict[str, list[float]]:
    """Run name (its directory) -> validation top-1 (%) per training epoch, in epoch order."""
    out = {}
    for path in sorted(directory.rglob("results.json")):
        rec = json.loads(path.read_text())
        if rec.get("status") != "completed":
            continue
        epochs = sorted((h for h in rec.get("history", []) if h.get("stage") == "train"), key=lambda h: h["epoch"])
        values = [h["val_top1"] for h in epochs if h.get("val_top1") is not None]
        if values:
            out[path.parent.name] = values
    return out


def convergence(values: list[float], last: int) -> tuple[float, float]:
    """(largest |change| between consecutive epochs among the last ``last``, mean of the last ``last``
    minus the mean of the ``last`` before them), in points."""
    tail = values[-last:]
    steps = max(abs(b - a) for a, b in zip(values[-last - 1 : -1], tail, strict=True))
    before = values[-2 * last : -last]
    return steps, sum(tail) / len(tail) - sum(before) / len(before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="the dense runs (e.g. outputs/study/dense)")
    parser.add_argument("--png", type=Path, help="write the plot here")
    parser.add_argument("--last", type=int, default=3, help="the epochs the criterion looks at (default 3)")
    parser.add_argument("--val-size", type=int, default=5000, help="validation images (default 5000)")
    args = parser.parse_args(argv)
    found = curves(args.directory)
    if not found or any(len(v) < 2 * args.last + 1 for v in found.values()):
        print(f"error: no dense run with {2 * args.last + 1}+ validated epochs under {args.directory}", file=sys.stderr)
        return 1
    n = args.last
    print(f"| run | epochs | val top-1, last {n + 1} epochs | largest step | last {n} vs the {n} before | std. error |")
    print("|---|--:|---|--:|--:|--:|")
    for name, values in found.items():
        steps, drift = convergence(values, args.last)
        p = values[-1] / 100
        se = 100 * math.sqrt(p * (1 - p) / args.val_size)
        tail = ", ".join(f"{v:.2f}" for v in values[-args.last - 1 :])
        print(f"| {name} | {len(values)} | {tail} | {steps:.2f} | {drift:+.2f} | {se:.2f} |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6))
        for name, values in found.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation top-1 (%)")
        ax.set_ylim(max(min(min(v) for v in found.values()), max(max(v) for v in found.values()) - 8), None)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"plot: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
