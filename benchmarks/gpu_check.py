"""The CUDA paths in one prepared run: bf16 and fp16 AMP (fp16 with GradScaler), channels_last,
torch.compile, DDP (2 processes on nccl where the machine has 2 GPUs, else 1), CUDA latency, and a
CIFAR-shaped ResNet-20 epoch with the data on the GPU. Each check is a ``run.py`` job on generated
CIFAR-shaped data (3x32x32, 10 classes); the figures go to one JSON.

    bash benchmarks/gpu_check.sh                 # on a CUDA machine: under 8 minutes on one H100/H200
    bash benchmarks/gpu_check.sh --dry-run       # the same checks on the CPU, tiny, in seconds (CI)

A check that fails is recorded with its reason (the others still run); exit code 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from _common import ROOT, machine, write_result

#: name -> run.py overrides of the check (beside the common ones)
CHECKS = {
    "amp_bf16": ["trainer.amp=bf16", "trainer.channels_last=false"],
    "amp_fp16_gradscaler": ["trainer.amp=fp16", "trainer.channels_last=false"],
    "channels_last": ["trainer.amp=off", "trainer.channels_last=true"],
    "compile": ["trainer.amp=bf16", "trainer.compile=true"],
    "latency": [
        "trainer.amp=bf16",
        "measure.latency=true",
        "measure.batch_sizes=[1,64]",
        "measure.max_seconds=1",
        "measure.compile=true",
    ],
    "epoch_resnet20": ["trainer.amp=bf16", "method=dense", "trainer.batch_size=128"],
}


#: the dry run's jobs run two at a time on a small CPU: one thread each
DRY_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def common(dry: bool) -> list[str]:
    n_train = 64 if dry else 50_000  # one CIFAR-10 epoch of generated images, held in GPU memory
    shape, model = ("[3,16,16]", "resnet8") if dry else ("[3,32,32]", "resnet20")  # the dry run: the paths only
    return [
        "dataset=synthetic", f"dataset.shape={shape}", "dataset.num_classes=10", f"dataset.num_train={n_train}",
        f"dataset.num_test={32 if dry else 10_000}", f"model={model}", "trainer.epochs=1", "method.finetune_epochs=0",
        "trainer.progress=false", f"trainer.device={'cpu' if dry else 'cuda'}", "save_model=false",
        "measure.latency=false", f"trainer.batch_size={16 if dry else 128}", "trainer.bn_recalibration_batches=2",
    ]  # fmt: skip


def run_check(name: str, overrides: list[str], out: Path, dry: bool, nproc: int = 1, timeout: float = 240) -> dict:
    """One run.py job (under torchrun with ``nproc`` > 1): its status, wall time and key figures."""
    run_dir = out / name
    if dry:  # the CPU runs what it can: no AMP (bf16/fp16 autocast is CUDA's here), no compile
        overrides = [o for o in overrides if not o.startswith(("trainer.amp=", "trainer.compile=", "measure.compile="))]
        overrides = [*overrides, "trainer.amp=off", "measure.max_seconds=0.05"]
    args = [*common(dry), *overrides, f"hydra.run.dir={run_dir}"]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(ROOT / "run.py"), *args]  # fmt: skip
    else:
        cmd = [sys.executable, str(ROOT / "run.py"), *args]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "WANDB_MODE": "disabled", **(DRY_ENV if dry else {})})  # fmt: skip
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        code, err = 124, f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - t
    figures: dict = {"status": "passed" if code == 0 else "failed", "exit_code": code, "wall_s": round(wall, 2),
                     "overrides": overrides, "nproc": nproc}  # fmt: skip
    res_file = run_dir / "results.json"
    if res_file.is_file():
        res = json.loads(res_file.read_text())
        figures.update({k: res.get(k) for k in ("top1", "accel", "device", "world_size")})
        figures["train_epoch_s"] = (res.get("wall_time") or {}).get("train")
        runs = (res.get("latency") or {}).get("runs", {})
        figures["latency"] = {
            key: {"speedup": v.get("speedup"), "deployed_ms": {b: d["median_ms"] for b, d in v["deployed"].items()}}
            for key, v in runs.items()
        }
    if code != 0:
        figures["error"] = " ".join(err.strip().splitlines()[-1:])[:400] if err.strip() else f"exit {code}"
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="run every check on the CPU, tiny (CI)")
    parser.add_argument("--out", default="gpu_check", help="name of the JSON in benchmarks/results/")
    args = parser.parse_args()
    gpus = torch.cuda.device_count()
    if not args.dry_run and gpus == 0:
        print("error: no CUDA device (use --dry-run for the CPU version)", file=sys.stderr)
        return 2
    record: dict = {"dry_run": args.dry_run, "machine": machine(), "gpus": gpus, "checks": {}}
    if gpus:
        record["gpu_name"] = torch.cuda.get_device_name(0)
    nproc = 2 if (gpus >= 2 or args.dry_run) else 1  # the CPU dry run tries 2 processes on gloo
    jobs = [(name, overrides, 1) for name, overrides in CHECKS.items()] + [("ddp", ["trainer.amp=bf16"], nproc)]
    with tempfile.TemporaryDirectory(prefix="svdbench-gpu-check-") as tmp:
        # on the GPU one check at a time (their times are figures); the dry run two at a time (CI has 2 cores)
        with ThreadPoolExecutor(max_workers=2 if args.dry_run else 1) as pool:
            futures = {n: pool.submit(run_check, n, o, Path(tmp), args.dry_run, nproc=k) for n, o, k in jobs}
            for name, future in futures.items():
                record["checks"][name] = c = future.result()
                print(f"{name} ({c['nproc']} process(es)): {c['status']} ({c['wall_s']} s)", flush=True)
    if not args.dry_run:
        path = write_result(args.out, record)
    else:  # the dry run proves the script; its figures are not worth a file
        path = None
    failed = [n for n, c in record["checks"].items() if c["status"] != "passed"]
    print(json.dumps({n: {k: c.get(k) for k in ("status", "wall_s", "train_epoch_s", "error")}
                      for n, c in record["checks"].items()}, indent=1))  # fmt: skip
    if path:
        print(f"figures: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
