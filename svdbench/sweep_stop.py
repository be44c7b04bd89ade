"""How the launching process of a parallel sweep (``hydra/launcher=local_parallel``) stops on a signal.

joblib ends its pool with SIGKILL as soon as the launching process raises: a worker still saving its checkpoint
lost it, and a signal sent to the launching process alone reached no worker at all. So, in a process that lent
its jobs' locks to workers (:meth:`svdbench.rundir.RunLock.lend_to_workers`), a stop signal (Ctrl-C, SIGTERM,
SIGUSR1/2) first marks those locks stopping (each worker stops at its next training step as on SIGTERM and saves
its checkpoint; none starts another job), waits up to :data:`GRACE_S` seconds for the jobs under way to record
that they stopped, and only then raises as :func:`svdbench.errors.sigterm_raises` does. The same signal again
raises at once."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import RECEIVED, STOP_SIGNALS, Terminated
from .results import RESULTS_FILE, read_results
from .rundir import RunLock

__all__ = ["GRACE_S", "under_way", "workers_stop_first"]

#: how long the launching process waits for its workers' jobs to save their checkpoints (systemd gives a stopped
#: service 90 s, the SLURM launcher's configuration 120 s)
GRACE_S = 60.0

#: the job directories still under way when the launching process stopped waiting (empty: every one stopped)
LEFT_RUNNING: list[Path] = []


def under_way(dirs: list[Path], since: float) -> list[Path]:
    """Those of ``dirs`` whose results.json says ``running`` and was written at or after ``since`` (a time as
    ``time.time()``): the jobs of this sweep under way (a record left running by an earlier, killed try of the
    sweep is not)."""
    running = []
    for d in dirs:
        path = d / RESULTS_FILE
        try:
            if os.stat(path).st_mtime >= since and read_results(path).get("status") == "running":
                running.append(d)
        except (OSError, ValueError):
            continue
    return running


@contextlib.contextmanager
def workers_stop_first(since: float, grace_s: float = GRACE_S) -> Iterator[None]:
    """Within the block, in a process that lent its jobs' locks: a stop signal marks the locks stopping and waits
    for the jobs under way (begun at or after ``since``) to stop, at most ``grace_s`` seconds, before it raises
    KeyboardInterrupt (Ctrl-C) or :class:`~svdbench.errors.Terminated`; elsewhere, nothing changes."""
    LEFT_RUNNING.clear()
    if not RunLock.lends():
        yield
        return
    waiting: list[int] = []

    def stop(signum, frame) -> None:
        RECEIVED.append(signum)
        if not waiting:  # the first: the workers save first; a second ends the wait and raises at once
            waiting.append(signum)
            RunLock.mark_stopping()
            name = signal.Signals(signum).name
            print(f"stopping ({name}): waiting for the jobs under way to stop and record it (up to {grace_s:.0f} "
                  f"s; {name} again stops at once)", file=sys.stderr, flush=True)  # fmt: skip
            deadline = time.monotonic() + grace_s
            while under_way(RunLock.lent_dirs(), since) and time.monotonic() < deadline:
                time.sleep(0.2)
        LEFT_RUNNING[:] = under_way(RunLock.lent_dirs(), since)  # after the grace, or cut short by a second signal
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    signals = (signal.SIGINT, *STOP_SIGNALS)
    before = {s: signal.signal(s, stop) for s in signals}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
