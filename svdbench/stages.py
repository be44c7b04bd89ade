"""One result being made (a :class:`Leg`) and what happens to its model, stage by stage:

    train a stage (or restore it from its checkpoint) -> ... -> compress -> BatchNorm recalibration
        -> finetune -> export -> measure

A run has one leg for its main result and one per operating point; :class:`StageRunner` does the
same steps for each, into the leg's record and directory, and :func:`recorded` writes what became
of a leg (completed, failed or preempted) whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import distributed, lowrank
from .checkpoint import CHECKPOINT, PreemptionGuard, RunCheckpoints
from .deployed import ARCHITECTURE_FILE, WEIGHTS_FILE, document
from .errors import CheckpointError, DivergedError, InputError, Preempted, interrupted_by, interruption_in, one_line
from .evaluation import has_batchnorm, recalibrate_batchnorm
from .held_dirs import DirectoryGone
from .latency import run_latency
from .macs import analyze_macs, count_params
from .methods.base import Method
from .paper_macs import paper_record
from .plan import RunPlan, Stage
from .results import RunRecord, atomic_torch_save, best_epoch, write_json_atomic, write_results
from .tracking import Tracker
from .train import StageHooks, StageOptions, train_stage
from .workbench import Workbench

log = logging.getLogger("svdbench")

__all__ = ["Leg", "StageRunner", "recorded"]


@dataclass
class Leg:
    """One result being made: the main result of a run (``label`` None) or one of its operating
    points, with its method, its record (the future results.json), its directory and checkpoints."""

    method: Method
    record: RunRecord
    dir: Path
    checkpoints: RunCheckpoints
    label: str | None = None
    #: where its own epochs go in the run's W&B history: the epochs of the legs before it (``step_base``), and the
    #: epochs its record inherits (``history_base``: an operating point's copy of the main result's training)
    step_base: int = 0
    history_base: int = 0

    def step(self) -> int:
        """The W&B step of the epoch the leg's record last took: the same in a resumed run as in an uncut one."""
        return self.step_base + len(self.record.history) - 1 - self.history_base

    def write(self) -> None:
        """results.json, written by rank 0 only (the one process that writes files)."""
        if distributed.is_main():
            write_results(self.dir, self.record)

    def wrote(self, *names: str) -> None:
        """Record that the leg writes these files (names in its directory) besides results.json: what a run
        replacing it removes (svdbench.rundir.clear_run), and nothing else."""
        files = self.record.files or []
        self.record.files = [*files, *(n for n in names if n not in files)]


def _record_interruption(leg: Leg, err: KeyboardInterrupt) -> None:
    """The leg's record says it was interrupted (by which signal) and can be resumed."""
    leg.record.status = "preempted"
    leg.record.error = f"interrupted ({interrupted_by(err)[0]}); rerun the same command to resume"
    leg.write()


@contextlib.contextmanager
def recorded(leg: Leg, guard: PreemptionGuard, contain: bool = False) -> Iterator[None]:
    """Record in ``leg``'s results.json how its block ended other than normally: ``preempted`` (a
    signal: the checkpoint was saved; resumable), ``preempted`` by Ctrl-C, or ``failed`` with the
    reason; then re-raise. With ``contain`` (an operating point: one bad point must not lose the
    others) an ordinary failure is recorded and logged but not re-raised; bad input still is."""
    rec = leg.record
    try:
        yield
    except Preempted as err:
        rec.status, rec.error = "preempted", f"{err}; rerun the same command to resume"
        leg.write()
        distributed.barrier()  # every rank stopped at the same step (train_stage agrees on it)
        guard.chain()
        raise
    except KeyboardInterrupt as err:  # Ctrl-C, a second stop signal: resumable from the last saved checkpoint
        _record_interruption(leg, err)
        raise
    except (InputError, CheckpointError) as err:  # bad input: a checkpoint of another experiment, or one that does
        if rec.status == "running":  # not fit, found once this leg had begun: its record says so, not "running"
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
            leg.write()
        raise
    except DirectoryGone:  # its directory moved or removed: nothing can be recorded there, nor any point go on
        raise
    except BaseException as err:
        stop = interruption_in(err)
        if stop is not None:  # a stop signal wrapped in another error (raised while a class was being made)
            _record_interruption(leg, stop)
            raise stop from None
        rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
        if contain and isinstance(err, Exception):
            log.error("%s failed: %s", leg.label or leg.dir.name, one_line(err))
            return
        leg.write()
        if isinstance(err, DivergedError):  # raised on every rank at the same step
            distributed.barrier()
        raise


