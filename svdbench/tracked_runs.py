"""What a run's results.json records of its W&B run (``tracking``), and the W&B folders that are the run's own.

``tracking`` is ``{"id": <W&B run id>, "root": <the folder W&B writes under>, "dirs": [<folder>, ...], "steps":
<epochs logged>}``: one W&B run per svdbench run. The id is chosen and recorded before W&B starts (a run cut while
W&B starts leaves a folder of that id, found by it). A run cut and resumed continues the same id
(``resume="allow"``), in a new folder per leg (``wandb sync`` uploads the folders of one id in the order they were
started); every epoch goes at the step an uncut run gives it (:meth:`svdbench.stages.Leg.step`). Paths inside
the run directory are recorded relative to it (the run can be moved), others absolutely; an operating point's
record holds its run's (the same W&B run).

A folder is the run's own (:func:`folders`) when it is named as W&B names its folders
(``[offline-]run-<YYYYMMDD_HHMMSS>-<id>``), is no link, and either lies inside the run directory (no link on the
way, no ``..``) or holds the mark svdbench leaves in it (:data:`MARK`) naming this run directory: a folder outside
that a copy of the run directory still records is the original's, never the copy's. A run that replaces it
(``resume=false``) removes exactly those (:func:`remove`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import string
from pathlib import Path
from typing import Any

__all__ = ["MARK", "check", "claim", "continues", "folders", "new_id", "remove", "reserve"]

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FOLDER = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-([A-Za-z0-9_-]{1,128})")
#: the file svdbench leaves in each W&B folder of a run: the run directory (links resolved) it belongs to
MARK = "svdbench-run-dir"
#: the links W&B keeps beside its run folders, pointing into the latest one
_LINKS = ("latest-run", "debug.log", "debug-internal.log")


def new_id() -> str:
    """A W&B run id as W&B makes them: 8 random lower-case letters and digits."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def check(info: Any) -> dict | None:
    """``info`` as a run's ``tracking`` record when it is one (an id, folder names, a step count, a root), else
    None: an edited record names no W&B run to continue, nor any folder to remove."""
    if not isinstance(info, dict) or not isinstance(info.get("id"), str) or not _ID.fullmatch(info["id"]):
        return None
    dirs, steps, root = info.get("dirs", []), info.get("steps", 0), info.get("root")
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d for d in dirs):
        return None
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        return None
    if root is not None and (not isinstance(root, str) or not root):
        return None
    return {"id": info["id"], "root": root, "dirs": list(dirs), "steps": steps}


def _name(run_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    here, where = Path(os.path.abspath(run_dir)), Path(os.path.abspath(path))
    return str(where.relative_to(here)) if where.is_relative_to(here) else str(where)


def _path(run_dir: str | os.PathLike, name: str) -> Path:
    return Path(name) if os.path.isabs(name) else Path(run_dir) / name


def reserve(run_dir: str | os.PathLike, root: str | os.PathLike, previous: Any, run_id: str) -> dict:
    """The ``tracking`` record of the leg about to start, before W&B writes anything: ``previous``'s id and steps
    where the run goes on in it (:func:`continues`), else ``run_id`` from step 0; the earlier legs' folders kept
    (a run replacing this one removes them too)."""
    previous = check(previous)
    going_on = previous is not None and continues(run_dir, previous)
    return {
        "id": previous["id"] if going_on else run_id,
        "root": _name(run_dir, root),
        "dirs": list(previous["dirs"]) if previous else [],
        "steps": previous["steps"] if going_on else 0,
    }


def claim(run_dir: str | os.PathLike, info: dict, folder: str | os.PathLike) -> None:
    """Record ``folder`` (W&B's, just started) in ``info`` and leave the mark naming the run directory in it."""
    name = _name(run_dir, folder)
    if name not in info["dirs"]:
        info["dirs"].append(name)
    with contextlib.suppress(OSError):  # unmarked, a folder outside is left in place: never one of another's
        (Path(folder) / MARK).write_text(os.path.realpath(run_dir))


def _mark(path: Path) -> str | None:
    mark = path / MARK
    if mark.is_symlink() or not mark.is_file():
        return None
    try:
        return mark.read_text()[:4096]
    except (OSError, UnicodeDecodeError):
        return None


def _inside(run_dir: str | os.PathLike, path: Path) -> bool:
    """``path`` lies inside ``run_dir``: no ``..`` and no link on the way from it."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(run_dir))
    if os.path.isabs(rel) or rel == "." or rel.split(os.sep)[0] == "..":
        return False
    here = Path(os.path.abspath(run_dir))
    for part in Path(rel).parts:
        here = here / part
        if here.is_symlink():
            return False
    return True


def _candidates(run_dir: str | os.PathLike, info: dict) -> list[Path]:
    """The folders ``info`` records, and those W&B made under its root for its id (a leg cut while W&B started)."""
    found = [_path(run_dir, d) for d in info["dirs"]]
    if info["root"] is not None:
        wandb_dir = _path(run_dir, info["root"]) / "wandb"
        with contextlib.suppress(OSError):
            found += sorted(p for p in wandb_dir.iterdir() if p.name.endswith(f"-{info['id']}"))
    return list(dict.fromkeys(found))


def _own(run_dir: str | os.PathLike, path: Path) -> bool:
    if not _FOLDER.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
        return False
    return _inside(run_dir, path) or _mark(path) == os.path.realpath(run_dir)


def folders(run_dir: str | os.PathLike, info: Any) -> list[Path]:
    """The W&B folders of the run in ``run_dir`` that ``info`` (its ``tracking``) names and that are its own."""
    info = check(info)
    return [p for p in _candidates(run_dir, info) if _own(run_dir, p)] if info else []


def continues(run_dir: str | os.PathLike, info: Any) -> bool:
    """Whether a leg of the run in ``run_dir`` goes on in the W&B run ``info`` records: every folder of that id
    made so far is unmarked (cut while W&B started) or marked as this run directory's. A run directory copied or
    moved since starts a W&B run of its own (the first would merge another run's legs into it)."""
    info = check(info)
    if info is None:
        return False
    run = os.path.realpath(run_dir)
    of_id = [p for p in _candidates(run_dir, info) if p.name.endswith(f"-{info['id']}") and p.is_dir()]
    return all(_mark(p) in (None, run) for p in of_id)


def remove(run_dir: str | os.PathLike, info: Any) -> list[Path]:
    """Remove the W&B folders of ``info`` that are the run's own (:func:`folders`), W&B's links into them, and a
    ``wandb`` folder left empty. Returns the folders removed."""
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
