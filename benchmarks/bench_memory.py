"""Peak resident memory (RSS) of a `run.py` run, measured from outside.

`run.py` runs as a child process (in a temporary run directory); its peak RSS is the child's
``ru_maxrss`` (``resource.getrusage(RUSAGE_CHILDREN)``, the largest resident set any waited-for
child reached, in KiB on Linux). The run's own results.json gives what it did.

    .venv/bin/python benchmarks/bench_memory.py --quick     # trainer.epochs=1 method.finetune_epochs=0
                                                           # dataset.train_subset=5000 (about 1 minute)
    .venv/bin/python benchmarks/bench_memory.py --set trainer.epochs=1 method.finetune_epochs=0
    .venv/bin/python benchmarks/bench_memory.py             # the default run as `make demo` runs it (minutes)

Every override used is recorded beside the figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine, table, write_result

QUICK = ["trainer.epochs=1", "method.finetune_epochs=0", "dataset.train_subset=5000"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"add the overrides {' '.join(QUICK)}")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="further Hydra overrides")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", default="memory")
    args = ap.parse_args(argv)
    info = machine()
    overrides = (QUICK if args.quick else []) + list(args.set) + ["trainer.progress=false"]
    with tempfile.TemporaryDirectory(prefix="svdbench-mem-") as tmp:
        cmd = [sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={tmp}/run"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - t
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"run.py exited with {proc.returncode}")
        res_path = Path(tmp) / "run" / "results.json"
        res = json.loads(res_path.read_text()) if res_path.is_file() else {}
    if before > peak_kib:  # an earlier child was bigger: the figure would not be this run's
        print(f"warning: an earlier child process reached {before} KiB", file=sys.stderr)
    peak_mib = peak_kib / 1024
    run = {k: res.get(k) for k in ("status", "top1", "macs", "macs_dense", "speedup", "params", "device")}
    run["wall_time_total_s"] = res.get("wall_time", {}).get("total")
    lat = res.get("latency") or {}
    run["latency_speedup"] = {k: v.get("speedup") for k, v in lat.get("runs", {}).items()}
    print(table(["run", "overrides", "peak RSS MiB", "wall s", "top1", "status"],
                [["run.py", " ".join(overrides), peak_mib, wall, run.get("top1"), run.get("status")]]))  # fmt: skip
    record = {
        "benchmark": "memory",
        "settings": {**vars(args), "overrides": overrides, "command": " ".join(Path(c).name if i == 0 else c
                                                                             for i, c in enumerate(cmd))},
        "machine": info,
        "peak_rss_mib": peak_mib,
        "peak_rss_kib": peak_kib,
        "wall_s": wall,
        "run": run,
    }  # fmt: skip
    print("wrote", write_result(args.out, record))
    return record


if __name__ == "__main__":
    main()
