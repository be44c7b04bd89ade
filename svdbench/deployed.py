"""The deployed model stored as data: rebuilt without unpickling code.

A deployed model svdbench makes is the dense model of the run's architecture with some modules replaced
or reshaped by plain layers: a conv (or linear) replaced by an ``nn.Sequential`` of two smaller ones, or
narrowed by filter pruning, with its BatchNorm. A run directory holds it as two files:

- ``deployed.json``, the architecture as data: the model config (as results.json records it), the class
  count, the input channels, and one record per module whose type or constructor arguments differ from
  the dense model's module of the same name (or that the dense model lacks), parents before children::

      {"name": "layer1.0.conv1", "kind": "Sequential", "args": {"children": ["0", "1"]}}
      {"name": "layer1.0.conv1.0", "kind": "Conv2d", "args": {"in_channels": 16, "out_channels": 5, ...}}

- ``deployed.pt``, its ``state_dict``, read with ``torch.load(weights_only=True)`` (tensors only).

:func:`rebuild` builds the dense model, applies the records (new modules on the meta device, so a forged
size allocates nothing) and loads the state dict with ``strict=True``. A ``model.pt`` of older versions
is a pickled module: :func:`load_deployed` reads it only with ``trust=True``, and so it builds a model
named by ``model._target_`` (that imports code named in the file).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import load_failure, one_line
from .jsonfile import open_regular, read_json
from .models import build_from_config

__all__ = [
    "ARCHITECTURE_FILE",
    "KINDS",
    "LEGACY_FILE",
    "WEIGHTS_FILE",
    "TrustRequired",
    "apply_records",
    "dense_model",
    "describe",
    "document",
    "load_deployed",
    "read_document",
    "rebuild",
]

ARCHITECTURE_FILE = "deployed.json"
WEIGHTS_FILE = "deployed.pt"
#: the pickled module of svdbench before the architecture was stored as data
LEGACY_FILE = "model.pt"
FORMAT, VERSION = "svdbench.deployed", 1

_BN = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_CONV = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "padding_mode",
)
#: the module kinds a record may hold, and their constructor arguments
KINDS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "Conv2d": (nn.Conv2d, _CONV),
    "Linear": (nn.Linear, ("in_features", "out_features", "bias")),
    "BatchNorm1d": (nn.BatchNorm1d, _BN),
    "BatchNorm2d": (nn.BatchNorm2d, _BN),
    "Sequential": (nn.Sequential, ("children",)),
}
_KIND_OF = {cls: kind for kind, (cls, _) in KINDS.items()}


class TrustRequired(ValueError):
    """Loading this would run code named or pickled in the file: only with ``trust``."""


def _args(module: nn.Module) -> dict[str, Any] | None:
    """The constructor arguments of a module of one of :data:`KINDS` (JSON types), None for another type."""
    kind = _KIND_OF.get(type(module))
    if kind is None:
        return None
    if kind == "Sequential":
        return {"children": [name for name, _ in module.named_children()]}
    out = {}
    for key in KINDS[kind][1]:
        value = getattr(module, key)
        out[key] = module.bias is not None if key == "bias" else list(value) if isinstance(value, tuple) else value
    return out


def describe(deployed: nn.Module, dense: nn.Module) -> list[dict[str, Any]]:
    """The records that turn ``dense`` into ``deployed``'s architecture: every module whose type or
    constructor arguments differ from ``dense``'s module of the same name, or that ``dense`` lacks, in
    module order. ValueError (one line) for a module of another kind, or a difference the records cannot
    express (checked by applying them to a copy of ``dense``)."""
    if type(deployed) is not type(dense):
        raise ValueError(f"the deployed model is a {type(deployed).__name__}, the dense model a {type(dense).__name__}")
    reference = dict(dense.named_modules())
    records = []
    for name, module in deployed.named_modules():
        ref = reference.get(name)
        if not name or (ref is not None and type(ref) is type(module) and _args(ref) == _args(module)):
            continue
        args = _args(module)
        if args is None:
            raise ValueError(f"cannot store module {name!r} of type {type(module).__name__} as data")
        records.append({"name": name, "kind": _KIND_OF[type(module)], "args": args})
    rebuilt = apply_records(copy.deepcopy(dense).to("meta"), records, device="meta")
    ours = [(n, type(m)) for n, m in rebuilt.named_modules()]
    theirs = [(n, type(m)) for n, m in deployed.named_modules()]
    shapes = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if ours != theirs or shapes != {k: tuple(v.shape) for k, v in deployed.state_dict().items()}:
        diff = next((f"{b[0]!r} ({b[1].__name__})" for a, b in zip(ours, theirs, strict=False) if a != b), "a tensor")
        raise ValueError(f"the deployed model differs from the dense model beyond what records express, at {diff}")
    return records


def _checked(record: Any) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(record, dict) or set(record) != {"name", "kind", "args"}:
        raise ValueError(f"a module record must have name, kind and args: {str(record)[:80]}")
    name, kind, args = record["name"], record["kind"], record["args"]
    if not isinstance(name, str) or not name or kind not in KINDS or not isinstance(args, dict):
        raise ValueError(f"bad module record {name!r} of kind {kind!r}: choose the kind from {', '.join(KINDS)}")
    if set(args) != set(KINDS[kind][1]):
        raise ValueError(f"module {name!r} ({kind}) needs the arguments {', '.join(KINDS[kind][1])}")
    return name, kind, args


def _make(kind: str, args: dict[str, Any], old: nn.Module | None, device: str | torch.device | None) -> nn.Module:
    if kind == "Sequential":
        children = args["children"]
        if not isinstance(children, list) or not all(isinstance(c, str) and c and "." not in c for c in children):
            raise ValueError(f"Sequential children must be a list of names, got {str(children)[:80]}")
        kept = dict(old.named_children()) if old is not None else {}
        return nn.Sequential(OrderedDict((c, kept.get(c, nn.Identity())) for c in children))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    return KINDS[kind][0](**values, device=device)


def apply_records(model: nn.Module, records: list, device: str | torch.device | None = None) -> nn.Module:
    """Apply :func:`describe`'s records to ``model`` (the dense model) in order, in place, and return it.
    A new module is built with its constructor arguments on ``device`` (its own initialisation); a new
    Sequential keeps the children of the module it replaces that it names. ValueError (one line) for a
    record that does not fit the model."""
    if not isinstance(records, list):
        raise ValueError("the module records must be a list")
    for record in records:
        name, kind, args = _checked(record)
        parent_name, _, leaf = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name) if parent_name else model
        except AttributeError:
            raise ValueError(f"module {name!r}: the model has no module {parent_name!r}") from None
        if leaf not in parent._modules and hasattr(parent, leaf):
            raise ValueError(f"module {name!r}: {leaf!r} is an attribute of {type(parent).__name__}, not a module")
        try:
            new = _make(kind, args, parent._modules.get(leaf), device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"module {name!r} ({kind}): {one_line(err)}") from None
        setattr(parent, leaf, new)
    return model


def document(
    deployed: nn.Module, dense: nn.Module, model_config: dict, num_classes: int, in_channels: int
) -> dict[str, Any]:
    """``deployed.json``'s content: ``deployed`` described against ``dense``, the dense model of the model
    config ``model_config`` (results.json's ``config.model``) for ``num_classes`` and ``in_channels``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model_config,
        "num_classes": int(num_classes),
        "in_channels": int(in_channels),
        "weights": WEIGHTS_FILE,
        "modules": describe(deployed, dense),
    }


