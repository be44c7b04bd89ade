"""Plain training: the reference every reduction is measured against."""

from .base import Method


class Dense(Method):
    name = "dense"
