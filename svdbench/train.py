"""The one training loop every method goes through.

``train_stage`` runs ``epochs`` epochs of SGD/Adam on ``task loss + method.regularization``,
calling the method's hooks (``before_forward``, ``after_backward``, ``after_step``, ``on_epoch_end``); on a terminal a
progress bar per epoch shows loss and accuracy. A non-finite loss stops the stage with
:class:`DivergedError`; a caught signal with :class:`Preempted` after a checkpoint.

The speed options (:class:`~svdbench.optim.Accel`) apply mixed precision around the forward pass,
channels-last memory format and ``torch.compile`` to the model being trained. With
``StageOptions.ddp`` (torchrun, :mod:`svdbench.distributed`) the model is trained inside
DistributedDataParallel and the epoch's metrics are summed over the ranks. The method hooks, the
regularisers (in fp32, outside autocast) and evaluation always see the plain model.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .errors import CheckpointError, DivergedError, Preempted, one_line
from .evaluation import check_labels, evaluate
from .optim import Accel, OptimConfig, make_optimizer, make_scheduler
from .seeding import rng_state, set_rng_state

__all__ = ["StageHooks", "StageOptions", "train_stage"]


@dataclass
class StageOptions:
    """What :func:`train_stage` trains: ``epochs`` epochs of ``optim`` under the name ``stage`` on
    ``device``, with a progress bar (drawn only on a terminal), the speed options ``accel`` and, with
    ``ddp``, DistributedDataParallel (every rank calls :func:`train_stage` together); ``epoch_eval``:
    the splits evaluated after every epoch (``test``, ``val``)."""

    epochs: int
    optim: OptimConfig
    stage: str
    device: torch.device | str = "cpu"
    progress: bool = True
    accel: Accel = field(default_factory=Accel)
    ddp: bool = False
    epoch_eval: tuple[str, ...] = ("test", "val")


@dataclass
class StageHooks:
    """What :func:`train_stage` reports to and takes from its caller, all optional: ``on_epoch(record)``
    after every epoch, ``save(state)`` with a checkpoint state, ``stop()`` polled for preemption (its
    ``signum`` names the signal, as :class:`~svdbench.checkpoint.PreemptionGuard`'s does) and
    ``resume``, a state ``save`` received, to continue from."""

    on_epoch: Callable[[dict], None] | None = None
    save: Callable[[dict], None] | None = None
    stop: Callable[[], bool] | None = None
    resume: dict | None = None
    #: ``early(steps, seconds)`` once, after the first :data:`EARLY_STEPS` training steps of the stage run here
    early: Callable[[int, float], None] | None = None


#: the training steps after which a stage first says how long it will take (:attr:`StageHooks.early`)
EARLY_STEPS = 20


class _Step:
    """One optimisation step and what it owns: the optimiser, the schedule, the fp16 GradScaler, the
    autocast context and the count of steps taken (which the method's hooks receive)."""

    def __init__(self, model: nn.Module, method, options: StageOptions, steps: int) -> None:
        accel, self.dev_type = options.accel, torch.device(options.device).type
        self.model, self.net, self.method, self.stage = model, model, method, options.stage
        self.channels_last, self.count = accel.channels_last, 0
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accel.amp)
        self.scaler = torch.amp.GradScaler(self.dev_type) if accel.amp == "fp16" else None
        if accel.channels_last:
            model.to(memory_format=torch.channels_last)
        self.opt = make_optimizer(model, options.optim)
        self.sched = make_scheduler(self.opt, options.optim, steps)

    def wrap(self, options: StageOptions) -> None:
        """Run the forward pass through DistributedDataParallel (``ddp``) and ``torch.compile``; the
        method's hooks keep the plain model."""
        if options.ddp:
            self.net = distributed.wrap(self.model, torch.device(options.device))
        if options.accel.compile:
            self.net = torch.compile(self.net)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.dev_type, dtype=self.amp_dtype)

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.count,
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.count = state["step"]
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """``method.before_forward``, then forward ``x`` (under autocast) and return (output, task loss,
        regulariser or None, loss)."""
        self.method.before_forward(self.model, self.count, self.stage)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = self.net(x)
        check_labels(y, out.shape[1], "a training")  # a Dataset's label past the first sample's check
        task = F.cross_entropy(out.float(), y)
        reg = self.method.regularization(self.model, self.stage)  # fp32, outside autocast
        return out, task, reg, task if reg is None else task + reg

    def update(self, loss: torch.Tensor) -> None:
        """Backward, ``method.after_backward``, optimiser and scheduler steps, ``method.after_step``."""
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.method.after_backward(self.model, self.count, self.stage)
            self.opt.step()
        else:  # fp16: scaled backward; hooks and clipping see the unscaled gradients
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
            self.method.after_backward(self.model, self.count, self.stage)
            self.scaler.step(self.opt)
            self.scaler.update()
        self.sched.step()
        self.method.after_step(self.model, self.count, self.stage)
        self.count += 1