def read_document(run_dir: str | Path) -> dict[str, Any]:
    """The ``deployed.json`` of a run directory, checked for its format; ValueError in one line."""
    path = Path(run_dir) / ARCHITECTURE_FILE
    try:
        doc = read_json(path)  # a regular file of bounded size only
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read: {one_line(err)}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"{path} is not a svdbench deployed-model file of version {VERSION}")
    if not isinstance(doc.get("model"), dict) or not isinstance(doc.get("modules"), list):
        raise ValueError(f"{path} has no model config or no module records")
    return doc


def dense_model(doc: dict[str, Any], trust: bool = False) -> nn.Module:
    """The dense model of ``doc``'s architecture (random weights). A model named by ``model._target_``
    imports code the file names: TrustRequired without ``trust``."""
    target = doc["model"].get("_target_")
    if target and not trust:
        raise TrustRequired(f"model._target_ {target!r} names code to import: --trust, only for files you made")
    return build_from_config(doc["model"], int(doc["num_classes"]), int(doc["in_channels"]), weights=False)


def rebuild(doc: dict[str, Any], state: dict[str, torch.Tensor], trust: bool = False) -> nn.Module:
    """The deployed model of ``doc`` (:func:`document`) with the weights ``state``, in eval mode: the dense
    model, the records applied, the state dict loaded with ``strict=True``."""
    model = apply_records(dense_model(doc, trust), doc["modules"], device="meta")
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def load_deployed(run_dir: str | Path, trust: bool = False) -> nn.Module:
    """The deployed model saved in ``run_dir``, on the CPU, in eval mode: from ``deployed.json`` and
    ``deployed.pt`` (tensors only); else an older run's pickled ``model.pt``, only with ``trust`` (loading
    it can run code: TrustRequired without). FileNotFoundError when the run saved none."""
    run_dir = Path(run_dir)
    if os.path.lexists(run_dir / ARCHITECTURE_FILE):  # a FIFO, a directory, a dangling link: read_document says so
        doc = read_document(run_dir)
        try:
            with warnings.catch_warnings():  # torch's note on a raw pickle: the one line below says what it is
                warnings.simplefilter("ignore", UserWarning)
                with open_regular(run_dir / WEIGHTS_FILE) as f:
                    state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{run_dir / WEIGHTS_FILE}: {load_failure(err, run_dir / WEIGHTS_FILE)}") from None
        return rebuild(doc, state, trust)
    if os.path.lexists(run_dir / LEGACY_FILE):
        if not trust:
            raise TrustRequired(
                f"{LEGACY_FILE} is a pickled module (an older svdbench), and loading it can run code: "
                "--trust to load it, only for files you made"
            )
        try:
            with open_regular(run_dir / LEGACY_FILE) as f:
                return torch.load(f, map_location="cpu", weights_only=False).eval()
        except Exception as err:
            raise ValueError(f"{run_dir / LEGACY_FILE}: {load_failure(err, run_dir / LEGACY_FILE)}") from None
    raise FileNotFoundError(f"no {ARCHITECTURE_FILE} in {run_dir}{_why_none(run_dir)}")


def _why_none(run_dir: Path) -> str:
    """Why a run has no deployed model, as its results.json tells: it wrote one, which is gone since, or it was
    made with ``save_model=false`` (nothing: it does not say)."""
    try:
        rec = read_json(run_dir / "results.json")
    except (OSError, ValueError):
        return ""
    if not isinstance(rec, dict):
        return ""
    if ARCHITECTURE_FILE in (rec.get("files") or []):
        return " (the run wrote it: moved or removed since)"
    config = rec.get("config")
    if isinstance(config, dict) and config.get("save_model") is False:
        return " (the run was made with save_model=false)"
    return ""
