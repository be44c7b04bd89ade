"""A run directory as svdbench's own: it can be written, holds no file svdbench did not write under
a name svdbench writes, and no link where svdbench or Hydra write (:func:`check_run_dir`); and one
process at a time writes into it (:class:`RunLock`)."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .checkpoint import CHECKPOINT, DENSE_CHECKPOINT, DEPLOYED_FILES, STAGES, load_checkpoint
from .errors import CheckpointError, InputError, one_line
from .results import RESULTS_FILE, read_results

__all__ = ["OWN_FILES", "RunLock", "check_run_dir", "check_sweep_dir", "clear_run"]

LOCK = ".svdbench.lock"
#: the files a run of svdbench leaves in its directory besides results.json
OWN_FILES = (CHECKPOINT, *(f"stage_{s}.pt" for s in STAGES), DENSE_CHECKPOINT, *DEPLOYED_FILES)
#: the names svdbench and Hydra write in a run or sweep directory: none may be a link
WRITTEN = (LOCK, RESULTS_FILE, *OWN_FILES, "run.log", ".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml",
           ".hydra/overrides.yaml", "multirun.yaml")  # fmt: skip


def check_run_dir(run_dir: str | os.PathLike) -> None:
    """The run directory can be written: created if missing (and removed again: this is a check), a
    file written and deleted in it. Refuses ``/`` and the home directory themselves (a
    run writes and later deletes files by name in its directory), a link where svdbench or Hydra
    write (:data:`WRITTEN`), and files of svdbench's names (:data:`OWN_FILES`) that no run of
    svdbench left: without a results.json and not svdbench checkpoints. InputError in one line."""
    check_sweep_dir(run_dir, "run directory")
    path = Path(os.path.abspath(run_dir))
    if (path / RESULTS_FILE).exists():
        return
    present = [n for n in OWN_FILES if (path / n).is_file()]
    if present and not any(_our_checkpoint(path / n) for n in present):  # a killed run of ours leaves checkpoints
        raise InputError(
            f"run directory {_short(path)} holds {', '.join(present)} but no results.json: files "
            "svdbench did not write are never replaced; use another run directory"
        )


def _our_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint a run of svdbench wrote (``checkpoint.pt``, ``stage_<name>.pt``)."""
    if path.name not in (CHECKPOINT, *(f"stage_{s}.pt" for s in STAGES)):
        return False
    try:
        load_checkpoint(path)
    except CheckpointError:
        return False
    return True


def check_sweep_dir(run_dir: str | os.PathLike, what: str = "sweep directory") -> None:
    """A run's or a sweep's directory can be made and written, and holds no link where svdbench or
    Hydra write: InputError in one line naming it (an empty name is refused, not taken as ``.``)."""
    if not str(run_dir).strip():
        raise InputError(f"the {what} is empty: give hydra.{'run' if what.startswith('run') else 'sweep'}.dir=<dir>")
    path = Path(os.path.abspath(run_dir))
    if path in (Path("/"), Path.home()):
        raise InputError(f"{what} {path} is not a directory of its own: give a new directory")
    created: list[Path] = []
    try:
        if path.exists() and not path.is_dir():
            raise InputError(f"{what} {path} is a file, not a directory")
        created = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:  # not permitted, read-only, a name too long, no such parent ...
        raise InputError(f"{what} {_short(path)} cannot be written ({err.strerror or one_line(err)})") from None
    finally:  # a check: what it made to try is removed again (deepest first)
        for p in created:
            shutil.rmtree(p, ignore_errors=True)
    links = [n for n in WRITTEN if (path / n).is_symlink()]
    if links:
        raise InputError(
            f"{what} {_short(path)}: {links[0]} is a link ({os.readlink(path / links[0])}); svdbench "
            "never writes through a link: remove it or use another directory"
        )


def _short(path: Path) -> str:
    s = str(path)
    return s if len(s) <= 120 else s[:80] + "..." + s[-30:]


class RunLock:
    """``with RunLock(run_dir):`` this process alone writes into ``run_dir``: an advisory lock
    (``fcntl.flock`` on ``<run_dir>/.svdbench.lock``, released by the kernel when the process dies,
    so a killed run never leaves a stale lock). A second process finds it taken and gets an
    InputError naming the holder's pid."""

    NAME = LOCK

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / self.NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as err:  # ELOOP: a link planted where the lock goes
            raise InputError(f"{self.path} cannot be opened as svdbench's lock ({err.strerror}): remove it") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(
                f"{self.path.parent} is in use by another svdbench run (pid {holder}): wait for it to "
                "finish or use another run directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # while still held: no one can take a lock on it meanwhile
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def clear_run(run_dir: str | os.PathLike) -> list[Path]:
    """Remove what a previous run left in ``run_dir`` (its results.json, checkpoints, dense.pt, deployed model,
    and the same in the directories of its operating points), before a run replaces it
    (``resume=false``): a report or ``svdbench latency`` must never count what the new run did not
    make. Only svdbench's names are removed; a results.json that is not svdbench's is refused
    (InputError), and nothing else in the directory is touched. Returns the files removed."""
    path = Path(run_dir)
    results = path / RESULTS_FILE
    if not results.is_file():
        return []
    try:
        record = read_results(results)
    except (ValueError, OSError) as err:
        raise InputError(
            f"{results} is not a svdbench result ({one_line(err)}): svdbench replaces only its own "
            "runs; use another run directory"
        ) from None
    points = [
        Path(e["path"]).parent
        for e in record.get("operating_points") or record.get("energy_sweep") or []
        if isinstance(e, dict) and isinstance(e.get("path"), str)
    ]
    points += [p.parent for p in path.glob(f"*/{RESULTS_FILE}") if _point_of(p) == path.resolve()]
    removed = []
    for d in dict.fromkeys(q.resolve() for q in points):
        if d.parent == path.resolve() and d.is_dir():  # only points inside this run directory
            removed += _remove(d, (RESULTS_FILE, *OWN_FILES))
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    return removed + _remove(path, (RESULTS_FILE, *OWN_FILES))


def _point_of(results: Path) -> Path | None:
    try:
        record = read_results(results)
    except (ValueError, OSError):
        return None
    parent = record.get("point_of") or record.get("energy_sweep_parent")
    return Path(parent).resolve() if isinstance(parent, str) else None


def _remove(directory: Path, names: tuple[str, ...]) -> list[Path]:
    gone = []
    for name in names:
        f = directory / name
        if f.is_file() or f.is_symlink():
            f.unlink()
            gone.append(f)
    return gone
