"""Paths as the operating system reads them.

``os.path.abspath`` drops a ``..`` as text: ``lk/../x``, where ``lk`` is a link to ``/data/deep``, becomes ``x``
beside ``lk``, while the system (and the shell) goes up from the link's target, to ``/data/x``. svdbench makes
every path it is given absolute with :func:`absolute`, which reads such a ``..`` as the system does, and refuses
a directory to write into that is :func:`two_places`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["absolute", "two_places"]


def absolute(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """``path`` (``~`` expanded) made absolute against ``base`` (default: the current directory) as the system
    reads it: as written where it holds no ``..`` (a link in it stays as given), else with its links resolved."""
    p = os.path.join(os.fspath(base) if base is not None else os.getcwd(), os.path.expanduser(os.fspath(path)))
    return os.path.realpath(p) if ".." in Path(p).parts else os.path.abspath(p)


def two_places(path: str | os.PathLike) -> str | None:
    """Where ``path`` is for the operating system when that is not where it is read as written: a ``..`` after a
    link (``lk/../x``). None when both are one place. A directory named so would be locked in one place and
    written in the other."""
    if ".." not in Path(path).parts:
        return None
    physical, written = os.path.realpath(path), os.path.realpath(os.path.abspath(path))
    return physical if physical != written else None
