"""A run's operating points: more results from its trained model (SVD training's ``energies``), each
compressed, fine-tuned and measured into ``<run dir>/<label>/results.json`` with checkpoints of its own,
from the random state at the end of training, so that a resumed point equals an uninterrupted one."""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path

from torch import nn

from . import distributed
from .checkpoint import BEFORE_COMPRESS, RunCheckpoints
from .held_dirs import watched
from .methods.base import Method
from .plan import RunPlan
from .results import RESULTS_FILE, RunRecord, dotted
from .rundir import check_point_dir
from .seeding import rng_state, set_rng_state
from .stages import Leg, StageRunner, recorded
from .workbench import Workbench

log = logging.getLogger("svdbench")

__all__ = ["OperatingPoints", "Trained"]

#: what an operating point does not inherit from the main result's record: its own measurements
MEASURED = ("top1", "val_top1", "macs", "macs_total", "params", "speedup", "compression", "mac_counter",
            "method_details", "latency", "model_path", "files")  # fmt: skip


@dataclasses.dataclass
class Trained:
    """Where every operating point starts: a copy of the trained model, the random state and the main
    record's progress at the end of the last stage before compression."""

    model: nn.Module
    rng: dict
    progress: dict

    @classmethod
    def of(cls, bench: Workbench, model: nn.Module, rec: RunRecord) -> Trained:
        return cls(copy.deepcopy(model), rng_state(bench.generator), rec.snapshot())


class OperatingPoints:
    """The operating points of one planned run in ``run_dir``: ``(label, method)`` pairs, each method a
    configured copy (:meth:`~svdbench.methods.Method.operating_points`)."""

    def __init__(self, plan: RunPlan, run_dir: Path) -> None:
        self.plan, self.dir = plan, run_dir
        self.points = plan.method.operating_points()

    def __bool__(self) -> bool:
        return bool(self.points)

    def config(self, method: Method) -> dict:
        """The recorded config of an operating point: the run's, with the point's method config."""
        return {**copy.deepcopy(self.plan.config), "method": dataclasses.asdict(method.config)}

    def checkpoints(self, label: str, method: Method) -> RunCheckpoints:
        return RunCheckpoints(self.dir / label, self.config(method), method.name, enabled=self.plan.cfg.checkpoint)

    def pending(self) -> list[str]:
        """The operating points without a completed result of their own."""
        return [label for label, m in self.points if self.checkpoints(label, m).completed() is None]

    def make(self, bench: Workbench, runner: StageRunner, main: RunRecord, trained: Trained) -> list[dict]:
        """Every point (a completed one is kept; a failed one is recorded and does not stop the others),
        as the main record's ``operating_points`` entries: label, status, top-1, MACs, path and the
        point's headline settings."""
        entries = []
        step = len(main.history)  # the W&B steps of the main result's epochs come first, then each point's in turn
        for label, method in self.points:
            checkpoints = self.checkpoints(label, method)
            done = checkpoints.completed() if self.plan.cfg.resume else None
            if done is not None:
                rec = RunRecord.from_dict(done)
            else:
                start = self.start_record(main, method, trained.progress)
                leg = Leg(method, start, self.dir / label, checkpoints, label, step, len(start.history))
                self.make_one(bench, runner, leg, trained)
                rec = leg.record
            step += method.finetune_epochs
            entries.append(
                {
                    "label": label,
                    "status": rec.status,
                    "top1": rec.top1,
                    "macs": rec.macs,
                    "path": str(self.dir / label / RESULTS_FILE),
                    "settings": {k: dotted(rec.config, k) for k in method.Config.headline},
                }
            )
        return entries

    def start_record(self, main: RunRecord, method: Method, progress: dict) -> RunRecord:
        """A point's record as it starts: the main record's progress at the end of training (its
        history, ranks, stage top-1 and wall times up to there), none of its measurements."""
        rec = dataclasses.replace(
            copy.deepcopy(main),
            config=self.config(method),
            status="running",
            error=None,
            operating_points=None,
            point_of=str(self.dir),
        )
        rec.restore(progress)
        rec.tracking = main.tracking  # the run's one W&B run, the same record: its steps as logged when cut here
        rec.stage_top1 = {k: v for k, v in rec.stage_top1.items() if k == "dense" or k in BEFORE_COMPRESS}
        rec.wall_time = {k: v for k, v in rec.wall_time.items() if k in BEFORE_COMPRESS}
        for key in MEASURED:
            setattr(rec, key, None)
        return rec

    def make_one(self, bench: Workbench, runner: StageRunner, leg: Leg, trained: Trained) -> None:
        """Compress, fine-tune and measure the point's copy of the trained model into ``leg``, in its directory as
        it was when the point started (checked before every write: :func:`svdbench.held_dirs.watched`)."""
        check_point_dir(self.dir, leg.label)  # as before the run: a link or another's folder put there meanwhile
        with watched(self.dir / leg.label):
            self._make_one(bench, runner, leg, trained)

    def _make_one(self, bench: Workbench, runner: StageRunner, leg: Leg, trained: Trained) -> None:
        rec = leg.record
        if distributed.is_main():
            leg.checkpoints.remove_orphans()  # a killed point's temporary files (a model-sized .deployed.pt.*.tmp)
        if self.plan.cfg.resume:
            leg.checkpoints.load()
        set_rng_state(trained.rng, bench.generator)
        t = time.perf_counter()
        with recorded(leg, runner.guard, contain=True):
            runner.finish(leg, copy.deepcopy(trained.model))
            rec.status = "completed"
        rec.wall_time["point"] = time.perf_counter() - t
        leg.write()
        if rec.status == "completed":
            if not self.plan.cfg.keep_checkpoints and distributed.is_main():
                leg.checkpoints.remove()
            log.info("%s: top1 %.2f, speed-up %.2fx", leg.label, rec.top1, rec.speedup)
