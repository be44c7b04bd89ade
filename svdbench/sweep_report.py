"""A Hydra callback that ends a multirun with its report: ``svdbench report`` over the sweep
directory into ``<sweep dir>/report``. conf/config.yaml sets it for every sweep; the head-to-head
presets (``+experiment=compare_*``) add the keys their methods are told apart by::

    hydra:
      callbacks:
        report:
          _target_: svdbench.sweep_report.ReportAtEnd
          split: [method.decomposition]

``hydra.callbacks.report.enabled=false`` turns it off for one sweep.

A report that cannot be made is a warning naming the command to run by hand: the runs are kept. A report cut
by a signal (Ctrl-C, SIGTERM) also ends the sweep with ``128 + signal`` (130, 143), as any interrupted command.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from . import cli
from .errors import STOP_SIGNALS, interrupted_by

log = logging.getLogger("svdbench")

__all__ = ["ReportAtEnd"]


class ReportAtEnd(Callback):
    """``on_multirun_end``: the report of ``hydra.sweep.dir`` into ``out`` (default ``<sweep dir>/report``),
    rows split by the config keys ``split``; nothing with ``enabled`` false."""

    def __init__(self, out: str | None = None, split: Sequence[str] = (), enabled: bool = True) -> None:
        self.out, self.enabled = (os.path.expanduser(str(out)) if out else None), enabled  # ~/x: as a shell reads it
        self.split = [split] if isinstance(split, str) else list(split)  # one key given as a string

    def command(self, sweep_dir: str | Path) -> list[str]:
        out = self.out or str(Path(sweep_dir) / "report")  # --out=... and -- before the path: a name may start with -
        return ["report", f"--out={out}", *(["--split", *self.split] if self.split else []), "--", str(sweep_dir)]

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if not self.enabled:
            return
        args = self.command(config.hydra.sweep.dir)
        try:
            code = cli.main(args)
        except KeyboardInterrupt as err:  # a signal outside the report's own handling
            code = interrupted_by(err)[1]
            reason = f"exit {code}"
        except (Exception, SystemExit) as err:  # the runs are on disk whatever happens here (argparse exits too)
            code, reason = 1, f"{type(err).__name__}: {err}"
        else:
            reason = f"exit {code}"
        if code:
            log.warning("the report could not be made (%s); make it with: svdbench %s", reason, shlex.join(args))
        if code in INTERRUPTED:  # asked to stop: the sweep says so, not success (``run.py -m ... && next`` stops)
            raise SystemExit(code)


#: the exit codes of a report cut by a signal (:func:`svdbench.cli.main`): SIGINT, SIGTERM, SIGUSR1, SIGUSR2
INTERRUPTED = (128 + signal.SIGINT, *(128 + s for s in STOP_SIGNALS))
