"""``run.py ... --plan``: what a run (or each job of a sweep) will do and about how long it takes, and the
config it records, printed before anything is written.

The time is an estimate from the run's own data, model and device: the median of a few timed training
steps of the dense model (forward, backward, an optimiser step) and evaluation batches, multiplied by the
steps and evaluations its stages run (every epoch evaluates the test and validation splits)::

    seconds ~ epochs x (train_batches x t_step + (val_batches + test_batches) x t_eval)

over the training stages and every operating point's fine-tuning. A decomposed model's step
(SVD training, TRP) can cost more than the dense one's and latency timing is not counted: the
figure is a lower bound of the right order, labelled as an estimate.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import statistics
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from .data import DataBundle
from .errors import DatasetError
from .pipeline import plan_line
from .plan import RunPlan
from .points import OperatingPoints
from .stages import duration
from .workbench import Workbench

__all__ = ["Launch", "StepTimes", "estimate_seconds", "launch_of", "show_plan", "step_times"]

#: the built-in data sets a run downloads where their files are missing (dataset.download)
DOWNLOADED = ("fashion_mnist", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class StepTimes:
    """Median seconds per training step and per evaluation batch, and how many of each were timed."""

    train: float
    eval: float
    steps: int


def step_times(bench: Workbench, budget_s: float = 2.0, max_steps: int = 30, warmup: int = 2) -> StepTimes:
    """Time training steps (forward, backward, an optimiser step on a copy of the bench's dense model,
    the run's batches) and evaluation batches, each after ``warmup`` untimed ones, until ``budget_s``
    seconds or ``max_steps`` (at least 3); medians, so that a moment of load elsewhere counts little.
    The bench's model is left as it was."""
    model = copy.deepcopy(bench.model).to(bench.device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    batches = itertools.cycle(bench.data.train)
    x_eval = next(iter(bench.data.test))[0].to(bench.device)

    def train_step() -> None:
        x, y = next(batches)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x.to(bench.device)), y.to(bench.device)).backward()
        opt.step()

    @torch.no_grad()
    def eval_step() -> None:
        model(x_eval)

    t_train = _median_time(train_step, budget_s, max_steps, warmup, bench.device)
    model.eval()
    t_eval = _median_time(eval_step, budget_s / 2, max_steps, warmup, bench.device)
    return StepTimes(train=t_train[0], eval=t_eval[0], steps=t_train[1])


def _median_time(fn, budget_s: float, max_steps: int, warmup: int, device: torch.device) -> tuple[float, int]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    while len(times) < 3 or (len(times) < max_steps and sum(times) < budget_s):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times)


def stage_epochs(plan: RunPlan, points: int = 0) -> int:
    """Every epoch the run trains: its stages before compression (and the dense pre-training without
    ``init_from``), its fine-tuning, and that of each of its ``points`` operating points."""
    pretrain = plan.pretrain.epochs if plan.pretrain is not None else 0
    return pretrain + plan.epochs_after_start + points * plan.method.finetune_epochs


def estimate_seconds(epochs: int, data: DataBundle, times: StepTimes) -> float:
    """``epochs x (train_batches x t_step + (val_batches + test_batches) x t_eval)``."""
    evals = len(data.test) + (len(data.val) if data.val is not None else 0)
    return epochs * (len(data.train) * times.train + evals * times.eval)


