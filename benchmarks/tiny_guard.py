"""Refactoring guard: the tiny configuration's results for every method and both decompositions.

    python benchmarks/tiny_guard.py OUT.json            # record
    python benchmarks/tiny_guard.py OUT.json --against BEFORE.json   # record and compare bit for bit

Each case runs ``run.py`` (the command line users run) on synthetic 3x16x16 data, ResNet-8, one
training and one fine-tuning epoch, and keeps what a refactor must not change: top-1 after every
stage, MACs, parameters, ranks, the per-epoch history (losses, accuracies, lr) and, for an energy
sweep, every point. Exit code 1 when ``--against`` finds a difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "dataset=synthetic", "dataset.shape=[3,16,16]", "dataset.num_train=128", "dataset.num_test=64", "model=resnet8",
    "trainer.epochs=1", "trainer.batch_size=32", "trainer.progress=false", "trainer.bn_recalibration_batches=2",
    "method.finetune_epochs=1", "save_model=false", "measure.latency=false",
]  # fmt: skip
CASES = {
    "dense": ["method=dense"],
    "svd_channel": ["method=svd", "method.decomposition=channel", "method.energy=0.3"],
    "svd_spatial": ["method=svd", "method.decomposition=spatial", "method.energy=0.3"],
    "svd_channel_l1_threshold": ["method=svd", "regularizer=l1", "method.energy=null", "method.threshold=0.5"],
    "svd_energies": ["method=svd", "method.energy=0.05", "method.energies=[0.2,0.4]"],
    "svd_posthoc_channel": ["method=svd_posthoc", "method.decomposition=channel"],
    "svd_posthoc_spatial": ["method=svd_posthoc", "method.decomposition=spatial"],
    "trp_channel": ["method=trp", "method.decomposition=channel"],
    "trp_spatial": ["method=trp", "method.decomposition=spatial", "method.period=2"],
    "l1_filter": ["method=l1_filter"],
    "sfp": ["method=sfp", "method.ratio=0.3"],
    "fpgm": ["method=fpgm"],
}
KEEP = ("status", "method", "top1", "macs", "macs_total", "params", "macs_dense", "params_dense", "stage_top1",
        "ranks", "history")  # fmt: skip
DETAILS = ("ranks_before", "ranks_after", "ranks_train", "channels_after", "ratio_used", "truncations", "soft_epochs")


def essentials(res: dict) -> dict:
    out = {k: res.get(k) for k in KEEP}
    out["details"] = {k: v for k, v in (res.get("method_details") or {}).items() if k in DETAILS}
    return out


def run_case(name: str, overrides: list[str], tmp: Path) -> dict:
    out = tmp / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "run.py", *TINY, *overrides, f"hydra.run.dir={out}"], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    res = essentials(json.loads((out / "results.json").read_text()))
    points = sorted(out.glob("energy_*/results.json"))
    if points:
        res["points"] = {p.parent.name: essentials(json.loads(p.read_text())) for p in points}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--against", default=None)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        got = {}
        for name, ov in CASES.items():
            if args.only and name not in args.only:
                continue
            got[name] = run_case(name, ov, Path(tmp))
            print(f"{name}: top1 {got[name]['top1']:.4f}, MACs {got[name]['macs']}", flush=True)
    Path(args.out).write_text(json.dumps(got, indent=1, sort_keys=True))
    if args.against:
        ref = json.loads(Path(args.against).read_text())
        bad = [n for n in got if got[n] != ref.get(n)]
        for n in bad:
            print(f"DIFFERENT: {n}")
        print("identical" if not bad else f"{len(bad)} of {len(got)} differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
