"""The run plan: what one run will do, worked out once from the validated config.

:func:`make_plan` configures the method for its starting point (``init_from``) and its budget
(``trainer.budget``), records the config as results.json will hold it and lists the training stages
before compression with their epochs and optimisers. The command line (its preflight and the job)
and :func:`svdbench.pipeline.run_experiment` all run from a plan; nothing configures a method twice.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .data import val_size
from .errors import InputError, one_line
from .methods.base import METHOD_GROUPS, Method
from .models import check_checkpoint_path
from .optim import OptimConfig
from .paths import absolute
from .results import relevant

log = logging.getLogger("svdbench")

__all__ = ["RunPlan", "Stage", "configure", "make_plan", "optim_config", "record_config"]


@dataclass(frozen=True)
class Stage:
    """One training stage: its name (one of :data:`svdbench.checkpoint.STAGES`), epochs and optimiser."""

    name: str
    epochs: int
    optim: OptimConfig


@dataclass(frozen=True)
class RunPlan:
    """One run, planned: the typed config (``svdbench.config.Config``), the method configured for it,
    the config as results.json records it, and the stages from ``prepare`` to ``compress``
    (the method's own stages, then ``train``); ``pretrain`` is the dense training a post-hoc method
    needs first when it has no ``init_from`` (None otherwise)."""

    cfg: object
    method: Method
    config: dict
    before_compress: tuple[Stage, ...]
    pretrain: Stage | None
    #: ``init_from`` as an absolute path, resolved once against the directory the run was launched from
    #: (a job whose working directory changes, ``hydra.job.chdir=true``, still finds it); None without one
    init_from: Path | None = None

    @property
    def finetune(self) -> Stage:
        return Stage("finetune", self.method.finetune_epochs, optim_config(self.cfg.trainer, finetune=True))

    @property
    def epochs_after_start(self) -> int:
        """Training and fine-tuning epochs after the starting point: what ``trainer.budget`` fixes."""
        return sum(s.epochs for s in self.before_compress) + self.method.finetune_epochs


def configure(cfg, method: Method) -> Method:
    """``method`` as it will run under ``cfg``: configured for its starting point
    (:meth:`~svdbench.methods.Method.starting_from`) and, with ``trainer.budget``, its fine-tuning
    given the epochs the budget leaves after training. InputError in one line."""
    try:
        method = method.starting_from(trained=bool(cfg.init_from))
    except ValueError as err:
        raise InputError(one_line(err)) from None
    budget = cfg.trainer.budget
    if budget is not None:
        train = sum(s.epochs for s in stages_before_compress(cfg, method))
        if budget < train:
            raise InputError(
                f"trainer.budget={budget} is less than the {train} training epochs before compression "
                "(trainer.epochs and the method's stages before it)"
            )
        if method.finetune_epochs != budget - train:
            if method.finetune_epochs != _default(method, "finetune_epochs"):  # set by you or a preset: say so
                log.warning(
                    "trainer.budget=%d replaces method.finetune_epochs=%d with %d (the budget less the %d epochs "
                    "before compression)", budget, method.finetune_epochs, budget - train, train,
                )  # fmt: skip
            method = method.reconfigured(finetune_epochs=budget - train)
    return method


def _default(method: Method, key: str):
    """The default of ``key`` in ``method``'s config schema (None: none)."""
    field = next((f for f in dataclasses.fields(method.config) if f.name == key), None)
    return None if field is None or field.default is dataclasses.MISSING else field.default


def stages_before_compress(cfg, method: Method) -> tuple[Stage, ...]:
    """The method's stages before ``train`` (SVD training's ``orthogonal``), then ``train`` itself with
    ``trainer.epochs``, or the method's own count (0 for a post-hoc method)."""
    optim = optim_config(cfg.trainer)
    train = cfg.trainer.epochs if method.train_epochs is None else method.train_epochs
    return (
        *(Stage(name, epochs, optim) for name, epochs in method.stages_before_train()),
        Stage("train", train, optim),
    )


def optim_config(trainer, finetune: bool = False) -> OptimConfig:
    """The optimiser of a training stage (``finetune``: ``trainer.finetune_lr`` and
    ``finetune_schedule`` where set)."""
    lr = (trainer.finetune_lr or trainer.lr) if finetune else trainer.lr
    schedule = (trainer.finetune_schedule or trainer.schedule) if finetune else trainer.schedule
    return OptimConfig(
        optimizer=trainer.optimizer,
        lr=lr,
        momentum=trainer.momentum,
        weight_decay=trainer.weight_decay,
        schedule=schedule,
        milestones=tuple(trainer.milestones),
        gamma=trainer.gamma,
    )


def record_config(cfg, method: Method) -> dict:
    """The resolved config as results.json records it (and ``--cfg job`` prints): the method's own
    config (with the groups it takes, e.g. ``method.regularizer``; their top-level slots are for the
    command line only), the training images actually held out for validation, and only the model and
    dataset settings the run's model and dataset read (:func:`svdbench.results.relevant`)."""
    out = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else copy.deepcopy(dict(cfg))
    out["method"] = dataclasses.asdict(method.config)
    for group in METHOD_GROUPS:
        out.pop(group, None)
    if isinstance(out.get("dataset"), dict):
        out["dataset"]["val_size"] = val_size(cfg.dataset)
    return relevant(out)


def make_plan(cfg, method: Method, base: str | os.PathLike | None = None) -> RunPlan:
    """The plan of running ``method`` under the typed config ``cfg``, a relative ``init_from`` and
    ``dataset.root`` taken from ``base`` (default: the current directory; both are made absolute in
    place); InputError in one line."""
    method = configure(cfg, method)
    pretrain = Stage("pretrain", cfg.trainer.epochs, optim_config(cfg.trainer))
    launch = Path(base or os.getcwd())
    init_from = Path(absolute(cfg.init_from, launch)) if cfg.init_from else None
    if init_from:  # recorded as resolved: the same run, resumed or rerun from another directory, is the same
        cfg.init_from = str(init_from)
    weights = cfg.model.kwargs.get("checkpoint_path") if cfg.model._target_ is None else None
    if isinstance(weights, str) and weights:  # timm's start weights: as init_from, the launch directory's, recorded so
        cfg.model.kwargs["checkpoint_path"] = absolute(weights, launch)
        check_checkpoint_path(cfg.model.kwargs["checkpoint_path"])
    if cfg.dataset.root:  # where the data lives, as the launch directory sees it (hydra.job.chdir moves the job)
        cfg.dataset.root = absolute(cfg.dataset.root, launch)
    return RunPlan(
        cfg=cfg,
        method=method,
        config=record_config(cfg, method),
        before_compress=stages_before_compress(cfg, method),
        pretrain=pretrain if method.pretrain_dense and not cfg.init_from else None,
        init_from=init_from,
    )
