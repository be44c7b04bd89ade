"""``svdbench latency PATH...``: time the deployed models of finished runs, after the fact.

A run made with ``measure.latency=false`` (as sweeps often are, to keep training time for training)
still has its deployed model (``deployed.json`` and ``deployed.pt``, unless ``save_model=false``). This
command rebuilds it from that data (:func:`svdbench.deployed.load_deployed`: no code is unpickled), times
it and the dense model of the same architecture on this machine, in one runtime setting for every run,
and writes the figures into the run's ``results.json`` under ``latency`` (the same record the pipeline
writes; every other key is kept, the file is replaced atomically). The report's latency axis
(``svdbench report --x latency``) reads them::

    svdbench latency outputs/study --onnx --threads 1 --batch-sizes 1 64
    svdbench report outputs/study --x latency --runtime onnxruntime/cpu --batch 64

Each run directory is taken with the pipeline's lock (:class:`svdbench.rundir.RunLock`): a run another
process holds is skipped with a warning; under it, the temporary files a killed earlier write left there
are removed. An older run's ``model.pt`` is a pickled module, and a model named by ``model._target_`` is
code the file names: both are loaded only with ``--trust`` (for files you made), else the run is skipped
saying so. Runs that already hold latency are skipped unless ``--force`` (a record without figures of the
batch sizes, thread count or runtimes asked for is named, and the run counts as not timed);
a run without a model is named and skipped. Exit code 1 when some run could not be timed.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from torch import nn

from .checkpoint import remove_orphans
from .config import MAX_SECONDS, MAX_THREADS
from .deployed import ARCHITECTURE_FILE, TrustRequired, dense_model, load_deployed, read_document
from .errors import one_line
from .latency import COMPILED, RUNTIME, latency_report
from .models import build_from_config
from .onnx_export import RUNTIME as ONNX_RUNTIME
from .report.load import pending_points
from .results import RESULTS_FILE, RunRecord, find_results, read_results, write_json_atomic
from .rundir import LockBusy, RunLock
from .summary import speedups_text
from .timing import DEFAULT_MAX_SECONDS

__all__ = ["add_arguments", "run", "retime"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="run or multirun directories (searched recursively)")
    p.add_argument("--onnx", action="store_true", help="also export to ONNX and time in onnxruntime (CPU)")
    p.add_argument("--compile", action="store_true", help="also time both models after torch.compile")
    p.add_argument("--batch-sizes", type=_positive(int), nargs="+", default=[1, 64], metavar="B", help="default: 1 64")
    p.add_argument(
        "--threads", type=_threads, default=1, help=f"CPU threads while timing (default 1, at most {MAX_THREADS})"
    )
    p.add_argument(
        "--max-seconds", type=_positive(float), default=DEFAULT_MAX_SECONDS, help="timed part per model and batch"
    )
    p.add_argument("--force", action="store_true", help="time runs that already hold latency figures again")
    p.add_argument(
        "--trust",
        action="store_true",
        help="also load what can run code: an older run's pickled model.pt, a model._target_ (only files you made)",
    )


def _threads(text: str) -> int:
    """An argparse type: a thread count in [1, :data:`~svdbench.config.MAX_THREADS`]."""
    value = int(text)
    if not 1 <= value <= MAX_THREADS:
        raise ValueError(text)
    return value


_threads.__name__ = f"thread count in [1, {MAX_THREADS}]"


#: the largest value a numeric option takes (1e308 seconds would overflow a count of timed calls)
MAX_OPTION = MAX_SECONDS


def _positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a number > 0 and at most :data:`MAX_OPTION` of ``kind`` (argparse names the option in
    its error)."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if not math.isfinite(value) or value <= 0 or value > MAX_OPTION:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def dense_twin(run_dir: Path, results: dict, deployed: nn.Module, trust: bool = False) -> nn.Module:
    """The dense model of the run's architecture (latency does not depend on the weights): from
    ``deployed.json`` where the run has one, else (an older run) built from the recorded model config,
    with the deployed model's number of classes."""
    if os.path.lexists(run_dir / ARCHITECTURE_FILE):  # not a regular file: read_document says so
        return dense_model(read_document(run_dir), trust)
    linears = [m for m in deployed.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the deployed model has no nn.Linear classifier to read the class count from")
    model = (results.get("config") or {}).get("model") if isinstance(results.get("config"), dict) else None
    if not isinstance(model, dict):
        raise ValueError("results.json has no config.model to build the dense model from")
    return build_from_config(model, linears[-1].out_features, _input_shape(results)[0], weights=False)


def _input_shape(results: dict) -> list[int]:
    """The input size of one image, ``[C, H, W]``, from the record's ``input_shape`` (``[1, C, H, W]``);
    ValueError naming the field where it is absent or not a list of sizes."""
    shape = results.get("input_shape")
    if shape is None:
        raise ValueError("results.json has no input_shape")
    if not isinstance(shape, list) or len(shape) < 2 or not all(type(v) is int for v in shape):
        raise ValueError(f"results.json: input_shape must be a list of sizes ([1, C, H, W]), got {shape!r:.60}")
    return shape[1:]


def retime(path: Path, args: argparse.Namespace) -> str:
    """Time the run of ``path`` (a results.json) and record it, holding its directory's lock; returns
    what happened, in a few words (raises for a run that could not be timed)."""
    if path.name != RESULTS_FILE:
        raise ValueError(f"{path} is not a results.json: give a run directory or its results.json")
    if path.is_symlink():  # its record is another run's, and svdbench never writes through a link
        raise ValueError(f"{path.name} is a link ({os.readlink(path)}): svdbench never writes through a link")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(RunLock(path.parent, make=False))
        except FileNotFoundError:  # moved or removed since it was found: never made again
            return "skipped (its directory was moved or removed)"
        except LockBusy as err:  # another svdbench process (a run, another latency) writes this directory
            return f"skipped (in use by another svdbench process, pid {err.holder}: time it when that one has finished)"
        remove_orphans(path.parent)  # a killed earlier write's .results.json.*.tmp: no one else writes here now
        return _retime(path, args)


class NotAsTimed(ValueError):
    """A run already timed, but not with the settings asked for (other batch sizes, threads, runtimes)."""


def _not_timed(record: dict, args: argparse.Namespace) -> str:
    """What ``args`` asks for that the run's latency ``record`` has no figures of, in words ("" if none): batch
    sizes (of the eager run, where the record lists none), another thread count, onnxruntime, torch.compile."""
    runs = record.get("runs") if isinstance(record.get("runs"), dict) else {}
    eager = runs.get(f"{RUNTIME}/cpu")
    sizes = record.get("batch_sizes")
    if not isinstance(sizes, list):
        sizes = list((eager or {}).get("deployed") or {}) if isinstance(eager, dict) else []
    lacking = []
    missing = [b for b in args.batch_sizes if str(b) not in {str(s) for s in sizes}]
    if missing:
        lacking.append(f"at batch size {', '.join(map(str, missing))}")
    if record.get("threads") not in (None, args.threads):
        lacking.append(f"on {args.threads} thread(s) (it was timed on {record['threads']})")
    for asked, runtime, name in ((args.onnx, ONNX_RUNTIME, "onnxruntime"), (args.compile, COMPILED, "torch.compile")):
        if asked and f"{runtime}/cpu" not in runs:
            lacking.append(f"in {name}")
    return ", ".join(lacking)


def _retime(path: Path, args: argparse.Namespace) -> str:
    results = read_results(path)
    if results.get("status") != "completed":
        return f"skipped ({results.get('status')})"
    pending = pending_points(RunRecord.from_dict(results), path.parent)
    failed = [str(p.get("label")) for p in results.get("operating_points") or [] if isinstance(p, dict)
              and p.get("status") == "failed"]  # fmt: skip
    if pending or failed:  # the rerun that makes them rewrites results.json whole: a figure recorded now is lost
        what = f"pending: {', '.join(pending)}" if pending else f"failed: {', '.join(failed)}"
        return f"skipped (operating points {what}; rerun the run to make them, then time it)"
    if results.get("latency") and "error" not in results["latency"] and not args.force:
        lacking = _not_timed(results["latency"], args)
        if lacking:  # the record is of other settings: replaced only when asked to
            raise NotAsTimed(f"its latency record has no figures {lacking}; --force to time it again as asked, "
                             "replacing that record")  # fmt: skip
        return "skipped (has latency; --force to time again)"
    trust = args.trust
    deployed = load_deployed(path.parent, trust)
    shape = _input_shape(results)
    dense = dense_twin(path.parent, results, deployed, trust)
    results["latency"] = latency_report(
        deployed,
        dense,
        shape,
        devices=["cpu"],
        batch_sizes=args.batch_sizes,
        max_seconds=args.max_seconds,
        onnx=args.onnx,
        mac_speedup=results["macs_dense"] / max(results["macs"], 1),  # as the run records it, from checked counts
        threads=args.threads,
        compile=args.compile,
    )
    write_json_atomic(path, results)
    runs = results["latency"]["runs"]
    return "; ".join(f"{k}: {speedups_text(v)}" for k, v in runs.items())


def run(args: argparse.Namespace) -> int:
    paths = find_results(args.paths)
    if not paths:
        print(f"error: no results.json under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    failed = 0
    for i, path in enumerate(paths, 1):
        try:
            what = retime(path, args)
        except (TrustRequired, NotAsTimed) as err:  # never loaded, or timed otherwise: skipped, saying why and how
            failed += 1
            what = f"skipped: {one_line(err)}"
        except Exception as err:  # one bad run must not stop the others
            failed += 1
            what = f"not timed: {one_line(err)}"
        print(f"[{i}/{len(paths)}] {path.parent}: {what}", flush=True)
    return 1 if failed else 0
