"""Config schemas (dataclasses), their place in Hydra's ConfigStore, and the validation of a
composed config.

Each dataclass is the one place its settings, their defaults and their checks live. OmegaConf
checks keys and types while Hydra composes (a misspelled key or a wrong type fails there);
:func:`validate` checks the composed config once more as a whole, so that keys added with ``+``
or ``++`` meet the same schema, builds the method's own config from the class its ``_target_``
names, and runs every ``__post_init__`` range check. Every message names the key.

ConfigStore holds the top-level schema (``config_schema``, not a group option), the defaults of
``trainer`` and ``measure``, and one ``method/<name>`` entry per registered method: ``method=svd``
is the :class:`~svdbench.methods.SVDConfig` dataclass itself, with no YAML copy of it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .checks import check, check_choice
from .data import DATASETS
from .errors import InputError, one_line
from .methods import METHODS, Method, method_target
from .models import BLOCKS, MODELS, OPTIONS, SHORTCUTS, check_kwargs, check_options
from .optim import OptimConfig
from .paths import absolute
from .published import register_resolver
from .registry import import_object
from .regularizers import SparsityRegularizer


@dataclass
class ModelConfig:
    family: str = "cifar_resnet"  # a registered family (svdbench.models.MODELS): cifar_resnet | torchvision | timm
    name: str = "resnet8"
    # "module.function": your model, called as function(num_classes=..., in_channels=..., **kwargs)
    _target_: str | None = None
    # extra arguments for _target_, or for timm.create_model with family timm (img_size, patch_size, embed_dim, ...)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    # cifar_resnet only. A: zero-padding shortcuts (He et al., no parameters); B: a 1x1 conv (the
    # block's stride) + BatchNorm wherever the shape changes, as the official SVD-training / TRP code
    shortcut: str = OPTIONS["shortcut"]
    # cifar_resnet only. basic: two 3x3 convs; bottleneck: 1x1-3x3-1x1, expansion 4, (depth - 2) / 6
    # blocks per stage, as the official code from depth 44 on (svdbench/models/cifar_resnet.py)
    block: str = OPTIONS["block"]

    def __post_init__(self) -> None:
        if self._target_ is None:
            check_choice(self.family, MODELS.names(), "model.family")
        check_choice(self.shortcut, SHORTCUTS, "model.shortcut")
        check_choice(self.block, BLOCKS, "model.block")
        check_options(self.family if self._target_ is None else None, {k: getattr(self, k) for k in OPTIONS})
        check_kwargs(self.family if self._target_ is None else None, self.kwargs)


#: the largest ``dataset.image_size``: a side of 8/7 of it is decoded first (ImageNet's resize), 3 x 4681^2 floats
MAX_IMAGE_SIZE = 4096


@dataclass
class DatasetConfig:
    name: str = "fashion_mnist"  # a registered dataset (svdbench.data.DATASETS), or your own with _target_
    _target_: str | None = None  # "module.function": your dataset, called as function(cfg) -> Splits
    kwargs: Dict[str, Any] = field(default_factory=dict)  # your own settings, read by your _target_
    root: str | None = None  # None: search the usual places (see svdbench.data)
    download: bool = True  # torchvision download where files are missing and the network allows
    # training images held out for validation (model selection, Pareto fronts), with a fixed seed;
    # null: the dataset's default (5000 for Fashion-MNIST and CIFAR, in proportion with train_subset;
    # 0 for the others); 0: none
    val_size: int | None = None
    train_subset: int | None = None  # first N training samples (of those left after the validation split)
    test_subset: int | None = None
    augment: bool = True
    image_size: int = 224  # imagenet only
    shape: List[int] = field(default_factory=lambda: [3, 32, 32])  # synthetic only: C, H, W
    num_classes: int = 10  # synthetic only
    num_train: int = 512  # synthetic only
    num_test: int = 256  # synthetic only

    def __post_init__(self) -> None:
        if self._target_ is None:
            check(self.name in DATASETS, "dataset.name", f"must be one of {list(DATASETS)}, got {self.name!r}")
        else:
            check(self.name not in DATASETS, "dataset.name", f"is the built-in {self.name!r}: name your own dataset")
        for key in ("train_subset", "test_subset"):
            v = getattr(self, key)
            check(v is None or v > 0, f"dataset.{key}", f"must be positive, got {v}")
        check(self.val_size is None or self.val_size >= 0, "dataset.val_size", f"must be >= 0, got {self.val_size}")
        check(len(self.shape) == 3 and min(self.shape) > 0, "dataset.shape", f"must be [C, H, W] > 0, got {self.shape}")
        check(1 <= self.image_size <= MAX_IMAGE_SIZE, "dataset.image_size", f"must be in [1, {MAX_IMAGE_SIZE}] (the "
              f"side of the square images, in pixels), got {self.image_size}")  # fmt: skip
        check(self.num_classes >= 2, "dataset.num_classes", f"must be >= 2, got {self.num_classes}")
        for key in ("num_train", "num_test"):
            check(getattr(self, key) > 0, f"dataset.{key}", f"must be > 0, got {getattr(self, key)}")


SCHEDULES = ("cosine", "multistep", "constant")


#: the largest float32 number: a scalar the optimiser multiplies float32 tensors by must fit one
FLOAT32_MAX = 3.4028234663852886e38


@dataclass
class TrainerConfig:
    """The default trainer: Adam, as the original SVD-training CIFAR recipe; lr tuned for the
    12-epoch Fashion-MNIST demo."""

    optimizer: str = OptimConfig.optimizer  # sgd | adam
    lr: float = OptimConfig.lr
    finetune_lr: float | None = 0.0005  # null: same as lr
    momentum: float = OptimConfig.momentum  # sgd only
    weight_decay: float = OptimConfig.weight_decay
    schedule: str = OptimConfig.schedule  # cosine | multistep | constant, per stage
    finetune_schedule: str | None = None  # schedule of the fine-tuning stage; null: same as schedule
    # multistep: fractions of a stage
    milestones: List[float] = field(default_factory=lambda: list(OptimConfig.milestones))
    gamma: float = OptimConfig.gamma  # multistep: lr factor at each milestone
    epochs: int = 12  # of the train stage (and of the dense pretraining a post-hoc method needs)
    # epochs after the starting point (a dense checkpoint, or random init), the same for every method
    # it is set for: training takes trainer.epochs of them (a method that does not train, none),
    # fine-tuning the rest (method.finetune_epochs is then derived); null: as the method sets them
    budget: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 1000
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 0  # DataLoader workers (ImageNet folders only)
    deterministic: bool = True
    progress: bool = True  # progress bars (drawn on a terminal only; logs get one line per epoch)
    bn_recalibration_batches: int = 50  # after compression: re-estimate BatchNorm statistics (0: off)
    # the splits evaluated after every epoch (the history's test/val top-1): test, val; every stage still ends with a
    # test evaluation and the deployed model with both. [val] spares a large test set's pass every epoch
    epoch_eval: List[str] = field(default_factory=lambda: ["test", "val"])
    # CUDA speed options (svdbench.optim.resolve_accel; docs/distributed.md); auto = on only where safe, all off on CPU
    amp: str = "auto"  # auto | off | bf16 | fp16 (auto: bf16 where the GPU supports it, else fp16 + GradScaler)
    channels_last: str = "auto"  # auto | true | false (auto: on for CUDA)
    compile: bool = False  # torch.compile the model for the training stages
    cudnn_benchmark: str = "auto"  # auto | true | false (auto: on for CUDA unless deterministic)

    def __post_init__(self) -> None:
        check_choice(self.optimizer, ("sgd", "adam"), "trainer.optimizer")
        check_choice(self.schedule, SCHEDULES, "trainer.schedule")
        check(
            self.finetune_schedule in (None, *SCHEDULES),
            "trainer.finetune_schedule",
            f"must be null, cosine, multistep or constant, got {self.finetune_schedule!r}",
        )
        check(self.lr > 0, "trainer.lr", f"must be > 0, got {self.lr}")
        ft_lr = self.finetune_lr
        check(ft_lr is None or ft_lr > 0, "trainer.finetune_lr", f"must be > 0, got {ft_lr}")
        check(self.weight_decay >= 0, "trainer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        for key in ("lr", "finetune_lr", "weight_decay"):  # the optimiser multiplies float32 tensors by them
            v = getattr(self, key)
            fits = v is None or not math.isfinite(v) or v <= FLOAT32_MAX  # inf: the finiteness check names it
            check(fits, f"trainer.{key}", f"must be at most {FLOAT32_MAX:.4g} (a float32 number, as the optimiser "
                  f"takes it), got {v}")  # fmt: skip
        check(0 <= self.momentum < 1, "trainer.momentum", f"must be in [0, 1), got {self.momentum}")
        check(0 < self.gamma <= 1, "trainer.gamma", f"must be in (0, 1] (the lr is multiplied by it), got {self.gamma}")
        check(
            all(0 < m < 1 for m in self.milestones),
            "trainer.milestones",
            f"are fractions of a stage, each in (0, 1), got {list(self.milestones)}",
        )
        check(self.epochs >= 0, "trainer.epochs", f"must be >= 0, got {self.epochs}")
        check(self.budget is None or self.budget >= 0, "trainer.budget", f"must be >= 0, got {self.budget}")
        check(self.batch_size > 0, "trainer.batch_size", f"must be > 0, got {self.batch_size}")
        check(self.eval_batch_size > 0, "trainer.eval_batch_size", f"must be > 0, got {self.eval_batch_size}")
        check_choice(self.device, ("auto", "cpu", "cuda"), "trainer.device")
        check(self.bn_recalibration_batches >= 0, "trainer.bn_recalibration_batches", "must be >= 0")
        check(
            set(self.epoch_eval) <= {"test", "val"},
            "trainer.epoch_eval",
            f"lists splits to evaluate every epoch, test and/or val, got {list(self.epoch_eval)}",
        )
        check(self.num_workers >= 0, "trainer.num_workers", f"must be >= 0, got {self.num_workers}")
        check_choice(self.amp, ("auto", "off", "bf16", "fp16"), "trainer.amp")
        for key in ("channels_last", "cudnn_benchmark"):
            v = str(getattr(self, key)).lower()
            check_choice(v, ("auto", "true", "false"), f"trainer.{key}")
            setattr(self, key, v)
        check(
            not (self.cudnn_benchmark == "true" and self.deterministic),
            "trainer.cudnn_benchmark",
            "is true, which contradicts trainer.deterministic=true (set one of them false)",
        )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass
class LoggerConfig:
    name: str = "console"  # console | wandb (console logging always; wandb adds W&B tracking)
    level: str = "INFO"
    project: str = "svdbench"  # W&B project
    entity: str | None = None  # W&B entity (team or user); None: the login's default
    mode: str = "offline"  # offline | online | disabled; $WANDB_MODE overrides
    group: str | None = None  # None: in a multirun, derived from the sweep directory
    tags: List[str] = field(default_factory=list)
    dir: str | None = None  # where wandb writes; None: $WANDB_DIR, else the run directory

    def __post_init__(self) -> None:
        check_choice(self.name, ("console", "wandb"), "logger.name")
        check_choice(self.level, LOG_LEVELS, "logger.level")
        check_choice(self.mode, ("offline", "online", "disabled"), "logger.mode")


#: the most CPU threads a timing may ask for: 4 per CPU (a count far beyond it crashes OpenMP)
MAX_THREADS = 4 * (os.cpu_count() or 1)
#: the longest timed part a timing may ask for (1e308 seconds overflows the count of timed calls)
MAX_SECONDS = 1e9


@dataclass
class MeasureConfig:
    """What the measure step records beside MACs: realized latency (svdbench.latency, docs/performance.md)."""

    latency: bool = True  # time the deployed and the dense model of the same architecture (eager PyTorch)
    batch_sizes: List[int] = field(default_factory=lambda: [1, 64])
    onnx: bool = False  # also export both to ONNX, check against PyTorch and time them in onnxruntime (CPU)
    compile: bool = False  # also time both after torch.compile on every device (where it compiles)
    max_seconds: float = 2.0  # timed part per model, batch size and runtime (repeats adapt: 5 to 50)
    threads: int | None = 1  # CPU threads while timing (eager and onnxruntime), recorded; null: leave torch's count

    def __post_init__(self) -> None:
        check(
            len(self.batch_sizes) > 0 and all(b > 0 for b in self.batch_sizes),
            "measure.batch_sizes",
            f"must be a non-empty list of positive sizes, got {list(self.batch_sizes)}",
        )
        check(self.max_seconds > 0, "measure.max_seconds", f"must be > 0, got {self.max_seconds}")
        check(
            not math.isfinite(self.max_seconds) or self.max_seconds <= MAX_SECONDS,
            "measure.max_seconds",
            f"must be at most {MAX_SECONDS:g} seconds, got {self.max_seconds}",
        )  # inf: the finiteness check says it
        most = MAX_THREADS
        check(self.threads is None or 1 <= self.threads <= most, "measure.threads",
              f"must be in [1, {most}] (4 per CPU of this machine), got {self.threads}")  # fmt: skip


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: Any = None  # a method's config dataclass, chosen by the method group
    # the regularizer group, composed here so that regularizer=l1 and regularizer.weight=0.1 work on the command
    # line; it belongs to the method whose config has a regularizer field (method.regularizer: ${regularizer}),
    # and is recorded there only (svdbench.methods.base.METHOD_GROUPS)
    regularizer: SparsityRegularizer = field(default_factory=SparsityRegularizer)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    seed: int = 0
    save_model: bool = True
    init_from: str | None = None  # a dense run's directory or its dense.pt: the common starting point
    resume: bool = True  # continue from checkpoint.pt in the run directory, if there is one
    checkpoint: bool = True  # write checkpoint.pt after every epoch (and stage_<name>.pt after each stage)
    keep_checkpoints: bool = False  # keep them after the run completes

    def __post_init__(self) -> None:
        check(0 <= self.seed < 2**32, "seed", f"must be in [0, 2**32), got {self.seed}")
        empty = self.init_from is not None and not str(self.init_from).strip()
        check(not empty, "init_from", "is empty: give a dense run's directory, or null to train the dense model first")


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore: ``config_schema`` (the top level), ``trainer/default``,
    ``measure/default`` and ``method/<name>`` for every registered method (its ``Config`` dataclass,
    typed, with ``_target_`` naming the method class, since methods may share a config class, and its
    fields named after a group of :data:`~svdbench.methods.base.METHOD_GROUPS` reading that group:
    ``method.regularizer: ${regularizer}``), and the ``published`` resolver the reproduction presets
    read (idempotent)."""
    register_resolver()
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="trainer", name="default", node=TrainerConfig)
    cs.store(group="measure", name="default", node=MeasureConfig)
    for name, cls in METHODS.items():
        node = OmegaConf.structured(cls.Config)
        node._target_ = method_target(cls)
        for group in cls.Config.groups():  # the method reads its groups from the top level
            node[group] = f"${{{group}}}"
        cs.store(group="method", name=name, node=node)


