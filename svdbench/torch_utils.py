"""Small PyTorch helpers shared across svdbench: eval mode for a measuring pass, an example input."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = ["eval_mode", "example_input", "model_device"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (BatchNorm statistics frozen, dropout off) for a measuring or tracing
    pass; its training flag is restored afterwards, also after an exception."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (or buffer); None for a model without tensors."""
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return None if t is None else t.device


def example_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """A zero batch of one sample, ``(1, *input_shape[1:])``, on the model's device."""
    return torch.zeros((1, *tuple(input_shape)[1:]), device=model_device(model) or "cpu")
