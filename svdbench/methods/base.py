"""The method plug-in: one config dataclass and one class, registered under a name.

A method is written in one module::

    @dataclass
    class MyConfig(MethodConfig):
        alpha: float = 0.5          # the only place a parameter, its default ...

        def __post_init__(self):
            super().__post_init__()
            check(self.alpha > 0, "method.alpha", f"must be > 0, got {self.alpha}")   # ... and its check live

    @register_method("mine")
    class Mine(Method):
        Config = MyConfig
        def compress(self, model): ...

``register_method`` names the class, records it in :data:`METHODS` (which the command line, the
report and the contract tests read) and makes ``method=mine`` a config choice whose ``_target_``
names the class: a config never writes its ``_target_``, so several methods can share one config
class. The method is built from its validated config object (``Mine(MyConfig(alpha=0.7))``);
``self.config`` holds it, with ``_target_`` naming the class.

The pipeline calls, in order: ``check`` -> ``prepare`` (e.g. decompose) -> the stages of
``stages_before_train()`` (SVD training's ``"orthogonal"``) -> training stage ``"train"``
(the loop calls ``before_forward``, ``regularization``, ``after_backward``, ``after_step``, ``on_epoch_end``) ->
``compress`` (e.g. prune) -> training stage ``"finetune"`` for ``finetune_epochs`` -> ``export`` (the
deployed, physically smaller model) -> one extra result per ``operating_points()`` entry. No method
owns a loop.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ..checks import check
from ..registry import Registry

__all__ = ["METHOD_GROUPS", "MethodConfig", "Method", "METHODS", "register_method", "method_target"]

#: config groups composed at the top level of the config, so that ``regularizer=l1`` and
#: ``regularizer.weight=0.1`` work on the command line, that belong to the method whose config has a
#: field of the same name: that field reads the group (``method.regularizer: ${regularizer}``) and a
#: method without one takes none
METHOD_GROUPS = ("regularizer",)


@dataclass
class MethodConfig:
    """Settings every method has. Subclasses add theirs, with defaults and ``__post_init__`` checks
    that name the key (``method.<field>``)."""

    # the method class, "module.Class": supplied by register_method (Hydra's method/<name> node) and by
    # Method.__init__ (a config built in Python), so that methods can share a config class; never set by hand
    _target_: str = ""
    finetune_epochs: int = 0  # epochs of the "finetune" stage after compress

    #: config keys (dotted, as in results.json) always shown in the report's settings column
    headline: ClassVar[tuple[str, ...]] = ()
    #: old key -> new key: the old one is refused with a message naming the new one
    renamed: ClassVar[dict[str, str]] = {}
    #: keys added after runs had been recorded without them -> the value those runs had: a recorded
    #: value equal to it is the same experiment as the key absent (svdbench.results.comparable_config)
    added: ClassVar[dict[str, Any]] = {}
    #: keys that only ask for operating points (more results from the same trained model, e.g. SVD
    #: training's ``energies``): they do not change the main result, so the report leaves them out of
    #: a configuration
    point_keys: ClassVar[tuple[str, ...]] = ()
    #: keys that name another run's directory (scratch's ``architecture_from``): a path that differs from seed
    #: to seed, so the report compares them only as set or not
    path_keys: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        check(self.finetune_epochs >= 0, "method.finetune_epochs", f"must be >= 0, got {self.finetune_epochs}")

    @classmethod
    def groups(cls) -> list[str]:
        """The :data:`METHOD_GROUPS` this method takes: those its config has a field for."""
        names = {f.name for f in dataclasses.fields(cls)}
        return [g for g in METHOD_GROUPS if g in names]


class Method:
    """Base class: the dense method's behaviour (no extra loss, no compression)."""

    #: the config dataclass of this method
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: the registered name (set by :func:`register_method`)
    name: ClassVar[str] = "base"
    compresses: ClassVar[bool] = False
    #: needs a trained dense model before ``prepare`` (post-hoc methods): without ``init_from``
    #: the pipeline first trains one (stage ``"pretrain"``, ``trainer.epochs`` epochs)
    pretrain_dense: ClassVar[bool] = False
    #: epochs of the ``"train"`` stage; None means ``trainer.epochs``
    train_epochs: ClassVar[int | None] = None

    def __init__(self, config: MethodConfig | None = None) -> None:
        config = self.Config() if config is None else config
        if type(config) is not self.Config:  # exactly: a config class may be shared, or another's base
            raise TypeError(f"{type(self).__name__} takes a {self.Config.__name__}, got {type(config).__name__}")
        target = method_target(type(self))
        if config._target_ != target:  # a config built in Python: its _target_ is this class
            if config._target_:
                raise TypeError(f"{type(self).__name__} takes a config of its own, got one for {config._target_!r}")
            config = copy.copy(config)
            config._target_ = target
        self.config = config

    @classmethod
    def create(cls: type[M], **settings: Any) -> M:
        """``cls(cls.Config(**settings))``: an unknown setting is a TypeError."""
        return cls(cls.Config(**settings))

    @property
    def finetune_epochs(self) -> int:
        return self.config.finetune_epochs

    def reconfigured(self: M, **changes: Any) -> M:
        """A fresh copy of this method with some settings changed (checked again) and no state."""
        return type(self)(dataclasses.replace(copy.deepcopy(self.config), **changes))

    def stages_before_train(self) -> list[tuple[str, int]]:
        """Training stages run after ``prepare`` and before ``"train"``, as ``(name, epochs)``; each
        has its own optimiser and schedule (``trainer.*``), its own checkpoint and its own entry in
        ``stage_top1``, ``history`` and ``wall_time``. A name must be one of
        :data:`svdbench.checkpoint.STAGES`. None by default."""
        return []

    def starting_from(self: M, trained: bool) -> M:
        """This method configured for its starting point: ``trained`` when the run starts from trained
        weights (``init_from``). A method whose settings would discard them raises ValueError naming
        the setting; one with a setting that depends on it (SVD training's ``init: auto``) returns a
        configured copy. Default: itself."""
        return self

    # ------------------------------------------------------------------ the protocol

    def check(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        """Before any training: raise ValueError (one line) for a setting this dense model cannot
        satisfy, e.g. a pruning target out of reach."""

    def prepare(self, model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
        return model

    def regularization(self, model: nn.Module, stage: str) -> torch.Tensor | None:
        return None

    def before_forward(self, model: nn.Module, step: int, stage: str) -> None:
        """At the start of a training step, before its forward: weights may be changed here."""

    def after_backward(self, model: nn.Module, step: int, stage: str) -> None:
        """Between ``backward()`` and ``optimizer.step()``: gradients may be changed here."""

    def after_step(self, model: nn.Module, step: int, stage: str) -> None:
        """After ``optimizer.step()``: weights may be changed here."""

    def on_epoch_end(self, model: nn.Module, epoch: int, stage: str) -> None:
        """After each epoch of a stage, before evaluation."""

    def compress(self, model: nn.Module) -> None:
        """Make the model smaller, in place (what it found goes into :meth:`details`)."""

    def export(self, model: nn.Module) -> nn.Module:
        """The deployed model made of plain layers."""
        return model

    def operating_points(self) -> list[tuple[str, Method]]:
        """Extra results from the same trained model: ``(label, method)`` pairs, each method a
        configured copy whose ``compress``/``finetune``/``export`` make one more result in
        ``<run dir>/<label>/`` (SVD training's energy sweep). None by default."""
        return []

    def state_dict(self) -> dict:
        """The method's own training state (masks, counters) for checkpoints: tensors and scalars."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def check_done(self, done: dict) -> None:
        """A completed run of this config found in the run directory (its results.json, ``done``) is this run's:
        raise ValueError (one line) where it is not, for what the config cannot tell (scratch: the architecture
        its source holds now). Default: it is."""

    def details(self) -> dict:
        """What the method found or did (ranks kept, channels pruned, ...), JSON-safe, recorded in
        results.json under ``method_details``; never a copy of a setting (``config.method`` holds those)."""
        return {}


M = TypeVar("M", bound=Method)

#: every registered method, by name
METHODS: Registry[type[Method]] = Registry("method")


def method_target(cls: type) -> str:
    """The ``_target_`` of a method class: ``module.Class``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_method(name: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: name the method ``name`` and add it to :data:`METHODS` (``method=<name>`` on
    the command line). Its ``Config`` must be a :class:`MethodConfig` dataclass, which several
    methods may share; ``_target_`` is supplied, not written: Hydra's ``method/<name>`` node
    (:func:`svdbench.config.register_configs`) and every instance's ``config`` name the class
    (:func:`method_target`). A ``Config`` whose ``_target_`` defaults to another class is refused."""

    def add(cls: type[M]) -> type[M]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) decorates a Method subclass, got {cls!r}")
        config = cls.Config
        if not (dataclasses.is_dataclass(config) and issubclass(config, MethodConfig)):
            raise TypeError(f"{cls.__name__}.Config must be a MethodConfig dataclass")
        if config._target_ not in ("", method_target(cls)):
            raise TypeError(
                f"{config.__name__}._target_ defaults to {config._target_!r}, not {method_target(cls)!r}: "
                "leave _target_ out, register_method supplies it"
            )
        cls.name = name
        return METHODS.register(name)(cls)

    return add
