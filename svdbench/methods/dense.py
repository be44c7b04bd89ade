"""Plain training: the reference every reduction is measured against."""

from .base import Method, MethodConfig, register_method


@register_method("dense")
class Dense(Method):
    Config = MethodConfig
