"""results.json: one schema for every method, written atomically (temporary file, then rename)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1


def versions() -> dict[str, str]:
    import torch

    from . import __version__
    from .measure import fvcore_version

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fvcore": fvcore_version(),
        "svdbench": __version__,
    }


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` so a crash leaves the old file or none, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file, then rename: never a half-written file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_results(run_dir: str | os.PathLike, results: dict) -> Path:
    return write_json_atomic(Path(run_dir) / RESULTS_FILE, {"schema": SCHEMA_VERSION, **results})


def read_results(path: str | os.PathLike) -> dict:
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or "status" not in data:
        raise ValueError(f"{path}: not a svdbench results file")
    return data
