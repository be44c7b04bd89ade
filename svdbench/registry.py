"""Named registries: how methods, model families and datasets become choosable by name.

A registry maps a name to an object (a class or a factory function). Entries register
themselves with a decorator where they are defined, so adding one needs no edit to any list::

    MODELS = Registry("model family")

    @MODELS.register("cifar_resnet")
    def build_cifar_resnet(name, num_classes, in_channels): ...

    MODELS.get("cifar_resnet")     # the function; an unknown name is an InputError naming the choices
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import InputError, one_line

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in registration order. ``kind`` names the entries in messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under ``name`` and returns it unchanged. Registering
        the same object twice is harmless (a re-imported module); another object under a taken name
        is a ValueError."""

        def add(obj: T) -> T:
            old = self._entries.get(name)
            if old is not None and _qualname(old) != _qualname(obj):
                raise ValueError(f"{self.kind} {name!r} is already registered ({_qualname(old)})")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise InputError(f"unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}") from None

    def find(self, name: str) -> T | None:
        """The entry registered as ``name``, or None."""
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def import_object(path: str, what: str) -> Any:
    """The object at ``"package.module.attr"`` (a ``_target_``); an InputError naming ``what`` (the
    config key) when it cannot be imported."""
    module, _, attr = str(path).rpartition(".")
    try:
        if not module:
            raise ImportError("give module.name")
        return getattr(importlib.import_module(module), attr)
    except Exception as err:  # ImportError, AttributeError, or an error raised by the module itself
        raise InputError(f"{what}: cannot import {path!r} ({one_line(err)})") from None
