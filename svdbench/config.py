"""Config schemas (dataclasses) and their registration in Hydra's ConfigStore.

This is the only library module that knows Hydra, and only inside :func:`register_configs`.
OmegaConf checks keys and types when the config is composed (a misspelled key or a wrong
type fails there); ``__post_init__`` checks ranges when :func:`to_config` builds the objects.
Every message names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from .data import DATASETS
from .models import FAMILIES


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{key} {msg}")


@dataclass
class ModelConfig:
    family: str = "cifar_resnet"  # cifar_resnet | torchvision | timm
    name: str = "resnet8"

    def __post_init__(self) -> None:
        _check(self.family in FAMILIES, "model.family", f"must be one of {FAMILIES}, got {self.family!r}")


@dataclass
class DatasetConfig:
    name: str = "fashion_mnist"  # a registered dataset (svdbench.data.DATASETS), or your own with _target_
    _target_: str | None = None  # "module.function": your dataset, called as function(cfg) -> Splits
    kwargs: Dict[str, Any] = field(default_factory=dict)  # your own settings, read by your _target_
    root: str | None = None  # None: search the usual places (see svdbench.data)
    download: bool = True  # torchvision download where files are missing and the network allows
    train_subset: int | None = None  # first N training samples
    test_subset: int | None = None
    augment: bool = True
    image_size: int = 224  # imagenet only
    shape: List[int] = field(default_factory=lambda: [3, 32, 32])  # synthetic only: C, H, W
    num_classes: int = 10  # synthetic only
    num_train: int = 512  # synthetic only
    num_test: int = 256  # synthetic only

    def __post_init__(self) -> None:
        _check(
            self._target_ is not None or self.name in DATASETS,
            "dataset.name",
            f"must be one of {DATASETS} (or set dataset._target_), got {self.name!r}",
        )
        for key in ("train_subset", "test_subset"):
            v = getattr(self, key)
            _check(v is None or v > 0, f"dataset.{key}", f"must be positive, got {v}")
        _check(
            len(self.shape) == 3 and min(self.shape) > 0, "dataset.shape", f"must be [C, H, W] > 0, got {self.shape}"
        )
        _check(self.num_classes >= 2, "dataset.num_classes", f"must be >= 2, got {self.num_classes}")


@dataclass
class TrainerConfig:
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    finetune_lr: float | None = None  # None: same as lr
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | multistep | constant, per stage
    finetune_schedule: str | None = None  # schedule of the fine-tuning stage; None: same as schedule
    milestones: List[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of a stage
    gamma: float = 0.1
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1000
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 0  # DataLoader workers (ImageNet folders only)
    deterministic: bool = True
    progress: bool = True
    bn_recalibration_batches: int = 50  # after compression: re-estimate BatchNorm statistics (0: off)
    # CUDA speed options (svdbench.train.resolve_accel); "auto" turns each on only where it is safe
    amp: str = "auto"  # auto | off | bf16 | fp16 (auto: bf16 on CUDA where supported, else fp16; off on CPU)
    channels_last: str = "auto"  # auto | true | false (auto: on for CUDA)
    compile: bool = False  # torch.compile the model for the training stages
    cudnn_benchmark: str = "auto"  # auto | true | false (auto: on for CUDA unless deterministic)

    def __post_init__(self) -> None:
        _check(self.optimizer in ("sgd", "adam"), "trainer.optimizer", f"must be sgd or adam, got {self.optimizer!r}")
        _check(
            self.schedule in ("cosine", "multistep", "constant"),
            "trainer.schedule",
            f"must be cosine, multistep or constant, got {self.schedule!r}",
        )
        _check(
            self.finetune_schedule in (None, "cosine", "multistep", "constant"),
            "trainer.finetune_schedule",
            f"must be null, cosine, multistep or constant, got {self.finetune_schedule!r}",
        )
        _check(self.lr > 0, "trainer.lr", f"must be > 0, got {self.lr}")
        _check(
            self.finetune_lr is None or self.finetune_lr > 0,
            "trainer.finetune_lr",
            f"must be > 0, got {self.finetune_lr}",
        )
        _check(self.weight_decay >= 0, "trainer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(0 <= self.momentum < 1, "trainer.momentum", f"must be in [0, 1), got {self.momentum}")
        _check(
            all(0 < m < 1 for m in self.milestones),
            "trainer.milestones",
            f"are fractions of a stage, each in (0, 1), got {list(self.milestones)}",
        )
        _check(self.epochs >= 0, "trainer.epochs", f"must be >= 0, got {self.epochs}")
        _check(self.batch_size > 0, "trainer.batch_size", f"must be > 0, got {self.batch_size}")
        _check(self.eval_batch_size > 0, "trainer.eval_batch_size", f"must be > 0, got {self.eval_batch_size}")
        _check(
            self.device in ("auto", "cpu", "cuda"), "trainer.device", f"must be auto, cpu or cuda, got {self.device!r}"
        )
        _check(self.bn_recalibration_batches >= 0, "trainer.bn_recalibration_batches", "must be >= 0")
        _check(self.num_workers >= 0, "trainer.num_workers", f"must be >= 0, got {self.num_workers}")
        _check(
            self.amp in ("auto", "off", "bf16", "fp16"),
            "trainer.amp",
            f"must be auto, off, bf16 or fp16, got {self.amp!r}",
        )
        for key in ("channels_last", "cudnn_benchmark"):
            v = str(getattr(self, key)).lower()
            _check(v in ("auto", "true", "false"), f"trainer.{key}", f"must be auto, true or false, got {v!r}")
            setattr(self, key, v)
        _check(
            not (self.cudnn_benchmark == "true" and self.deterministic),
            "trainer.cudnn_benchmark",
            "is true, which contradicts trainer.deterministic=true (set one of them false)",
        )


@dataclass
class RegularizerConfig:
    _target_: str = "svdbench.regularizers.SparsityRegularizer"
    kind: str = "hoyer"  # none | l1 | hoyer | hoyer_square
    weight: float = 0.0  # lambda_s

    def __post_init__(self) -> None:
        kinds = ("none", "l1", "hoyer", "hoyer_square")
        _check(self.kind in kinds, "regularizer.kind", f"must be one of {kinds}, got {self.kind!r}")
        _check(self.weight >= 0, "regularizer.weight", f"must be >= 0, got {self.weight}")


@dataclass
class MethodConfig:
    _target_: str = "svdbench.methods.Dense"
    finetune_epochs: int = 0

    def __post_init__(self) -> None:
        _check(self.finetune_epochs >= 0, "method.finetune_epochs", f"must be >= 0, got {self.finetune_epochs}")


@dataclass
class SVDMethodConfig(MethodConfig):
    _target_: str = "svdbench.methods.SVDTraining"
    decomposition: str = "channel"  # channel | spatial
    init: str = "random"  # random | svd (of the current weights)
    orthogonality: float = 1.0  # lambda_o
    energy: float | None = 0.05  # e: drop the tail holding at most e of sum(s^2)
    threshold: float | None = None  # alternative: drop |s| < threshold (set energy to null)
    skip: List[str] = field(default_factory=list)  # fnmatch patterns of module names left dense
    decompose_linear: bool = False
    merge_unprofitable: bool = True  # deploy a layer dense where its factor pair costs more
    energies: List[float] = field(default_factory=list)  # energy sweep: extra points from the same trained model

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            self.decomposition in ("channel", "spatial"),
            "method.decomposition",
            f"must be channel or spatial, got {self.decomposition!r}",
        )
        _check(self.init in ("random", "svd"), "method.init", f"must be random or svd, got {self.init!r}")
        _check(self.orthogonality >= 0, "method.orthogonality", f"must be >= 0, got {self.orthogonality}")
        _check(
            (self.energy is None) != (self.threshold is None),
            "method.energy",
            "and method.threshold: set exactly one (the other null)",
        )
        _check(self.energy is None or 0 <= self.energy < 1, "method.energy", f"must be in [0, 1), got {self.energy}")
        _check(
            all(0 <= e < 1 for e in self.energies), "method.energies", f"must each be in [0, 1), got {self.energies}"
        )
        _check(self.threshold is None or self.threshold >= 0, "method.threshold", f"must be >= 0, got {self.threshold}")


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
        _check(self.name in ("console", "wandb"), "logger.name", f"must be console or wandb, got {self.name!r}")
        _check(
            self.mode in ("offline", "online", "disabled"),
            "logger.mode",
            f"must be offline, online or disabled, got {self.mode!r}",
        )


@dataclass
class MeasureConfig:
    """What the measure step records beside MACs: realized latency (svdbench.latency)."""

    latency: bool = True  # time the deployed and the dense model (eager PyTorch) into results["latency"]
    batch_sizes: List[int] = field(default_factory=lambda: [1, 64])
    onnx: bool = False  # also export both to ONNX, check against PyTorch and time them in onnxruntime (CPU)
    max_seconds: float = 2.0  # timed part per model, batch size and runtime (adaptive repeats)

    def __post_init__(self) -> None:
        _check(
            len(self.batch_sizes) > 0 and all(b > 0 for b in self.batch_sizes),
            "measure.batch_sizes",
            f"must be a non-empty list of positive sizes, got {list(self.batch_sizes)}",
        )
        _check(self.max_seconds > 0, "measure.max_seconds", f"must be > 0, got {self.max_seconds}")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: Any = None  # one of the method schemas, chosen by the method group
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    seed: int = 0
    save_model: bool = True
    init_from: str | None = None  # a dense run's directory or its dense.pt: the common starting point
    resume: bool = True  # continue from checkpoint.pt in the run directory, if there is one
    checkpoint: bool = True  # write checkpoint.pt after every epoch (and stage_<name>.pt after each stage)
    keep_checkpoints: bool = False  # keep them after the run completes


METHOD_SCHEMAS: dict[str, type] = {"dense_schema": MethodConfig, "svd_schema": SVDMethodConfig}


def register_configs(extra_method_schemas: dict[str, type] | None = None) -> None:
    """Store the schemas in Hydra's ConfigStore: ``config_schema`` (top level) and, in the
    ``method`` group, one ``<name>_schema`` per method that its YAML file extends."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for name, schema in {**METHOD_SCHEMAS, **(extra_method_schemas or {})}.items():
        cs.store(group="method", name=name, node=schema)
    cs.store(group="regularizer", name="regularizer_schema", node=RegularizerConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
    cs.store(group="dataset", name="dataset_schema", node=DatasetConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    cs.store(group="measure", name="measure_schema", node=MeasureConfig)


def to_config(cfg) -> Config:
    """Build the typed :class:`Config` (running every range check) from a composed DictConfig."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg)
