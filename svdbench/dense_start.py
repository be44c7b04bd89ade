"""The dense start's checkpoint as a file: where it lies (``dense.pt`` in a run directory), reading it as a
plain state_dict, and the digest of its tensors that identifies which weights a run started from. Apart from
:mod:`svdbench.checkpoint` (which imports the methods) so that a method may read it too (``method=scratch``)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import InputError, load_failure
from .jsonfile import open_regular, read_json

__all__ = [
    "DENSE_CHECKPOINT",
    "dense_checkpoint_path",
    "dense_digest",
    "read_dense_state",
    "start_differences",
    "state_digest",
]

#: the dense weights a run saves in its directory, which ``init_from`` names
DENSE_CHECKPOINT = "dense.pt"


def state_digest(state: dict[str, Any]) -> str:
    """``tensors-sha256:<hex>`` of a state_dict: every tensor's name, dtype, shape and bytes, in name
    order. Which weights a run started from, whatever file they were saved in (``torch.save``'s zip
    archive names its members after the file, so two saves of the same weights differ as files)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not torch.is_tensor(t):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"tensors-sha256:{h.hexdigest()}"


def dense_digest(path: str | Path) -> str:
    """:func:`state_digest` of the dense checkpoint at ``path`` (a ``dense.pt`` or its run directory)."""
    return state_digest(read_dense_state(dense_checkpoint_path(path)))


def dense_checkpoint_path(path: str | Path) -> Path:
    """``path/dense.pt`` for a run directory, ``path`` itself for a file."""
    p = Path(path)
    return p / DENSE_CHECKPOINT if p.is_dir() else p


def read_dense_state(p: Path) -> dict[str, Any]:
    if not p.exists():  # a FIFO or device there is "not a regular file", below
        raise InputError(f"init_from: no dense checkpoint at {p}")
    try:
        with open_regular(p) as f, warnings.catch_warnings():  # torch's note on a raw pickle: the line below says
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"init_from: cannot read {p}: {load_failure(err, p)}") from None
    if not isinstance(state, dict):
        raise InputError(f"init_from: {p} is not a state_dict")
    return state


def start_differences(path: str | Path, dataset: str, seed: int | None, num_val: int) -> list[str]:
    """How the run that trained the dense start at ``path`` (its ``results.json`` beside ``dense.pt``) differs from
    a run on ``dataset`` with ``seed`` that holds out ``num_val`` validation images: another dataset, another
    seed (seeds that share a start are not independent), or fewer images held out (it trained on images this run
    validates on). Empty where it does not, or where no record says (a ``dense.pt`` of one's own)."""
    try:
        rec = read_json(dense_checkpoint_path(path).parent / "results.json")
    except (OSError, ValueError):
        return []
    if not isinstance(rec, dict):
        return []
    out = []
    if "seed" in rec and rec["seed"] != seed:
        out.append(f"it was trained with seed {rec['seed']}, this run has seed {seed}")
    if isinstance(rec.get("dataset"), str) and rec["dataset"] != dataset:
        return [f"it was trained on dataset {rec['dataset']}, this run uses {dataset}", *out]
    held = (rec.get("samples") or {}).get("val") if isinstance(rec.get("samples"), dict) else None
    if isinstance(held, int) and not isinstance(held, bool) and held < num_val:  # the split is drawn with a fixed seed
        out.append(f"it held out {held} validation images, this run {num_val}: it trained on images this run "
                   "validates on")  # fmt: skip
    return out