def method_class(node: Any) -> type[Method]:
    """The method class a config's ``method`` node names by its ``_target_``."""
    target = node.get("_target_") if isinstance(node, (dict, DictConfig)) else getattr(node, "_target_", None)
    if not target:
        raise InputError("method._target_ is not set: choose a method (method=svd, ...)")
    cls = import_object(target, "method._target_")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise InputError(f"method._target_ {target!r} is not a svdbench Method")
    return cls


def renamed_key(full_key: str) -> str | None:
    """The new name of a renamed method key (``method.energy_train`` -> ``method.energy_kept``), or None."""
    prefix, _, key = str(full_key).partition(".")
    if prefix != "method":
        return None
    for cls in METHODS.items():
        new = cls[1].Config.renamed.get(key)
        if new:
            return f"method.{new}"
    return None


def _typed(schema: type, values: dict, what: str) -> Any:
    """``schema(**values)`` through OmegaConf: unknown keys and wrong types refused, ranges checked."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except Exception as err:  # OmegaConf's ValidationError / ConfigKeyError, __post_init__'s ValueError
        raise InputError(_explain(err, what)) from None


def _explain(err: BaseException, prefix: str) -> str:
    """One line for ``err``, naming the full key (``prefix`` + the key relative to the node that
    was checked) and, for a renamed key, its new name."""
    key = _full_key(err)
    full = f"{prefix}.{key}" if key and prefix else key
    new = renamed_key(full) if full else None
    if new:
        return f"{full} was renamed: use {new}"
    msg = one_line(err).split(" raised while resolving interpolation: ")[-1]  # a resolver's own message
    if key and f"(key: {key})" in msg:
        msg = msg.replace(f"(key: {key})", "").rstrip()
    return f"{msg} (key: {full})" if full and full not in msg else msg


def _full_key(err: BaseException) -> str | None:
    while err is not None:
        key = getattr(err, "full_key", None)
        if key:
            return str(key)
        err = err.__cause__
    return None


def explain(err: BaseException) -> str:
    """One line for an error Hydra or OmegaConf raised while composing, renamed keys named, and the
    choices of a config group where a choice was not found (``method=svdd``)."""
    options = getattr(err, "options", None)  # hydra.errors.MissingConfigException of a group option
    choices = f": choose from {', '.join(map(str, options))}" if options else ""
    text = _explain(err, "") + choices
    if "missing 1 required positional argument: 'pattern'" in text:  # Hydra's now resolver, given no pattern
        key = text[text.index(" (key: ") :] if " (key: " in text else ""
        text = "${now:} needs a strftime pattern, e.g. ${now:%Y-%m-%d_%H-%M-%S}" + key
    reserved = ("LexerNoViableAltException", "token recognition error", "mismatched input '='")
    if any(r in text for r in reserved):  # a character the grammar reserves (a second '=' in a value)
        text += " (quote a value holding such characters: key='value', within the shell's own quotes)"
    return text + _remedy(str(err), text)


#: Hydra's remedies, on the lines after its first one (which is all one_line keeps): said in the one line too
REMEDIES = (
    ("Ambiguous value for argument", " (a list is key=[a,b], a string key='a,b'; a sweep over the values needs -m)"),
    ("No match in the defaults list", "To append to your default list use "),
)


def _remedy(full: str, text: str) -> str:
    """The remedy Hydra gives for ``text`` on a later line of its message ``full``, as the end of the one line."""
    for first, remedy in REMEDIES:
        if first not in text:
            continue
        if not remedy.startswith("To "):
            return remedy
        line = next((x.strip() for x in full.splitlines() if x.strip().startswith(remedy)), "")
        return f" (to add it, {line[len(remedy) :]})" if line else ""
    return ""


def validate(cfg: DictConfig | dict, base: str | os.PathLike | None = None) -> Config:
    """The typed :class:`Config` of a composed config: every key checked against its schema (also
    keys added with ``+``), the method's config built from its class, every range checked; the method's
    relative paths (its ``Config.path_keys``: ``method.architecture_from``) made absolute against ``base``
    (the launch directory, also after ``hydra.job.chdir``; default: the current one), as ``init_from`` and
    ``dataset.root`` are. Raises InputError in one line."""
    register_resolver()  # also in a launcher's worker process, which may not have run register_configs
    try:
        values = (
            OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
            if isinstance(cfg, DictConfig)
            else dict(cfg)
        )
    except Exception as err:  # an interpolation that does not resolve, a mandatory value (???) not given
        raise InputError(explain(err)) from None
    method = values.pop("method", None)
    cls = method_class(method or {})
    for key in list(method or {}):
        if key in cls.Config.renamed:
            raise InputError(f"method.{key} was renamed: use method.{cls.Config.renamed[key]}")
    typed = _typed(Config, values, "")
    if isinstance(method, dict):
        launch = os.fspath(base) if base else os.getcwd()
        for key in cls.Config.path_keys:
            if isinstance(method.get(key), str) and method[key].strip():
                method[key] = absolute(method[key], launch)
    typed.method = _typed(cls.Config, method, "method")
    _check_finite(typed, "")
    _check_callable(typed.model._target_, "model", dict(num_classes=2, in_channels=1, **typed.model.kwargs))
    _check_callable(typed.dataset._target_, "dataset", dict(cfg=typed.dataset, seed=0))
    return typed


def _check_callable(target: str | None, key: str, call: dict) -> None:
    """A model's or dataset's ``_target_`` imports and takes the arguments it will be called with
    (the model: ``num_classes``, ``in_channels`` and ``model.kwargs``; the dataset: its config and
    the seed, by position); InputError in one line otherwise."""
    if not target:
        return
    fn = import_object(target, f"{key}._target_")
    if not callable(fn):
        raise InputError(f"{key}._target_ {target!r} is not callable")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or extension without a signature: left to the call
        return
    try:
        sig.bind(**call) if key == "model" else sig.bind(*call.values())
    except TypeError as err:
        where = "model.kwargs" if key == "model" else "dataset._target_"
        raise InputError(f"{where}: {target}() {err}") from None


def _check_finite(obj: Any, prefix: str) -> None:
    """Every number of a (nested) config is finite: ``inf`` and ``nan`` pass most range checks."""
    for f in dataclasses.fields(obj):
        v, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v):
            _check_finite(v, f"{key}.")
        values = v if isinstance(v, (list, tuple)) else [v]
        for x in values:
            if isinstance(x, float):
                check(math.isfinite(x), key, f"must be a finite number, got {v}")
