"""Checkpoints and preemption: nothing finished is lost, a cut run resumes exactly.

A checkpoint is a plain dict of tensors and Python scalars, loadable with
``torch.load(weights_only=True)``, written atomically (temporary file, then rename).
:class:`PreemptionGuard` turns SIGTERM / SIGUSR1 / SIGUSR2 (SLURM preemption) into a flag the training
loop polls; the loop then saves a mid-epoch checkpoint and raises :class:`Preempted`.
"""

from __future__ import annotations

import pickle
import signal
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, Preempted, one_line
from .results import atomic_torch_save

__all__ = ["CheckpointError", "Preempted", "PreemptionGuard", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    return atomic_torch_save(state, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True``; any failure is one :class:`CheckpointError` naming the file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({one_line(err)})") from None
    if not isinstance(state, dict) or "version" not in state:
        raise CheckpointError(f"checkpoint {path} is not a svdbench checkpoint")
    return state


class PreemptionGuard:
    """Within ``with PreemptionGuard() as g:``, SIGTERM, SIGUSR1 and SIGUSR2 set ``g.signum`` instead of
    killing the process. ``chain()`` afterwards calls the handlers that were installed before
    (e.g. submitit's requeue handler), so a cluster launcher still sees the signal."""

    #: SIGTERM (kill, scancel), SIGUSR1 (SLURM --signal=USR1@...), SIGUSR2 (submitit's default warning)
    SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, n))

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __enter__(self) -> PreemptionGuard:
        for s in self.SIGNALS:
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)

    def __call__(self) -> bool:
        return self.signum is not None

    def chain(self) -> None:
        """Deliver the caught signal to the handler that was installed before the guard."""
        prev = self._previous.get(self.signum) if self.signum is not None else None
        if callable(prev):
            prev(self.signum, None)
