"""The pipeline every method goes through:

    data -> model -> method.check -> [pretrain] -> method.prepare -> the stages before compression
         -> compress -> BatchNorm recalibration -> finetune -> export -> measure -> record,
    then the same compress ... record for each of the method's operating points.

:class:`Run` carries one planned run (:class:`svdbench.plan.RunPlan`) through it in one directory;
:func:`run_experiment` is the plain-Python entry point: it takes the typed config
(``svdbench.config.Config``), a method object and a run directory, and returns the results dict it
wrote to ``run_dir/results.json``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from . import distributed, lowrank, stop_channel, tracked_runs
from .checkpoint import (
    DENSE_CHECKPOINT,
    PreemptionGuard,
    RunCheckpoints,
    architecture,
    dense_digest,
    save_dense_checkpoint,
)
from .errors import InputError, Preempted, one_line
from .macs import count_params
from .methods.base import Method
from .models import model_label, model_options
from .plan import RunPlan, make_plan
from .points import OperatingPoints, Trained
from .results import RunRecord, versions
from .rundir import (
    HYDRA_WRITES,
    RunLock,
    check_run_dir,
    clear_run,
    missing_files,
    previous_record,
    tracked_before,
)
from .stages import Leg, StageRunner, recorded
from .tracking import Tracker
from .workbench import Workbench

log = logging.getLogger("svdbench")

__all__ = ["Run", "run_experiment"]


def run_experiment(
    cfg, method: Method, run_dir: str | Path, *, on_epoch: Callable[[dict], None] | None = None
) -> dict[str, Any]:
    """Run ``method`` under ``cfg`` and write ``results.json`` (and one per operating point).

    Raises :class:`InputError` (nothing written) for bad input found before training; any later
    failure writes ``status: failed`` with the reason, then re-raises. ``on_epoch`` receives every
    epoch's metrics.
    """
    return Run(make_plan(cfg, method), run_dir, on_epoch=on_epoch).execute()


def _sweep_stops() -> bool:
    """Polled with a training stage's signals: whether the sweep this process works for stops, its launching
    process gone (its locks with it: :meth:`RunLock.lender_gone`) or stopping (:func:`stop_channel.stopping`)."""
    return RunLock.lender_gone() or stop_channel.stopping()


class Run:
    """One planned run in one directory: the main result, then the operating points, each a
    :class:`~svdbench.stages.Leg`. Every stage is checkpointed; a rerun in the same directory
    continues where it stopped."""

    def __init__(
        self,
        plan: RunPlan,
        run_dir: str | Path,
        *,
        on_epoch: Callable[[dict], None] | None = None,
        tracker: Tracker | None = None,
    ) -> None:
        """``on_epoch`` receives every epoch's record; ``tracker`` (W&B) too, begun once the directory is this run's
        (:meth:`Tracker.begin`)."""
        self.tracker = tracker or Tracker()
        self.plan, self.dir, self.on_epoch = plan, Path(run_dir), on_epoch
        self.checkpoints = RunCheckpoints(self.dir, plan.config, plan.method.name, enabled=plan.cfg.checkpoint)
        self.points = OperatingPoints(plan, self.dir)

    # ------------------------------------------------------------------ before any work

    def execute(self) -> dict[str, Any]:
        t_start = time.perf_counter()
        if distributed.is_main():
            self.check_dir()
        with RunLock(self.dir) if distributed.is_main() else contextlib.nullcontext():
            done = self.completed_result()
            if done is not None:
                return done
            bench = Workbench(self.plan)
            if distributed.is_main():
                log.info("%s", plan_line(self.plan, bench, self.dir, [label for label, _ in self.points.points]))
            with PreemptionGuard(orphaned=_sweep_stops) as guard:
                results = self._run(bench, StageRunner(self.plan, bench, guard, self.on_epoch, self.tracker), t_start)
        bench.close()
        return results

    def check_dir(self, hydra: Sequence[str] = HYDRA_WRITES) -> None:
        """Before any work: the run directory (:func:`svdbench.rundir.check_run_dir`, with its operating
        points' directories and Hydra's ``hydra`` names), and no starting point inside it (``init_from``, a
        method's ``path_keys``: a run would replace what it starts from). InputError in one line."""
        check_run_dir(self.dir, hydra, points=[label for label, _ in self.points.points])
        parent = self._point_of()
        if parent:  # its run counts it as one of its own points: replaced (or taken), it could not be finished
            raise InputError(
                f"{self.dir} is an operating point of the run in {parent}: a run never replaces another run's "
                "point; use another run directory"
            )
        here = Path(os.path.realpath(self.dir))  # links resolved: a start reached through one is still this run's
        cfg = self.plan.method.config
        starts = {"init_from": self.plan.init_from, **{f"method.{k}": getattr(cfg, k) for k in cfg.path_keys}}
        for key, value in starts.items():
            if value and (here == Path(os.path.realpath(value)) or here in Path(os.path.realpath(value)).parents):
                raise InputError(
                    f"{key}={value} lies in this run's own directory {here}: a run never starts from "
                    "what it writes; use another run directory"
                )

    def _point_of(self) -> str | None:
        """The run whose operating point this directory is (its record says so, ``point_of``, or the parent
        directory's run lists it among its points: one not made yet), unless this run is that point's own config
        rerun into it (which returns its result): a run of another config, or ``resume=false``, would replace or
        take it. None otherwise."""
        here = previous_record(self.dir)
        # this very point's config rerun into it returns its result; anything else would replace or take it
        own = here is not None and here.get("status") == "completed" and self.plan.cfg.resume
        own = own and self.checkpoints.other_experiment() is None
        if here is not None and here.get("point_of") and not own:
            recorded = str(here["point_of"])  # the run moved since (mv): the directory holding the point is its run
            return recorded if os.path.isdir(recorded) else f"{self.dir.parent} (recorded as {recorded}, moved since)"
        try:
            above = previous_record(self.dir.parent)
        except InputError:  # not svdbench's: no run there to keep whole
            return None
        labels = [p.get("label") for p in (above or {}).get("operating_points") or [] if isinstance(p, dict)]
        return str(self.dir.parent) if self.dir.name in labels and not own else None

    def completed_result(self) -> dict | None:
        """Before any work: refuse a directory that holds another experiment (InputError), and return
        the completed result of this one when it and all its operating points are done (None: there
        is work to do)."""
        if not self.plan.cfg.resume:
            return None
        other = self.checkpoints.other_experiment()
        if other:
            raise InputError(other)
        done = self.checkpoints.completed()
        if done is None or self.points.pending():
            return None
        gone = missing_files(self.dir, done)
        if gone:
            raise InputError(
                f"{self.dir} holds a completed run of this config, but {gone[0]}, which it wrote, is gone (moved or "
                "removed): resume=false to redo the run"
            )
        self._check_start(done)
        log.info("run directory %s already holds a completed run of this config", self.dir)
        if self.plan.cfg.measure.latency and not done.get("latency"):
            log.warning(
                "that run was measured without latency (measure.latency=false); to time it, rerun with resume=false"
            )
        return done

    def _check_start(self, done: dict) -> None:
        """A completed run is this run only if it started from the weights ``init_from`` holds now (the same text
        can name other weights: a relative path from another directory, a dense run replaced since): InputError."""
        try:
            self.plan.method.check_done(done)
        except ValueError as err:
            raise InputError(f"{self.dir} holds a completed run of this config, but {one_line(err)}: resume=false "
                             "to redo it") from None  # fmt: skip
        start, recorded = self.plan.init_from, done.get("dense_start")
        if start is None or not str(recorded).startswith("tensors-sha256:"):
            return
        if dense_digest(start) != recorded:
            raise InputError(
                f"{self.dir} holds a completed run of this config that started from other weights than init_from "
                f"{start} holds now: resume=false to redo it from these, or give the dense run it started from"
            )

    # ------------------------------------------------------------------ the work

    def _run(self, bench: Workbench, runner: StageRunner, t_start: float) -> dict[str, Any]:
        """With the run directory to itself: the main result, then the operating points."""
        cfg = self.plan.cfg
        if distributed.is_main():
            self.checkpoints.remove_orphans()
            if not cfg.resume:  # replaced: nothing of the previous run may be counted as this one's
                for f in clear_run(self.dir):
                    log.info("resume=false: removed %s of the previous run", f)
        done = self.checkpoints.completed() if cfg.resume else None
        record = self.new_record(bench)
        if cfg.resume:
            self.checkpoints.load(start=record.dense_start)
        record.tracking = self.tracker.reserve(self.dir, self._tracked_before(done))
        main = Leg(self.plan.method, record, self.dir, self.checkpoints)
        if done is None:
            # the points it will make, listed from the start: a replacing run clears them even when this one is cut
            pending = [{"label": label, "status": "pending"} for label, _ in self.points.points]
            main.record.operating_points = pending or None
            main.write()  # status running: the directory is this run's from its first step
            self.tracker.begin()  # its W&B run's id recorded first: a cut while W&B starts leaves no folder unnamed
            trained = self.train_and_finish(bench, runner, main, t_start)
            main.write()
        else:  # the main result is complete, some operating points are not: back to the trained model
            log.info("run directory %s: completing the operating points %s", self.dir, ", ".join(self.points.pending()))
            main.record = dataclasses.replace(RunRecord.from_dict(done), tracking=record.tracking)
            main.write()
            self.tracker.begin()
            trained = self.restore_trained(bench, main)
        if self.points:
            main.record.operating_points = self.points.make(bench, runner, main.record, trained)
            main.write()
        all_done = all(p["status"] == "completed" for p in main.record.operating_points or [])
        if not cfg.keep_checkpoints and all_done and distributed.is_main():
            self.checkpoints.remove()  # kept while a point failed: a rerun makes it from the trained model
        if runner.guard.signum is not None:  # arrived after the last training step (measuring): hand it on
            runner.guard.chain()
            raise Preempted(runner.guard.signum, completed=True)
        return main.record.to_dict()

    def _tracked_before(self, done: dict | None) -> dict | None:
        """The W&B record (``tracking``) of the run this one goes on with: none for a run that replaces it; and where
        nothing is resumed (no checkpoint: ``checkpoint=false``, or none saved yet) the run starts again from its
        beginning, in a W&B run of its own, the cut legs' folders removed (their epochs are trained again)."""
        if not self.plan.cfg.resume:
            return None
        before = tracked_before(self.dir)
        if before is None or done is not None or self.checkpoints.latest is not None or self.checkpoints.stages:
            return before
        if distributed.is_main():
            for f in tracked_runs.remove(self.dir, before):
                log.info("starting again from the beginning: removed %s of the cut run", f)
        return None

    def train_and_finish(self, bench: Workbench, runner: StageRunner, leg: Leg, t_start: float) -> Trained | None:
        """Dense pretraining where needed, prepare, the stages before compression, then compress ...
        measure. Returns where the operating points start (None without any). A failure is recorded in
        results.json and re-raised."""
        plan, rec, method = self.plan, leg.record, leg.method
        trained = None
        with recorded(leg, runner.guard):
            try:
                model = bench.model.to(bench.device)
                if plan.pretrain is not None:
                    runner.stage(leg, plan.pretrain, model, Method())
                    if distributed.is_main():
                        leg.wrote(DENSE_CHECKPOINT)
                        rec.dense_start = save_dense_checkpoint(model, self.dir)
                if plan.cfg.init_from or method.pretrain_dense:
                    rec.stage_top1["dense"] = bench.test_top1(model)
                model = method.prepare(model, bench.input_shape).to(bench.device)
                full = {n: m.full_rank for n, m in lowrank.lowrank_layers(model).items()}
                rec.ranks = {"full": full} if full else {}
                for stage in plan.before_compress:
                    runner.stage(leg, stage, model)
                self.save_dense(bench, leg, model)
                if self.points:
                    trained = Trained.of(bench, model, rec)
                runner.finish(leg, model)
                rec.status = "completed"
            finally:
                rec.wall_time["total"] = time.perf_counter() - t_start
        return trained

    def save_dense(self, bench: Workbench, leg: Leg, model: nn.Module) -> None:
        """A method that does not compress leaves the trained model as ``dense.pt``, the starting point
        ``init_from`` reads, where it still has the dense architecture (a method whose ``prepare``
        changed it, e.g. factorised training, leaves none: it would not load into the dense model)."""
        if self.plan.method.compresses:
            return
        if architecture(model) != bench.dense_architecture:
            log.info("no dense.pt: method %s changed the architecture in prepare", self.plan.method.name)
        elif distributed.is_main():
            leg.wrote(DENSE_CHECKPOINT)
            save_dense_checkpoint(model, self.dir)

    def restore_trained(self, bench: Workbench, leg: Leg) -> Trained:
        """The trained model again, from ``stage_train.pt``, for operating points a cut run left undone."""
        model = leg.method.prepare(bench.model.to(bench.device), bench.input_shape).to(bench.device)
        rec = copy.deepcopy(leg.record)
        if not self.checkpoints.restore_stage("train", model, leg.method, rec, bench.generator):
            raise InputError(
                f"{self.dir} holds a completed run whose operating points are not all done, but "
                "not its trained model (stage_train.pt): rerun with resume=false"
            )
        return Trained.of(bench, model, rec)

    def new_record(self, bench: Workbench) -> RunRecord:
        cfg, method = self.plan.cfg, self.plan.method
        return RunRecord(
            status="running",
            method=method.name,
            model=model_label(cfg.model.name, **model_options(cfg.model)),
            dataset=cfg.dataset.name,
            seed=cfg.seed,
            config=self.plan.config,
            # absolute, as this run resolved it (the launch directory): what a later reader of the record opens
            init_from=str(self.plan.init_from) if self.plan.init_from else None,
            headline=list(method.Config.headline) or None,
            macs_dense=bench.dense_count.macs,
            params_dense=count_params(bench.model),
            input_shape=list(bench.input_shape),
            versions=versions(),
            samples=_samples(bench),
            epochs_after_start=self.plan.epochs_after_start,
            dense_start=dense_digest(self.plan.init_from) if self.plan.init_from else None,
            device=str(bench.device),
            world_size=distributed.world_size(),
            accel=bench.accel.as_dict(),
        )


def _samples(bench: Workbench) -> dict[str, int]:
    """The samples each split really held; ``dropped_per_epoch`` where a last batch of one was left out."""
    data = bench.data
    out = {"train": data.num_train, "val": data.num_val, "test": data.num_test}
    return {**out, "dropped_per_epoch": data.dropped_per_epoch} if data.dropped_per_epoch else out


def plan_line(plan: RunPlan, bench: Workbench, run_dir: Path, points: Sequence[str] = ()) -> str:
    """What a run is about to do, in one line before its first step: method, model and data set, its
    directory, the images of each split, the dense model's MACs and parameters, the stages with their
    epochs, and the operating points that follow."""
    cfg, data = plan.cfg, bench.data
    stages = [s for s in (plan.pretrain, *plan.before_compress) if s is not None and s.epochs]
    steps = [_epochs(s.name, s.epochs) for s in stages]
    if plan.method.compresses:
        settings = [f"{k.split('.', 1)[-1]}={v}" for k in plan.method.Config.headline if (v := _value(plan, k))]
        steps.append("compress" + (f" ({', '.join(settings)})" if settings else ""))
    if plan.method.finetune_epochs:
        steps.append(_epochs(plan.finetune.name, plan.method.finetune_epochs))
    val = f" / {data.num_val} val" if data.num_val else ""
    line = (
        f"{plan.method.name} on {cfg.model.name}/{cfg.dataset.name} in {run_dir}: {data.num_train} train{val} / "
        f"{data.num_test} test images on {bench.device}; dense {bench.dense_count.macs / 1e6:.2f} M MACs, "
        f"{count_params(bench.model) / 1e3:.1f} k params; {', then '.join(steps) or 'no training'}"
    )
    n = len(points)
    return line + (f"; then {n} operating point{'s' * (n != 1)} ({', '.join(points)})" if points else "")


def _epochs(stage: str, n: int) -> str:
    return f"{stage} {n} epoch{'s' * (n != 1)}"


def _value(plan: RunPlan, dotted: str) -> Any:
    """The method's value of a headline key (``method.speedup``), None where unset or not the method's."""
    head, _, key = dotted.partition(".")
    return getattr(plan.method.config, key, None) if head == "method" else None
