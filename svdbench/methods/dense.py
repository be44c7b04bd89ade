"""Plain training: the reference every reduction is measured against."""

from dataclasses import dataclass

from .base import Method, MethodConfig, register_method


@dataclass
class DenseConfig(MethodConfig):
    _target_: str = f"{__name__}.Dense"


@register_method("dense")
class Dense(Method):
    Config = DenseConfig
