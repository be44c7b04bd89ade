"""Config checks that name the key: every range, choice and either-or rule of a schema goes through these."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["check", "check_choice", "check_exactly_one", "rounded_down"]


def check(cond: bool, key: str, msg: str) -> None:
    """``ValueError("<key> <msg>")`` unless ``cond``."""
    if not cond:
        raise ValueError(f"{key} {msg}")


def check_choice(value: Any, choices: Iterable[Any], key: str) -> None:
    """``value`` must be one of ``choices``: ``"method.decomposition must be channel or spatial, got 'x'"``."""
    choices = list(choices)
    names = [str(c) for c in choices]
    listed = " or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " or " + names[-1]
    check(value in choices, key, f"must be {listed}, got {value!r}")


def check_exactly_one(values: dict[str, Any]) -> None:
    """Exactly one of the keys (dotted names) holds a value, the others null."""
    keys = list(values)
    set_ = [k for k, v in values.items() if v is not None]
    check(len(set_) == 1, keys[0], f"and {' and '.join(keys[1:])}: set exactly one (the other null)")


def rounded_down(x: float, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, rounded down: a limit printed this way never reads as a target it
    falls short of (21.679 is "21.67", not "21.68")."""
    scale = 10**digits
    return f"{math.floor(x * scale) / scale:.{digits}f}"