class _StopAgreement:
    """Whether the stage stops early: a non-finite loss (:class:`DivergedError`) or a signal that
    ``stop`` caught (:class:`Preempted`). Under DDP every rank stops at the same step: each step
    all-reduces [loss non-finite, signal] before backward, each epoch end the signal."""

    def __init__(self, stop: Callable[[], bool] | None, ddp: bool) -> None:
        self._stop, self._ddp, self._agreed = stop, ddp, 0

    def local_signal(self) -> int:
        """The signal this process caught, ``stop.signum`` (SIGTERM when it has none); 0: none."""
        if self._stop is None or not self._stop():
            return 0
        return getattr(self._stop, "signum", None) or int(signal.SIGTERM)

    def check(self, loss: torch.Tensor, stage: str, epoch: int) -> None:
        """Before backward: raise :class:`DivergedError` when the loss is not finite (on any rank)."""
        if self._ddp:
            bad, self._agreed = distributed.all_reduce_max([int(not torch.isfinite(loss)), self.local_signal()])
            if bad:
                what = loss.item() if not torch.isfinite(loss) else "non-finite on another rank"
                raise DivergedError(f"loss became {what} in stage {stage!r}, epoch {epoch + 1}")
        elif not torch.isfinite(loss):
            raise DivergedError(f"loss became {loss.item()} in stage {stage!r}, epoch {epoch + 1}")

    def after_step(self) -> int:
        """The signal to stop on after this step (0: go on); under DDP the one agreed in :meth:`check`."""
        return self._agreed if self._ddp else self.local_signal()

    def after_epoch(self) -> int:
        """The signal to stop on after this epoch (0: go on), agreed by every rank under DDP."""
        return distributed.all_reduce_max([self.local_signal()])[0] if self._ddp else self.local_signal()


_NO_SUMS = (0, 0, 0.0, 0.0)


class _Metrics:
    """Running sums of an epoch's training batches: samples seen, correct predictions, task loss and
    regulariser (each weighted by the batch size)."""

    def __init__(self, sums=_NO_SUMS) -> None:
        self.seen, self.correct, self.loss_sum, self.reg_sum = sums

    def add(self, out: torch.Tensor, y: torch.Tensor, task: torch.Tensor, reg: torch.Tensor | None) -> None:
        b = y.numel()
        self.seen += b
        self.loss_sum += task.item() * b
        self.reg_sum += (0.0 if reg is None else reg.item()) * b
        self.correct += (out.argmax(1) == y).sum().item()

    def sums(self) -> list:
        return [self.seen, self.correct, self.loss_sum, self.reg_sum]

    def global_sums(self, ddp: bool) -> list:
        """The sums over all ranks (under DDP every rank must call this together)."""
        if not ddp:
            return self.sums()
        seen, correct, loss_sum, reg_sum = distributed.all_reduce_sums(self.sums())
        return [int(seen), int(correct), loss_sum, reg_sum]

    def postfix(self) -> dict:
        return {"loss": f"{self.loss_sum / self.seen:.3f}", "acc": f"{100 * self.correct / self.seen:.1f}"}

    def record(self, stage: str, epoch: int, ev: dict, lr: float) -> dict:
        """The epoch's record: ``epoch`` counts from 1, ``ev`` is :func:`evaluate`'s result."""
        return {
            "stage": stage,
            "epoch": epoch,
            "train_loss": self.loss_sum / self.seen,
            "reg_loss": self.reg_sum / self.seen,
            "train_top1": 100 * self.correct / self.seen,
            "test_top1": ev["top1"],
            "test_loss": ev["loss"],
            "lr": lr,
        }


def _bar(train, desc: str, progress: bool):
    """``train`` with a per-epoch progress bar, drawn only when asked for and stderr is a terminal
    (redirected to a file, every refresh would be a line of its own)."""
    drawn = progress and sys.stderr is not None and sys.stderr.isatty()
    return tqdm(train, total=len(train), desc=desc, disable=not drawn, leave=False, dynamic_ncols=True, initial=0)