def duration(seconds: float) -> str:
    """``seconds`` for a log line: ``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def pace(elapsed: float, done: int, total: int, later: int = 0) -> str:
    """How long an epoch of a stage takes, when the stage ends and (``later``: the epochs of the stages after it)
    when the run's training ends at that pace: ``elapsed`` seconds for its first ``done`` of ``total`` epochs (a
    resumed stage counts the time recorded before)."""
    per = elapsed / max(done, 1)
    left = total - done
    text = f"{duration(per)}/epoch" + (f", stage done in {duration(per * left)}" if left > 0 else ", stage done")
    return text + (f", training done in about {duration(per * (left + later))}" if later > 0 else "")


class StageRunner:
    """The steps every leg goes through on one workbench, logged and checkpointed. ``on_epoch`` receives every
    epoch's record, and ``tracker`` (W&B) too, with its step (:meth:`Leg.step`); ``guard`` is polled for
    preemption."""

    def __init__(
        self,
        plan: RunPlan,
        bench: Workbench,
        guard: PreemptionGuard,
        on_epoch: Callable[[dict], None] | None = None,
        tracker: Tracker | None = None,
    ) -> None:
        self.plan, self.bench, self.guard, self.on_epoch = plan, bench, guard, on_epoch
        self.tracker = tracker or Tracker()

    def epochs_after(self, name: str) -> int:
        """The epochs of the run's main stages after stage ``name`` (pretrain, the method's, train, finetune;
        operating points not counted); 0 for a stage not among them."""
        stages = [*([self.plan.pretrain] if self.plan.pretrain else []), *self.plan.before_compress, self.plan.finetune]
        names = [s.name for s in stages]
        return sum(s.epochs for s in stages[names.index(name) + 1 :]) if name in names else 0

    def stage(self, leg: Leg, stage: Stage, net: nn.Module, method: Method | None = None, last: bool = False) -> None:
        """Train ``stage`` of ``leg`` (or restore it from its checkpoint), recording history, wall time
        and final top-1 into the leg's record; a stage that is not the ``last`` leaves
        ``stage_<name>.pt``. ``method``: the hooks (default: the leg's method)."""
        method = method or leg.method
        rec, ck, name, bench = leg.record, leg.checkpoints, stage.name, self.bench
        if ck.restore_stage(name, net, method, rec, bench.generator):
            log.info("stage %s restored from its checkpoint", name)
            return

        def record(epoch: dict) -> None:
            rec.history.append(epoch)
            evaluated = "".join(
                f", {split} top1 {epoch[f'{split}_top1']:.2f}"
                for split in ("test", "val")
                if epoch.get(f"{split}_top1") is not None
            )
            log.info(
                "%s epoch %d/%d: loss %.4f (reg %.4f), train top1 %.2f%s (%s)",
                epoch["stage"],
                epoch["epoch"],
                stage.epochs,
                *(epoch[k] for k in ("train_loss", "reg_loss", "train_top1")),
                evaluated,
                pace(time.perf_counter() - t, epoch["epoch"], stage.epochs, later),
            )
            if self.on_epoch:
                self.on_epoch(epoch)
            self.tracker.log_epoch(epoch, leg.step())

        later = self.epochs_after(name)
        resume = ck.resume_state(name, method, rec, net, stage.epochs, len(bench.data.train))
        if resume is not None:
            log.info("resuming stage %s at epoch %d, step %d", name, resume["epoch"] + 1, resume["step_in_epoch"])
        t = time.perf_counter() - rec.wall_time.get(name, 0.0)

        def save(state: dict) -> None:
            rec.wall_time[name] = time.perf_counter() - t
            ck.save_latest(name, state, method, rec)

        progress = self.plan.cfg.trainer.progress and distributed.is_main()
        options = StageOptions(
            stage.epochs,
            stage.optim,
            name,
            bench.device,
            progress=progress,
            accel=bench.accel,
            ddp=distributed.world_size() > 1,
            epoch_eval=tuple(self.plan.cfg.trainer.epoch_eval),
        )

        def early(steps: int, seconds: float) -> None:  # the first estimate, long before an epoch ends
            per = seconds / steps * len(bench.data.train)
            left = stage.epochs - (resume["epoch"] if resume is not None else 0)
            log.info(
                "%s: its first %d steps took %s: about %s an epoch of training (evaluation not counted), stage done "
                "in about %s%s", name, steps, duration(seconds), duration(per), duration(per * left),
                f", training done in about {duration(per * (left + later))}" if later else "",
            )  # fmt: skip

        hooks = StageHooks(on_epoch=record, save=save, stop=self.guard, resume=resume, early=early)
        try:
            train_stage(net, method, bench.data.train, bench.data.test, options=options, hooks=hooks,
                        val=bench.data.val)  # fmt: skip
        except CheckpointError as err:  # its training state did not fit (train_stage checks it first)
            raise CheckpointError(f"checkpoint {ck.dir / CHECKPOINT} {err}") from None
        rec.wall_time[name] = time.perf_counter() - t
        if stage.epochs > 0:
            rec.stage_top1[name] = bench.test_top1(net)
        if not last:
            ck.save_stage(name, net, method, rec, bench.generator)

    def finish(self, leg: Leg, model: nn.Module) -> None:
        """compress -> BatchNorm recalibration -> finetune -> export -> measure, into the leg's record."""
        rec, method, bench, tr = leg.record, leg.method, self.bench, self.plan.cfg.trainer
        if method.compresses:
            t = time.perf_counter()
            method.compress(model)
            model.to(bench.device)
            if tr.bn_recalibration_batches and has_batchnorm(model):  # a ViT has no statistics to go stale
                rec.stage_top1["pruned_stale_bn"] = bench.test_top1(model)
                recalibrate_batchnorm(model, bench.data.train, tr.bn_recalibration_batches, bench.device)
            rec.wall_time["compress"] = time.perf_counter() - t
            rec.stage_top1["pruned"] = bench.test_top1(model)
        finetune = Stage("finetune", method.finetune_epochs, self.plan.finetune.optim)
        self.stage(leg, finetune, model, last=True)
        self.measure(leg, model)

    def measure(self, leg: Leg, model: nn.Module) -> None:
        """Export the deployed model; its MACs, parameters, top-1 and (``measure.latency``) latency."""
        rec, bench, cfg = leg.record, self.bench, self.plan.cfg
        t = time.perf_counter()
        if rec.ranks:
            rec.ranks["after"] = lowrank.ranks(model)
        deployed = leg.method.export(model).to(bench.device).eval()
        count = analyze_macs(deployed, rec.input_shape)
        params = count_params(deployed)
        rec.top1 = bench.test_top1(deployed)
        rec.val_top1 = bench.val_top1(deployed)
        # the epochs of the deployed model: its fine-tuning, or the training of a run that compressed nothing after
        compressed_after = "pruned" in rec.stage_top1 and (not rec.history or rec.history[-1]["stage"] != "finetune")
        rec.top1_best_epoch = None if compressed_after else best_epoch(rec.history)
        rec.macs, rec.macs_total, rec.params = count.macs, count.macs_total, params
        rec.speedup = bench.dense_count.macs / max(count.macs, 1)
        rec.compression = rec.params_dense / max(params, 1)
        rec.mac_counter = {**count.as_dict(), "dense": bench.dense_count.as_dict()}
        rec.macs_paper = paper_record(model, bench.dense_paper_macs, rec.input_shape)
        rec.method_details = leg.method.details()
        # realized speed beside MACs; under torchrun timed by rank 0 alone while the others wait
        if cfg.measure is not None and cfg.measure.latency and distributed.is_main():
            t_lat = time.perf_counter()
            rec.latency = run_latency(
                deployed, bench.build_model, rec.input_shape, bench.device, cfg.measure, mac_speedup=rec.speedup
            )
            rec.wall_time["latency"] = time.perf_counter() - t_lat
        if cfg.save_model and distributed.is_main():
            self.save(leg, deployed.cpu())
        rec.wall_time["measure"] = time.perf_counter() - t

    def save(self, leg: Leg, deployed: nn.Module) -> None:
        """The deployed model as data (svdbench.deployed): its state dict, then its architecture, each
        written atomically; ``model_path`` names the architecture. A model the records cannot describe
        (a plug-in's own layer type) is a warning, and nothing is saved."""
        bench = self.bench
        try:
            with torch.random.fork_rng(devices=[]):  # the dense model's random init leaves the run's RNG as it was
                dense = bench.build_model()
            doc = document(
                deployed, dense, self.plan.config["model"], bench.data.num_classes, bench.data.input_shape[0]
            )
        except ValueError as err:
            log.warning("deployed model not saved: %s", one_line(err))
            return
        leg.wrote(WEIGHTS_FILE, ARCHITECTURE_FILE)  # recorded first: a replacing run removes what it names
        atomic_torch_save(deployed.state_dict(), leg.dir / WEIGHTS_FILE)
        leg.record.model_path = str(write_json_atomic(leg.dir / ARCHITECTURE_FILE, doc))
