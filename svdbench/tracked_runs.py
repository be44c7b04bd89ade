"""What a run's results.json records of its W&B run (``tracking``), and the W&B folders that record names.

``tracking`` is ``{"id": <W&B run id>, "dirs": [<folder>, ...], "steps": <epochs logged>}``: one W&B run
per svdbench run. A run cut and resumed continues the same W&B run id (``resume="allow"``), in a new folder
per leg (``wandb sync`` uploads the folders of one id in the order they were started), its epochs logged
from ``steps`` on. A folder inside the run directory is recorded relative to it (the run can be moved),
any other absolutely; an operating point's record holds its run's (the same W&B run). A run that
replaces it (``resume=false``) removes exactly the folders recorded (:func:`remove`): each must still be
W&B's folder of that id, ``[offline-]run-<YYYYMMDD_HHMMSS>-<id>`` holding ``run-<id>.wandb``, and no link.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["check", "describe", "folders", "remove"]

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: the links W&B keeps beside its run folders, pointing into the latest one
_LINKS = ("latest-run", "debug.log", "debug-internal.log")


def check(info: Any) -> dict | None:
    """``info`` as a run's ``tracking`` record when it is one (an id, a list of folder names, a step count),
    else None: an edited record names no W&B run to continue, nor any folder to remove."""
    if not isinstance(info, dict) or not isinstance(info.get("id"), str) or not _ID.fullmatch(info["id"]):
        return None
    dirs, steps = info.get("dirs", []), info.get("steps", 0)
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d for d in dirs):
        return None
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        return None
    return {"id": info["id"], "dirs": list(dirs), "steps": steps}


def describe(run_dir: str | os.PathLike, folder: str | os.PathLike, previous: dict | None, run_id: str) -> dict:
    """The ``tracking`` record of a W&B run ``run_id`` writing into ``folder``, after the ``previous`` legs
    of the same run (their folders and steps)."""
    here, where = Path(os.path.abspath(run_dir)), Path(os.path.abspath(folder))
    name = str(where.relative_to(here)) if where.is_relative_to(here) else str(where)
    before = check(previous) if previous and previous.get("id") == run_id else None
    dirs = [d for d in (before or {}).get("dirs", []) if d != name]
    return {"id": run_id, "dirs": [*dirs, name], "steps": (before or {}).get("steps", 0)}


def folders(run_dir: str | os.PathLike, info: Any) -> list[Path]:
    """The W&B folders ``info`` records that are still that run's own (named for its id, holding its
    ``run-<id>.wandb``, no link)."""
    info = check(info)
    if info is None:
        return []
    pattern = re.compile(rf"(offline-)?run-\d{{8}}_\d{{6}}-{re.escape(info['id'])}")
    out = []
    for name in info["dirs"]:
        path = Path(name) if os.path.isabs(name) else Path(run_dir) / name
        own = pattern.fullmatch(path.name) and not path.is_symlink() and path.is_dir()
        if own and (path / f"run-{info['id']}.wandb").is_file() and not (path / f"run-{info['id']}.wandb").is_symlink():
            out.append(path)
    return out


def remove(run_dir: str | os.PathLike, info: Any) -> list[Path]:
    """Remove the W&B folders of ``info`` (:func:`folders`), W&B's links into them, and a ``wandb`` folder
    left empty. Returns the folders removed."""
    removed = []
    for path in folders(run_dir, info):
        shutil.rmtree(path)  # unlinks links inside, never follows them
        removed.append(path)
        for link in (path.parent / n for n in _LINKS):
            with contextlib.suppress(OSError):
                if link.is_symlink() and Path(os.readlink(link)).parts[:1] == (path.name,):
                    link.unlink()
        if path.parent.name == "wandb":
            with contextlib.suppress(OSError):
                path.parent.rmdir()
    return removed