def train_stage(
    model: nn.Module, method, train, test, options: StageOptions, hooks: StageHooks | None = None, val=None
) -> list[dict]:
    """Train ``model`` for ``options.epochs`` epochs; returns one record per epoch (stage, epoch,
    train_loss, reg_loss, train_top1, test_top1, test_loss, lr, and with ``val`` batches val_top1
    and val_loss).

    Every step: ``method.before_forward``; the loss of a batch (task loss plus
    ``method.regularization``); a non-finite loss raises :class:`DivergedError`; backward,
    ``method.after_backward``, optimiser and scheduler steps, ``method.after_step``; the running
    metrics. When ``hooks.stop()`` turns true mid-epoch,
    ``hooks.save`` receives a mid-epoch state and :class:`Preempted` is raised.
    Every epoch end: ``method.on_epoch_end``, evaluation on ``test`` (and ``val``), ``hooks.on_epoch(record)``,
    ``hooks.save(state)``, then :class:`Preempted` if ``hooks.stop()`` is true and epochs remain.

    A state passed back as ``hooks.resume`` continues exactly where it was taken: model, optimiser,
    schedule, fp16 GradScaler, random generators, the position inside the epoch and the running sums.
    Under ``options.ddp`` every rank trains its shard of ``train``: metrics are summed over the ranks,
    BatchNorm buffers follow rank 0 at each epoch end, and all ranks stop at the same step.
    """
    hooks = hooks or StageHooks()
    if options.epochs <= 0:
        return []
    stage, epochs, resume = options.stage, options.epochs, hooks.resume
    gen = getattr(train, "generator", None)
    step = _Step(model, method, options, epochs * len(train))
    history, first_epoch, skip, sums = [], 0, 0, _NO_SUMS
    if resume is not None:
        try:  # an edited or foreign state: one line (the caller names the file), never a traceback
            model.load_state_dict(resume["model"])
            step.load_state_dict(resume)
            for p, st in step.opt.state.items():  # Adam's moments of another shape would fail at the first step
                if any(torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape for v in st.values()):
                    raise ValueError(f"optimizer state of shape other than its parameter's {tuple(p.shape)}")
            history, first_epoch, skip = list(resume["history"]), resume["epoch"], resume["step_in_epoch"]
            if not options.ddp or distributed.is_main():  # the saved sums are over all ranks: count them once
                sums = tuple(resume["sums"])
            if skip:
                set_rng_state(resume["rng"], gen)  # checked now, applied again at the cut's step
            set_rng_state(resume["rng_epoch_start"] if skip else resume["rng"], gen)
        except (KeyError, IndexError, ValueError, TypeError, RuntimeError, AttributeError) as err:
            raise CheckpointError(f"does not fit this run ({one_line(err, with_type=True)})") from None
    step.wrap(options)
    stops = _StopAgreement(hooks.stop, options.ddp)

    def state(epoch: int, k: int, start_rng: dict, running: list) -> dict:
        """A checkpoint state at step ``k`` of ``epoch`` (``running``: the epoch's sums so far)."""
        return {
            "model": model.state_dict(),
            **step.state_dict(),  # optimizer, scheduler, step (and scaler)
            "history": list(history),
            "epoch": epoch,
            "step_in_epoch": k,
            "rng": rng_state(gen),
            "rng_epoch_start": start_rng,
            "sums": list(running),
        }

    early_at, t_early = (EARLY_STEPS + skip, time.perf_counter()) if hooks.early is not None else (None, 0.0)
    for epoch in range(first_epoch, epochs):
        step.net.train()
        start_rng = rng_state(gen)
        metrics = _Metrics(sums if skip else _NO_SUMS)
        bar = _bar(train, f"{stage} {epoch + 1}/{epochs}", options.progress)
        for k, (x, y) in enumerate(bar):
            if k < skip:  # replay the data order and augmentation draws of a cut epoch
                if k == skip - 1:
                    set_rng_state(resume["rng"], None)  # torch's generators as they were at the cut
                continue
            x, y = x.to(options.device, non_blocking=True), y.to(options.device, non_blocking=True)
            out, task, reg, loss = step.loss(x, y)
            stops.check(loss, stage, epoch)
            step.update(loss)
            metrics.add(out, y, task, reg)
            bar.set_postfix(**metrics.postfix())
            if early_at is not None and epoch == first_epoch and k + 1 == early_at and k + 1 < len(train):
                hooks.early(EARLY_STEPS, time.perf_counter() - t_early)
                early_at = None
            sig = stops.after_step()
            if sig and k + 1 < len(train):
                if hooks.save is not None:
                    hooks.save(state(epoch, k + 1, start_rng, metrics.global_sums(options.ddp)))
                raise Preempted(sig)
        skip = 0
        if options.ddp:
            distributed.broadcast_buffers(model)  # BatchNorm statistics: rank 0's, as DDP's next forward would
            metrics = _Metrics(metrics.global_sums(True))
        method.on_epoch_end(model, epoch, stage)
        tested = evaluate(model, test, options.device) if "test" in options.epoch_eval else {"top1": None, "loss": None}
        rec = metrics.record(stage, epoch + 1, tested, step.lr)
        if val is not None and "val" in options.epoch_eval:
            ev = evaluate(model, val, options.device)
            rec.update(val_top1=ev["top1"], val_loss=ev["loss"])
        history.append(rec)
        if hooks.on_epoch is not None:
            hooks.on_epoch(rec)
        if hooks.save is not None:
            hooks.save(state(epoch + 1, 0, start_rng, list(_NO_SUMS)))
        sig = stops.after_epoch()
        if sig and epoch + 1 < epochs:
            raise Preempted(sig)
    return history
