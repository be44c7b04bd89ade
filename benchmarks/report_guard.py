"""Refactoring guard for the report: a miniature study's results, and its reports compared file for file.

    python benchmarks/report_guard.py make RESULTS            # train the miniature study into RESULTS (about 5 min)
    python benchmarks/report_guard.py report RESULTS OUT      # write its reports into OUT/<variant>/
    python benchmarks/report_guard.py compare OLD NEW         # every table (md, csv, tex, json) byte for byte

The miniature study is the real one (docs/results.md) on the tiny configuration (conf/debug/tiny.yaml,
with a validation split): a dense model per seed (0, 1), then from it with one budget SVD training
(channel and spatial, with an energy sweep, and spatial with ranks rounded to 8), post-hoc SVD, TRP,
L1-norm, SFP and FPGM, each at two operating points, one run at an absurd learning rate (a row far
below dense), a failed run (a copy of one recorded as failed) and, after ``make``, latency from
``svdbench latency --onnx``. Its results
are made once, by the code before a refactor, and kept: the reports the code after the refactor writes
from the same files must equal the reports written before (``compare`` ignores the plots, whose SVG
carries a date). Exit code 1 when a table differs.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

from tiny_guard import preset_overrides

ROOT = Path(__file__).resolve().parents[1]
#: the tiny configuration (conf/debug/tiny.yaml) with 32 training images held out for validation and the
#: models saved (for ``svdbench latency``); every sweep below sets its own epochs and budget
TINY = preset_overrides(
    without=("trainer.epochs", "method.finetune_epochs"), changes={"dataset.val_size": 32, "save_model": True}
)
SEEDS = "seed=0,1"


def budget(results: Path) -> list[str]:
    return [f"init_from={results}/dense/seed${{seed}}", "trainer.epochs=1", "trainer.budget=2"]


def sweeps(results: Path) -> list[list[str]]:
    """The multiruns of the miniature study, in order (the dense starts first)."""
    b = budget(results)
    sub = "hydra.sweep.subdir=${hydra.job.num}_seed${seed}"
    return [
        ["method=dense", "trainer.epochs=2", SEEDS, f"hydra.sweep.dir={results}/dense",
         "hydra.sweep.subdir=seed${seed}"],
        ["method=svd", *b, "method.decomposition=channel,spatial", "method.energy=0.05", "method.energies=[0.3]",
         SEEDS, f"hydra.sweep.dir={results}/svd", sub],
        ["method=svd", *b, "method.decomposition=spatial", "method.round_to=8", "method.energy=0.05", SEEDS,
         f"hydra.sweep.dir={results}/svd_round8", sub],
        ["method=svd_posthoc", *b, "method.energy=0.2,0.4", SEEDS, f"hydra.sweep.dir={results}/posthoc", sub],
        ["method=trp", *b, "method.energy_kept=0.9,0.99", SEEDS, f"hydra.sweep.dir={results}/trp", sub],
        ["method=l1_filter,sfp,fpgm", *b, "method.speedup=1.5,2.0", SEEDS, f"hydra.sweep.dir={results}/filter", sub],
        ["method=dense", "trainer.epochs=1", "trainer.lr=1e12", "seed=0", f"hydra.sweep.dir={results}/big_lr", sub],
    ]  # fmt: skip


def svdbench(*args: str) -> None:
    exe = Path(sys.executable).parent / "svdbench"
    subprocess.run([str(exe), *args], check=True, cwd=ROOT)


def make(results: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    for args in sweeps(results):
        proc = subprocess.run([sys.executable, "run.py", "-m", *TINY, *args], cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"failed: {' '.join(args)}")
    failed = json.loads((results / "big_lr" / "0_seed0" / "results.json").read_text())
    failed.update(status="failed", error="DivergedError: loss became nan in stage 'train', epoch 1")
    (results / "failed").mkdir()
    (results / "failed" / "results.json").write_text(json.dumps(failed, indent=2))
    svdbench("latency", str(results), "--onnx", "--threads", "1", "--batch-sizes", "1", "8", "--max-seconds", "0.05")


#: the report variants: name -> svdbench report arguments after the results directory
VARIANTS = {
    "macs": ["--split", "method.decomposition", "method.round_to"],
    "macs_test": ["--select", "test"],
    "latency": ["--split", "method.decomposition", "method.round_to", "--x", "latency", "--runtime",
                "onnxruntime/cpu", "--batch", "8"],
}  # fmt: skip


def report(results: Path, out: Path) -> None:
    for name, args in VARIANTS.items():
        svdbench("report", str(results), "--out", str(out / name), *args)


def compare(old: Path, new: Path) -> int:
    tables = sorted(p.relative_to(old) for p in old.rglob("*") if p.suffix in (".md", ".csv", ".tex", ".json"))
    missing = [str(p) for p in tables if not (new / p).is_file()]
    extra = sorted(str(p.relative_to(new)) for p in new.rglob("*") if p.suffix in (".md", ".csv", ".tex", ".json")
                   and not (old / p.relative_to(new)).is_file())  # fmt: skip
    differ = [str(p) for p in tables if (new / p).is_file() and not filecmp.cmp(old / p, new / p, shallow=False)]
    for what, names in (("missing", missing), ("extra", extra), ("different", differ)):
        for n in names:
            print(f"{what}: {n}")
    same = not (missing or extra or differ)
    print(f"identical ({len(tables)} tables)" if same else "reports differ")
    return 0 if same else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("make").add_argument("results", type=Path)
    p = sub.add_parser("report")
    p.add_argument("results", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.results.resolve())
    elif args.cmd == "report":
        report(args.results.resolve(), args.out)
    else:
        return compare(args.old, args.new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
