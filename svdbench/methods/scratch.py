"""Scratch: the pruned architecture trained from scratch, the sanity baseline of every compression
result (Liu et al., "Rethinking the value of network pruning", ICLR 2019).

``method.architecture_from=<run dir>`` names a completed run that saved its deployed model
(:mod:`svdbench.deployed`). ``prepare`` applies that run's architecture records to this run's fresh
model and re-initialises every layer at random (each module's ``reset_parameters()``, BatchNorm
statistics included); the ``train`` stage trains it from scratch; nothing is compressed and ``export``
returns the model as trained (it is the deployed architecture already).

The ``train`` stage's epochs, by ``method.budget_rule``:

- ``scratch_e`` (Scratch-E): as many epochs as the source took in all: its dense start (the epochs of
  its ``init_from`` run, or of its own ``pretrain`` stage) plus its epochs after the start;
- ``scratch_b`` (Scratch-B): the same compute: those epochs times the source's dense MACs / deployed
  MACs, rounded to the nearest.

They are worked out when the run is planned and recorded as ``method.epochs`` (results.json's config,
``--cfg job``); a ``method.epochs`` given explicitly is used as it is. Without ``architecture_from``
(the default config, which the plug-in contract builds) the run is plain dense training.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from ..checks import check, check_choice
from ..dense_start import dense_digest
from ..deployed import ARCHITECTURE_FILE, apply_records, read_document
from ..errors import one_line
from ..jsonfile import read_json, read_text
from ..macs import analyze_macs, count_params
from .base import Method, MethodConfig, register_method

RULES = ("scratch_e", "scratch_b")
KEY = "method.architecture_from"
#: the most parameters a source's architecture may have, as a multiple of its dense model's, where its
#: results.json records no count of its own (full-rank spatial SVD doubles them at most)
LARGEST_GROWTH = 16


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    try:
        data = read_json(path)  # a regular file of bounded size only
    except (OSError, ValueError) as err:
        raise ValueError(f"{KEY}: {path} cannot be read ({one_line(err)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{KEY}: {path} is not a svdbench results file")
    return data


def _whole(v: Any, least: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _bad(run_dir: Path, field: str, what: str, value: Any) -> ValueError:
    """The one line for a field of ``run_dir``'s results.json of the wrong type or value."""
    return ValueError(f"{KEY}: {run_dir / 'results.json'}: {field} must be {what}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _launch_dir(run_dir: Path) -> Path | None:
    """The directory ``run_dir``'s run was launched from, as Hydra recorded it (``.hydra/hydra.yaml``'s
    ``hydra.runtime.cwd``; an operating point's: its run's), else None."""
    res = _read_results(run_dir) if (run_dir / "results.json").is_file() else {}
    dirs = [run_dir, *([Path(res["point_of"])] if isinstance(res.get("point_of"), str) else [])]
    for d in dirs:
        try:
            data = yaml.safe_load(read_text(d / ".hydra" / "hydra.yaml"))
        except (OSError, ValueError, yaml.YAMLError, RecursionError):
            continue
        cwd = ((data.get("hydra") or {}).get("runtime") or {}).get("cwd") if isinstance(data, dict) else None
        if isinstance(cwd, str) and os.path.isabs(cwd):
            return Path(cwd)
    return None


def dense_start(run_dir: Path, res: dict[str, Any]) -> Path:
    """The run directory of ``res``'s recorded ``init_from`` (the results of ``run_dir``), as that run resolved
    it: an absolute path as it is, a relative one (recorded by an older svdbench) against the directory the run
    was launched from (:func:`_launch_dir`), never against this process's; ValueError in one line where that
    directory is not recorded, or where the weights there are not those the run started from (its
    ``dense_start`` digest: another run made at that path since)."""
    recorded = res["init_from"]
    if not isinstance(recorded, str):
        raise _bad(run_dir, "init_from", "a path", recorded)
    dense = Path(os.path.expanduser(recorded))
    if not dense.is_absolute():
        launch = _launch_dir(run_dir)
        if launch is None:
            raise ValueError(
                f"{KEY}: {run_dir} records its dense start as the relative path {recorded!r}, and not the directory "
                "it was launched from (.hydra/hydra.yaml): give method.epochs, or make the source again"
            )
        dense = launch / dense
    if dense.name == "dense.pt" or dense.is_file():  # init_from named the dense checkpoint itself
        dense = dense.parent
    digest = res.get("dense_start")
    if isinstance(digest, str) and digest:
        try:
            now = dense_digest(dense)
        except (OSError, ValueError):  # no dense.pt to compare (removed since): the directory is taken as it is
            now = digest
        if now != digest:
            raise ValueError(
                f"{KEY}: the dense start of {run_dir} ({dense}) holds other weights than it started from "
                "(another run made there since): give method.epochs"
            )
    return dense


def total_epochs(run_dir: Path, seen: frozenset[Path] = frozenset()) -> tuple[int, int]:
    """``(dense start, after start)``: the epochs of the run in ``run_dir``'s starting point (its
    ``init_from`` run's, in all, or its own ``pretrain`` stage's) and its ``epochs_after_start``."""
    res = _read_results(run_dir)
    after = res.get("epochs_after_start")
    if after is None:
        raise ValueError(f"{KEY}: {run_dir} records no epochs_after_start (a run of an older svdbench)")
    if not _whole(after, 0):
        raise _bad(run_dir, "epochs_after_start", "a whole number >= 0", after)
    history = res.get("history") or []
    if not isinstance(history, list):
        raise _bad(run_dir, "history", "a list of epochs", history)
    start = sum(1 for h in history if isinstance(h, dict) and h.get("stage") == "pretrain")
    if res.get("init_from"):
        dense = dense_start(run_dir, res)
        if dense.resolve() in seen or not (dense / "results.json").is_file():
            raise ValueError(f"{KEY}: the dense start of {run_dir} ({dense}) is no run to read its epochs from")
        start += sum(total_epochs(dense, seen | {run_dir.resolve()}))
    return start, after


@dataclass
class ScratchConfig(MethodConfig):
    # a completed run directory (saved with save_model=true) whose deployed architecture is trained from
    # scratch; null: the dense architecture (plain dense training)
    architecture_from: str | None = None
    # scratch_e: as many epochs as the source took in all (its dense start + its epochs after it); scratch_b:
    # the same compute (those epochs x dense MACs / deployed MACs, rounded); null: scratch_e (recorded as worked
    # out), or no rule where method.epochs is given (giving both is refused)
    budget_rule: str | None = None
    # the train stage's epochs: null, from the source by budget_rule (recorded as worked out); with
    # architecture_from null: trainer.epochs
    epochs: int | None = None
    # the source's method (and decomposition), worked out when planned: what the report groups scratch runs by,
    # since architecture_from is a path that differs from seed to seed
    source: str | None = None

    headline = ("method.source", "method.budget_rule", "method.epochs")
    path_keys = ("architecture_from",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget_rule is not None:
            check_choice(self.budget_rule, RULES, "method.budget_rule")
        check(self.epochs is None or self.epochs >= 1, "method.epochs", f"must be >= 1, got {self.epochs}")
        if self.architecture_from is not None:
            Source(Path(self.architecture_from))  # exists, completed, with its deployed architecture


class Source:
    """The run ``method.architecture_from`` names: its results.json and deployed.json, checked; ValueError
    in one line naming the key otherwise."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        if os.path.lexists(run_dir) and not run_dir.is_dir():  # RUN/results.json, RUN/deployed.json
            raise ValueError(f"{KEY}: {run_dir} is a file: give the run's directory ({run_dir.parent})")
        if not os.path.lexists(run_dir / "results.json"):  # a FIFO or a directory there: "cannot be read", below
            raise ValueError(f"{KEY}: {run_dir} holds no run (no results.json)")
        self.results = res = _read_results(run_dir)
        if res.get("status") != "completed":
            raise ValueError(f"{KEY}: {run_dir} is not a completed run (status {res.get('status')!r})")
        missing = [k for k in ("macs", "macs_dense", "params_dense", "input_shape") if not res.get(k)]
        if missing:
            raise ValueError(f"{KEY}: {run_dir}/results.json has no {', '.join(missing)}")
        for key in ("macs", "macs_dense", "params_dense"):
            if not _whole(res[key]):
                raise _bad(run_dir, key, "a whole number > 0", res[key])
        shape = res["input_shape"]
        if not (isinstance(shape, list) and len(shape) >= 2 and all(_whole(v) for v in shape)):
            raise _bad(run_dir, "input_shape", "a list of sizes > 0 ([1, C, H, W])", shape)
        for key in ("config", "method_details"):
            if res.get(key) is not None and not isinstance(res[key], dict):
                raise _bad(run_dir, key, "a mapping", res[key])
        if not (run_dir / ARCHITECTURE_FILE).is_file():
            raise ValueError(
                f"{KEY}: {run_dir} saved no {ARCHITECTURE_FILE} (made with save_model=false, or by an older "
                "svdbench): rerun it with save_model=true"
            )
        try:
            self.architecture = read_document(run_dir)
        except ValueError as err:
            raise ValueError(f"{KEY}: {one_line(err)}") from None

    def digest(self) -> str:
        """A digest of the architecture the source holds now (its ``deployed.json``, as data)."""
        text = json.dumps(self.architecture, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def epochs(self, rule: str) -> int:
        """The ``train`` epochs ``rule`` gives (:data:`RULES`)."""
        epochs = sum(total_epochs(self.dir))
        if rule == "scratch_b":
            epochs = math.floor(epochs * self.results["macs_dense"] / self.results["macs"] + 0.5)
        return max(1, epochs)

    def label(self) -> str:
        """The source's method as the report names it by default, with its decomposition where it has one
        (``svd/spatial``)."""
        method = self._method_config()
        decomposition = method.get("decomposition")
        return f"{self.results.get('method')}/{decomposition}" if decomposition else str(self.results.get("method"))

    def speedup_target(self) -> float | None:
        """The MAC speed-up the source aimed at: ``config.method.speedup`` or ``method_details.speedup_target``."""
        target = self._method_config().get("speedup")
        return target if target is not None else (self.results.get("method_details") or {}).get("speedup_target")

    def _method_config(self) -> dict:
        """The source's recorded ``config.method`` (a mapping, checked when read), or {}."""
        method = (self.results.get("config") or {}).get("method")
        return method if isinstance(method, dict) else {}


@register_method("scratch")
class Scratch(Method):
    """The deployed architecture of ``architecture_from``, re-initialised and trained from scratch."""

    Config = ScratchConfig

    def __init__(self, config: ScratchConfig | None = None) -> None:
        super().__init__(config)
        where = self.config.architecture_from
        self.source: Source | None = Source(Path(where)) if where is not None else None

    @property
    def train_epochs(self) -> int | None:
        return self.config.epochs

    def starting_from(self, trained: bool) -> Scratch:
        """The epochs worked out from the source (``method.epochs`` null); ``init_from`` is refused:
        the weights are drawn anew."""
        if self.source is None:
            return self
        if trained:
            raise ValueError(f"method=scratch trains from random weights: init_from would be discarded ({KEY} is set)")
        label, given = self.source.label(), self.config.source
        if given is not None and given != label:  # the report would group the run by it: never a label of one's own
            raise ValueError(f"method.source={given}: it is worked out from {KEY} ({label}); leave it out")
        if self.config.epochs is not None and self.config.budget_rule is not None:
            raise ValueError(
                f"method.budget_rule={self.config.budget_rule} and method.epochs={self.config.epochs}: give one "
                "(method.epochs trains as many epochs as given, by no rule)"
            )
        changes: dict[str, Any] = {"source": label}
        if self.config.epochs is None:
            changes["budget_rule"] = rule = self.config.budget_rule or "scratch_e"
            changes["epochs"] = self.source.epochs(rule)
        return self.reconfigured(**changes)

    def check(self, model: nn.Module, input_shape) -> None:
        """The source was made of this model, data and input (same dense MACs and parameters), and its
        records rebuild its deployed MACs on this model."""
        if self.source is None:
            return
        res, where = self.source.results, self.source.dir
        if list(input_shape) != list(res["input_shape"]):
            raise ValueError(
                f"{KEY}: {where} was made on input {res['input_shape']}, this run's is {list(input_shape)}"
            )
        ours = (analyze_macs(model, input_shape).macs, count_params(model))
        if ours != (res["macs_dense"], res["params_dense"]):
            raise ValueError(
                f"{KEY}: {where} is of another model or dataset: its dense model has {res['macs_dense']} MACs and "
                f"{res['params_dense']} parameters, this run's {ours[0]} and {ours[1]}"
            )
        size = count_params(self._rebuild(copy.deepcopy(model).to("meta"), device="meta"))  # takes no memory
        recorded, limit = res.get("params"), LARGEST_GROWTH * res["params_dense"]
        if (size != recorded) if _whole(recorded) else (size > limit):  # a forged record: refused before it is built
            expected = f"{recorded} recorded in its results.json" if _whole(recorded) else f"at most {limit}"
            raise ValueError(f"{KEY}: {where}/{ARCHITECTURE_FILE}: its records build {size} parameters, not {expected}")
        rebuilt = self._rebuild(copy.deepcopy(model))
        try:
            macs = analyze_macs(rebuilt, input_shape).macs
        except Exception as err:  # records that build but do not fit together (channels, strides): torch's error
            raise ValueError(
                f"{KEY}: {where}/{ARCHITECTURE_FILE}: the model its records rebuild does not run on input "
                f"{list(input_shape)} ({one_line(err)})"
            ) from None
        if macs != res["macs"]:
            raise ValueError(f"{KEY}: the architecture of {where} rebuilds to {macs} MACs, not its {res['macs']}")

    def check_done(self, done: dict) -> None:
        """A completed scratch run is this run's only if it trained the architecture its source holds now (a source
        rerun with ``resume=false`` into another architecture, its path and label alike): ValueError otherwise."""
        details = done.get("method_details")
        recorded = details.get("source_architecture") if isinstance(details, dict) else None
        if self.source is None or recorded is None or recorded == self.source.digest():
            return
        then = details.get("source_speedup")
        now = self.source.results["macs_dense"] / self.source.results["macs"]
        was = f" ({then:.2f}x fewer MACs then, {now:.2f}x now)" if isinstance(then, (int, float)) else ""
        raise ValueError(f"it trained another architecture than {KEY} {self.source.dir} holds now{was}")

    def _rebuild(self, model: nn.Module, device: str | None = None) -> nn.Module:
        try:
            return apply_records(model, self.source.architecture["modules"], device=device)
        except ValueError as err:
            raise ValueError(f"{KEY}: {self.source.dir}/{ARCHITECTURE_FILE}: {one_line(err)}") from None

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        """The source's architecture on ``model``, every layer re-initialised at random."""
        if self.source is None:
            return model
        model = self._rebuild(model)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()  # BatchNorm: running statistics too
        return model

    def details(self) -> dict:
        """The source run, its method and target, the epochs rule and the epochs trained; the source's epochs
        are None where they cannot be worked out any more (its dense start remade or gone since it ran)."""
        if self.source is None:
            return {}
        res, rule = self.source.results, self.config.budget_rule
        try:
            start, after = total_epochs(self.source.dir)
            worked_out: int | None = self.source.epochs(rule) if rule is not None else None
        except ValueError:  # the source's dense start changed or went since (so method.epochs was given): unknown now
            start = after = worked_out = None
        return {
            "source": str(self.source.dir),
            "source_architecture": self.source.digest(),
            "source_method": res.get("method"),
            "speedup_target": self.source.speedup_target(),
            "source_speedup": res["macs_dense"] / res["macs"],
            "source_epochs": {"dense_start": start, "after_start": after},
            "epochs_rule": rule if self.config.epochs == worked_out else "method.epochs",
            "epochs": self.config.epochs,
        }
