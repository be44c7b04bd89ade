"""svdbench: commands that work on results (training runs through run.py, the Hydra application).

svdbench report PATH... [--out DIR] [--wandb]   # tables, Pareto fronts and plot (see svdbench.report)
svdbench latency PATH... [--onnx] [--threads N]  # time finished runs' deployed models (see svdbench.retime)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, retime
from .errors import RECEIVED, interrupted_by, output_closed, sigterm_raises, swallowed
from .report import cli as report_cli

#: name, module (``add_arguments``, ``run``), one-line help
COMMANDS = (
    ("report", report_cli, "comparison tables (Markdown, CSV, LaTeX), Pareto fronts and a plot from results.json"),
    ("latency", retime, "time the deployed models of finished runs and record it in their results.json"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svdbench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"svdbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, what in COMMANDS:
        p = sub.add_parser(name, help=what, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    taken = len(RECEIVED)
    try:
        with sigterm_raises():
            code = args.func(args)
            dropped = swallowed(taken)
            if dropped is not None:  # raised where Python dropped it (a weakref callback): said now
                raise dropped
            return code
    except KeyboardInterrupt as err:  # a report is written whole or not at all, a latency record whole
        name, code = interrupted_by(err)
        print(
            f"svdbench {args.command}: interrupted ({name}); what it had not finished was not written", file=sys.stderr
        )
        return code
    except BrokenPipeError:  # its lines read by `| head`: it has what it wanted (a report is written before)
        return output_closed()


if __name__ == "__main__":
    raise SystemExit(main())
