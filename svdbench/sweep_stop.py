"""How the launching process of a parallel sweep (``hydra/launcher=local_parallel``) stops.

joblib ends its pool with SIGKILL as soon as the launching process raises: a worker still saving its checkpoint
lost it, and a signal sent to the launching process alone reached no worker at all. So, in a process that opened
a channel to its workers (:mod:`svdbench.stop_channel`), a stop signal (Ctrl-C, SIGTERM, SIGUSR1/2) first tells
them to stop (each stops at its next training step as on SIGTERM and saves its checkpoint; none starts another
job), waits up to :data:`GRACE_S` seconds for the jobs under way to end, and only then raises as
:func:`svdbench.errors.sigterm_raises` does. The same signal again raises at once. The pool's own abort (a worker
killed, out of memory say, or a job that raised) waits so too."""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from joblib import register_parallel_backend
from joblib._parallel_backends import LokyBackend

from . import stop_channel
from .errors import RECEIVED, STOP_SIGNALS, Terminated

__all__ = ["GRACE_S", "WorkerLost", "WorkersSaveFirst", "register_backend", "workers_stop_first"]

#: how long the launching process waits for its workers' jobs to save their checkpoints (systemd gives a stopped
#: service 90 s, the SLURM launcher's configuration 120 s)
GRACE_S = 60.0

#: the job directories still under way when the launching process stopped waiting (empty: every one stopped)
LEFT_RUNNING: list[Path] = []


def wait_for_workers(grace_s: float, why: str) -> None:
    """Tell the workers to stop (:func:`svdbench.stop_channel.mark`) and wait, at most ``grace_s`` seconds and
    while any worker lives, for the jobs under way (:func:`svdbench.stop_channel.under_way`) to end, saying ``why``
    first where there are any; :data:`LEFT_RUNNING`: those that did not."""
    if not stop_channel.mark():
        LEFT_RUNNING.clear()
        return
    if stop_channel.under_way() and _workers_alive():
        print(f"{why}: waiting for the jobs under way to stop and record it (up to {grace_s:.0f} s)", file=sys.stderr,
              flush=True)  # fmt: skip
    deadline = time.monotonic() + grace_s
    while stop_channel.under_way() and time.monotonic() < deadline and _workers_alive():
        time.sleep(0.2)
    LEFT_RUNNING[:] = stop_channel.under_way() if _workers_alive() else []


def _workers_alive() -> bool:
    """Whether any worker process of this one's is alive (loky ends them all itself when one is killed: then
    there is nothing to wait for)."""
    return any(p.is_alive() for p in multiprocessing.active_children())


@contextlib.contextmanager
def workers_stop_first(grace_s: float = GRACE_S) -> Iterator[None]:
    """Within the block, in a process that opened a channel to its workers (:mod:`svdbench.stop_channel`), the
    launching process of a parallel sweep: a stop signal tells the workers to stop and waits for the jobs under
    way to end, at most ``grace_s`` seconds, before it raises
    KeyboardInterrupt (Ctrl-C) or :class:`~svdbench.errors.Terminated`; so does joblib's pool before it ends its
    workers for any other reason (a worker killed, out of memory say; a job that raised). Elsewhere, nothing
    changes."""
    LEFT_RUNNING.clear()
    POOL_ENDED.clear()
    CUT_SHORT.clear()
    if not stop_channel.opened():
        yield
        return
    stopped: list[int] = []

    def stop(signum, frame) -> None:
        RECEIVED.append(signum)
        if stopped:  # a second signal: at once
            LEFT_RUNNING[:] = stop_channel.under_way()
            CUT_SHORT.append(signum)
        else:
            stopped.append(signum)
            name = signal.Signals(signum).name
            wait_for_workers(grace_s, f"stopping ({name}; again stops at once)")
        raise Terminated(signum)  # Ctrl-C too: a Terminated Python drops (in a weakref callback) is told once

    def before_the_pool_ends() -> None:
        if not stopped:  # after a signal the wait is over: the pool ends now
            POOL_ENDED.append(True)
            wait_for_workers(grace_s, "the sweep stops (a job ended it)")

    signals = (signal.SIGINT, *STOP_SIGNALS)
    before = {s: signal.signal(s, stop) for s in signals}
    ABORTING.append(before_the_pool_ends)
    try:
        yield
    finally:
        ABORTING.remove(before_the_pool_ends)
        for s, handler in before.items():
            signal.signal(s, handler)


#: not empty once a second signal cut the wait short (:func:`workers_stop_first`)
CUT_SHORT: list[int] = []

#: not empty once the pool was ended for a job's error, not a signal (:func:`workers_stop_first`)
POOL_ENDED: list[bool] = []

#: what joblib's loky backend calls before it ends its workers (:class:`WorkersSaveFirst`)
ABORTING: list[Callable[[], None]] = []


class WorkersSaveFirst(LokyBackend):
    """joblib's loky backend, registered as ``loky`` in a sweep's launching process (:func:`register_backend`),
    whose abort (the pool ends every worker with SIGKILL, for the first error of any job) first lets the jobs
    under way stop and save (:func:`workers_stop_first`)."""

    def abort_everything(self, ensure_ready: bool = True) -> None:
        for call in list(ABORTING):
            call()
        super().abort_everything(ensure_ready=ensure_ready)

    def retrieve_result_callback(self, future):
        try:
            return super().retrieve_result_callback(future)
        except BrokenProcessPool as err:  # Hydra would print it as a traceback: WorkerLost reaches the command
            raise WorkerLost(str(err)) from None


class WorkerLost(BaseException):
    """A worker process of the pool ended unexpectedly (killed: out of memory, say), and loky ended the others:
    a BaseException, so that Hydra's handler (a traceback for an Exception) lets it reach the command, which says
    it in one line."""

    def exit_codes(self) -> str:
        """loky's line naming the workers' exit codes (``The exit codes of the workers are {SIGKILL(-9)}``)."""
        text = str(self.args[0]) if self.args else ""
        return next((line.strip().rstrip(".") for line in text.splitlines() if "exit codes" in line), text[:200])


def register_backend() -> None:
    """joblib's ``loky`` backend is :class:`WorkersSaveFirst` in this process (the joblib launcher's pool)."""
    register_parallel_backend("loky", WorkersSaveFirst)
