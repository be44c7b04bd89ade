"""Comparison tables, Pareto fronts and a plot from the results.json files of runs and sweeps.

``svdbench report PATH... [--out DIR] [--split KEY...] [--select val|test] [--x macs|latency] [--reference METHOD]
[--runtime R] [--batch B] [--wandb]``
(the command's arguments and what it prints; :func:`svdbench.report.build_report` does the work).
"""

from __future__ import annotations

import argparse
import sys

from .. import tracking
from ..axes import MACS, MACS_PAPER, latency_axis
from ..errors import one_line, printable
from .build import NoResults, NotWritten, build_report, report_tables


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="run or multirun directories (searched recursively)")
    p.add_argument("--out", default=None, help="output directory (default: <first PATH>/report)")
    p.add_argument(
        "--split",
        nargs="+",
        default=[],
        metavar="KEY",
        help="config keys whose values make separate methods, e.g. --split method.decomposition",
    )
    p.add_argument(
        "--select",
        default="val",
        choices=("val", "test"),
        help="compute fronts and front quality on validation top-1 (when every run has one; default) or test",
    )
    p.add_argument(
        "--x",
        default="macs",
        choices=("macs", "macs_paper", "latency"),
        help="cost axis of fronts, tables and plot: counted MACs (default), MACs in the SVD authors' convention "
        "(conv layers only, every decomposed conv as its pair: for comparison with published speed-ups) or "
        "measured latency",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="METHOD",
        help="paired verdicts of every method against this one (its name as the report shows it, e.g. "
        "'svd (spatial)' with --split); default: every pair",
    )
    p.add_argument(
        "--runtime",
        default="onnxruntime/cpu",
        help="the recorded runtime/device of the latency axis (--x latency) and of the matched table's realized "
        "speed-up (default onnxruntime/cpu)",
    )
    p.add_argument("--batch", type=int, default=64, help="the batch size of those latency figures (default 64)")
    p.add_argument("--wandb", action="store_true", help="also log the table and the Pareto scatter to W&B")
    p.add_argument("--project", default="svdbench", help="W&B project (with --wandb)")
    p.add_argument("--entity", default=None, help="W&B entity (with --wandb)")
    p.add_argument(
        "--mode",
        default=None,
        choices=("offline", "online", "disabled"),
        help="W&B mode (with --wandb; default: $WANDB_MODE, else offline)",
    )


def run(args: argparse.Namespace) -> int:
    """``svdbench report``: 0 when written, 1 when nothing was found or the report could not be written (a full
    disk), or W&B refused what ``--wandb`` logs, 2 for a bad argument or path."""
    if not args.paths:  # a list option before them (--split) takes every word after it
        took = f": --split took {' '.join(args.split[1:])!r} as keys too; give the paths first, or end --split's " \
               "keys with --" if len(args.split) > 1 else ""  # fmt: skip
        print(f"error: no PATH (a run or sweep directory) given{took}", file=sys.stderr)
        return 2
    given = [f"--{k}" for k, default in (("project", "svdbench"), ("entity", None), ("mode", None))
             if getattr(args, k) != default]  # fmt: skip
    if given and not args.wandb:  # W&B's settings without W&B: said, never ignored
        print(f"error: {given[0]} goes with --wandb (it sets where W&B logs the report)", file=sys.stderr)
        return 2
    try:
        timed = latency_axis(args.runtime, args.batch)
        axis = {"latency": timed, "macs_paper": MACS_PAPER}.get(args.x, MACS)
        rep = build_report(
            args.paths,
            args.out,
            split=args.split,
            select=args.select,
            axis=axis,
            reference=args.reference,
            runtime=timed.runtime,
            batch=timed.batch,
        )
    except (NoResults, NotWritten) as err:  # the previous report, if any, is left as it was
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
    print(f"{sum(len(r.runs) for r in rep.rows)} runs in {len(rep.rows)} configurations, {len(rep.failed)} failed")
    print(f"report: {printable(str(rep.out / 'report.md'))}")
    if args.wandb:
        try:
            tracking.log_report(report_tables(rep), project=args.project, entity=args.entity, mode=args.mode)
        except Exception as err:  # a project name W&B refuses, no login, no network: the report is written
            print(f"error: the report is written, but W&B did not take it ({one_line(err)})", file=sys.stderr)
            return 1
    return 0
