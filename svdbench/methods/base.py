"""The method protocol: what a compression method adds to the shared pipeline.

The pipeline calls, in order: ``prepare`` (e.g. decompose) -> training stage ``"train"`` (the loop
calls ``regularization``, ``after_backward``, ``after_step``, ``on_epoch_end``) -> ``compress``
(e.g. prune) -> training stage ``"finetune"`` for ``finetune_epochs`` -> ``export`` (the deployed,
physically smaller model). No method owns a loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Method:
    """Base class: the dense method's behaviour (no extra loss, no compression)."""

    name = "base"
    compresses = False
    #: needs a trained dense model before ``prepare`` (post-hoc methods): without ``init_from``
    #: the pipeline first trains one (stage ``"pretrain"``, ``trainer.epochs`` epochs)
    pretrain_dense = False
    #: epochs of the ``"train"`` stage; None means ``trainer.epochs``
    train_epochs: int | None = None

    def __init__(self, finetune_epochs: int = 0, **unused: Any) -> None:
        self.finetune_epochs = int(finetune_epochs)

    def check(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        """Before any training: raise ValueError (one line) for a setting this dense model cannot
        satisfy, e.g. a pruning target out of reach."""

    def prepare(self, model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
        return model

    def regularization(self, model: nn.Module, stage: str) -> torch.Tensor | None:
        return None

    def after_backward(self, model: nn.Module, step: int, stage: str) -> None:
        """Between ``backward()`` and ``optimizer.step()``: gradients may be changed here."""

    def after_step(self, model: nn.Module, step: int, stage: str) -> None:
        """After ``optimizer.step()``: weights may be changed here."""

    def on_epoch_end(self, model: nn.Module, epoch: int, stage: str) -> None:
        """After each epoch of a stage, before evaluation."""

    def compress(self, model: nn.Module) -> dict:
        """Make the model smaller; returns method details for results.json."""
        return {}

    def export(self, model: nn.Module) -> nn.Module:
        """The deployed model made of plain layers."""
        return model

    def state_dict(self) -> dict:
        """The method's own training state (masks, counters) for checkpoints: tensors and scalars."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def details(self) -> dict:
        """Settings recorded in results.json under ``method_details``."""
        return {"finetune_epochs": self.finetune_epochs}
