"""What every stage of a run works with, set up once before any training: the seeded random state,
the device and its speed options, the process group under torchrun, the batched data, the model as
built (with the ``init_from`` weights), its dense MAC count and the input shape.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from . import distributed
from .checkpoint import architecture, load_dense_checkpoint, resume_key
from .data import DataBundle, load_dataset
from .dense_start import start_differences
from .errors import InputError, one_line
from .evaluation import evaluate
from .macs import MacCount, analyze_macs
from .models import build_from_config
from .optim import Accel, resolve_accel
from .paper_macs import paper_macs
from .plan import RunPlan
from .seeding import seed_everything

log = logging.getLogger("svdbench")

__all__ = ["Workbench", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU. Under torchrun (``WORLD_SIZE > 1``) a CUDA
    process takes GPU ``$LOCAL_RANK`` of its node."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("trainer.device=cuda but no CUDA device is available")
    if name == "cuda" and distributed.world_size() > 1:
        index, count = distributed.local_rank(), torch.cuda.device_count()
        if index >= count:
            raise InputError(f"LOCAL_RANK={index} but this node has {count} CUDA device(s): one process per GPU")
        return torch.device("cuda", index)
    return torch.device(name)


class Workbench:
    """Seed, device, process group, data, model, its dense MACs, the method's ``check`` and the
    starting point (``init_from``), in that order; raises InputError before any training."""

    def __init__(self, plan: RunPlan) -> None:
        cfg, tr = plan.cfg, plan.cfg.trainer
        self.cfg = cfg
        seed_everything(cfg.seed, tr.deterministic)
        self.device: torch.device = resolve_device(tr.device)
        self.owns_group: bool = distributed.init(self.device)  # torchrun: join the process group
        if distributed.initialized():  # every rank the same experiment (where data lives, workers, logging may differ)
            try:
                distributed.check_same_config(resume_key(plan.config, plan.method.name))
            except ValueError as err:
                if self.owns_group:  # left before the line: a process group alive at exit can abort the process
                    distributed.cleanup()
                raise InputError(one_line(err)) from None
        self.accel: Accel = resolve_accel(
            self.device, tr.amp, tr.channels_last, tr.compile, tr.cudnn_benchmark, tr.deterministic
        )
        torch.backends.cudnn.benchmark = self.accel.cudnn_benchmark
        self.data: DataBundle = load_dataset(
            cfg.dataset,
            batch_size=tr.batch_size,
            eval_batch_size=tr.eval_batch_size,
            seed=cfg.seed,
            device=self.device,
            num_workers=tr.num_workers,
            shard=distributed.shard(),
        )
        self.model: nn.Module = self.build_model()
        self.input_shape: tuple[int, ...] = (1, *self.data.input_shape)
        self._check_output(cfg.model.name)  # first: a lazy module takes its sizes, a tuple is named as one
        #: the dense architecture (state_dict names and shapes), before a method's ``prepare`` changes it
        self.dense_architecture: dict[str, tuple[int, ...]] = architecture(self.model)
        try:
            self.dense_count: MacCount = analyze_macs(self.model, self.input_shape)
        except Exception as err:  # shape errors surface as RuntimeError, AssertionError, ValueError ...
            raise self._cannot_take(err) from None
        #: the dense model's MACs in the SVD authors' convention (conv layers only; svdbench.paper_macs)
        self.dense_paper_macs: int = paper_macs(self.model, self.input_shape)
        try:
            plan.method.check(self.model, self.input_shape)
        except ValueError as err:
            raise InputError(one_line(err)) from None
        if plan.init_from is not None:
            load_dense_checkpoint(self.model, plan.init_from)
            if distributed.is_main():
                for why in start_differences(plan.init_from, cfg.dataset.name, cfg.seed, self.data.num_val):
                    log.warning("init_from %s: %s", plan.init_from, why)
        #: the data-order generator a checkpoint carries (None for DataLoader splits)
        self.generator: torch.Generator | None = getattr(self.data.train, "generator", None)

    def _check_output(self, name: str) -> None:
        """The model maps a batch of inputs to one logit per class, (N, num_classes): InputError otherwise (a
        model of one's own with another head would fail in the first training step, or blame the labels)."""
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(torch.zeros(2, *self.data.input_shape))
        except Exception as err:  # shape errors surface as RuntimeError, AssertionError, ValueError ...
            raise self._cannot_take(err) from None
        finally:
            self.model.train(was)
        want = (2, self.data.num_classes)
        if not torch.is_tensor(out) or tuple(out.shape) != want:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise InputError(
                f"model {name} gives outputs of shape {got} for 2 images: expected {want} (one logit per class)"
            )

    def _cannot_take(self, err: Exception) -> InputError:
        return InputError(f"model {self.cfg.model.name} cannot take input {tuple(self.data.input_shape)}: "
                          f"{one_line(err)}")  # fmt: skip

    def build_model(self) -> nn.Module:
        """A fresh model of the run's architecture (randomly initialised)."""
        try:
            return build_from_config(self.cfg.model, self.data.num_classes, self.data.input_shape[0])
        except InputError:
            raise
        except (ValueError, TypeError) as err:  # e.g. a model.kwargs value of the wrong type
            raise InputError(f"model {self.cfg.model.name}: {one_line(err)}") from None
        except Exception as err:  # a model of one's own failing, a layer too large to allocate (10**9 classes)
            raise InputError(
                f"model {self.cfg.model.name} cannot be built for {self.data.num_classes} classes and "
                f"{self.data.input_shape[0]} input channels: {one_line(err, with_type=True)}"
            ) from None

    def test_top1(self, model: nn.Module) -> float:
        return evaluate(model, self.data.test, self.device)["top1"]

    def val_top1(self, model: nn.Module) -> float | None:
        """Top-1 on the held-out validation split (None without one)."""
        return None if self.data.val is None else evaluate(model, self.data.val, self.device)["top1"]

    def close(self) -> None:
        """Leave the process group (torchrun) once every rank is done."""
        distributed.barrier()  # no rank leaves before rank 0 has written everything
        if self.owns_group:
            distributed.cleanup()