@dataclasses.dataclass(frozen=True)
class Launch:
    """How a sweep's launcher runs its jobs: ``at_once`` of them at a time on this machine (1: one after
    another), or ``None`` where a scheduler decides (a cluster's)."""

    at_once: int | None = 1

    def phrase(self) -> str:
        if self.at_once == 1:
            return "one after another"
        if self.at_once is None:
            return "as the launcher's scheduler starts them"
        return f"up to {self.at_once} at a time on this machine"

    def total(self, seconds: float, count: int) -> str:
        """The sweep's ``seconds`` of job time (its ``count`` jobs' sum) as the ``in all`` line says it."""
        if self.at_once == 1:
            return f"about {duration(seconds)}"
        if self.at_once is None:
            return f"about {duration(seconds)} of job time, the jobs' own (the wall time is the scheduler's)"
        rounds = -(-count // self.at_once)  # ceil: the jobs in rounds of at_once, each the jobs' mean time
        wall = seconds / count * rounds
        return (f"about {duration(seconds)} of job time; {min(self.at_once, count)} at a time, about {duration(wall)} "
                "if they do not slow each other (on shared cores they do)")  # fmt: skip


def launch_of(launcher) -> Launch:
    """The :class:`Launch` of a sweep's ``hydra.launcher`` node: the basic launcher runs its jobs one after
    another, joblib's ``n_jobs`` of them at a time (``-k``: every core but ``k - 1``, joblib's rule; null:
    joblib's default, every core), any other (submitit's) as its scheduler starts them."""
    target = str(launcher.get("_target_", "") if launcher is not None else "")
    if not target or target.endswith("BasicLauncher"):
        return Launch(1)
    if target.endswith("JoblibLauncher"):
        n = launcher.get("n_jobs")
        cores = os.cpu_count() or 1
        n = cores if n is None else (n if n > 0 else max(cores + 1 + n, 1))
        return Launch(n)
    return Launch(None)


def show_plan(
    jobs: Sequence[tuple[str, RunPlan, Path]],
    sweep_dir: str | None = None,
    count: int | None = None,
    launch: Launch = Launch(1),
    complete: Collection[Path] = (),
) -> None:
    """Print each job's plan (``(label, plan, run directory)``; one job for a single run) with its
    estimated time, the sweep's total, and the config the first job records; nothing is written. A
    sweep of ``count`` jobs of which ``jobs`` are a sample (a grid too large to check whole, a sampling
    sweeper's trials) says so, and its total is the shown jobs' mean times ``count``; run by ``launch``
    several at a time, the total is the jobs' time, and its wall time the mean job's times the rounds of
    jobs that run at once. A data set that is not here yet (the run would download it) is said in one line
    instead of the counts. A job whose directory is in ``complete`` (it holds a completed run of its config,
    which the sweep keeps) is said so, and counts no time."""
    total, timed, measured = 0.0, 0, {}
    count = len(jobs) if count is None else count
    if sweep_dir is not None:
        shown = "" if count == len(jobs) else f"; shown: {len(jobs)} of them, a sample"
        print(f"sweep of {count} job{'s' * (count != 1)} into {sweep_dir}, {launch.phrase()}{shown}:")
    for label, plan, run_dir in jobs:
        prefix = f"  job {label}: " if sweep_dir is not None else ""
        if run_dir in complete:
            print(f"{prefix}{plan.method.name}: {run_dir} already holds a completed run of this config (kept; no time)")
            timed += 1
            continue
        points = [p for p, _ in OperatingPoints(plan, run_dir).points]
        # the start's weights do not change the time, and a plan downloads nothing
        probe = dataclasses.replace(plan, init_from=None, cfg=copy.deepcopy(plan.cfg))
        probe.cfg.dataset.download = False
        key = OmegaConf.to_yaml(OmegaConf.create({"m": dataclasses.asdict(probe.cfg.model),
                                                  "d": dataclasses.asdict(probe.cfg.dataset),
                                                  "t": dataclasses.asdict(probe.cfg.trainer)}))  # fmt: skip
        try:
            if key not in measured:
                bench = Workbench(probe)
                measured[key] = (bench, step_times(bench))
        except DatasetError as err:
            if not (plan.cfg.dataset.download and plan.cfg.dataset.name in DOWNLOADED):
                raise
            print(f"{prefix}{plan.method.name}: {err} (the run downloads it first; no counts or time before)")
            continue
        bench, times = measured[key]
        seconds = estimate_seconds(stage_epochs(plan, len(points)), bench.data, times)
        total, timed = total + seconds, timed + 1
        print(f"{prefix}{plan_line(plan, bench, run_dir, points)}")
        steps = f"{times.steps} dense training steps at {times.train * 1e3:.0f} ms"
        evals = f"evaluation batches at {times.eval * 1e3:.0f} ms"
        print(
            f"{'    ' if prefix else ''}time: about {duration(seconds)} on {bench.device} (estimated from {steps} and "
            f"{evals}; decomposed training can be slower, latency timing not counted)"
        )
    if sweep_dir is not None and count > 1 and timed:
        scaled = "" if count == len(jobs) else f" (the sample's mean times {count})"
        print(f"in all: {launch.total(total / timed * count, count)}{scaled}")
    first = jobs[0][1]
    print("# the config the first job records in results.json" if sweep_dir else "# the config this run records")
    print(OmegaConf.to_yaml(first.config), end="")
