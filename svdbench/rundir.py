"""A run directory as svdbench's own: it can be written (:func:`check_run_dir`), and one process at a
time writes into it (:class:`RunLock`)."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .errors import InputError, one_line

__all__ = ["RunLock", "check_run_dir"]


def check_run_dir(run_dir: str | os.PathLike) -> None:
    """The run directory can be written: created if missing (and removed again if that is all that
    happened), a file written and deleted in it. Refuses ``/`` and the home directory themselves (a
    run writes and later deletes files by name in its directory). InputError in one line naming it."""
    path = Path(os.path.abspath(run_dir))
    if path in (Path("/"), Path.home()):
        raise InputError(f"run directory {path} is not a directory of its own: give hydra.run.dir=<a new directory>")
    created: list[Path] = []
    try:
        if path.exists() and not path.is_dir():
            raise InputError(f"run directory {path} is a file, not a directory")
        created = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:  # not permitted, read-only, a name too long, no such parent ...
        for p in created:  # deepest first
            shutil.rmtree(p, ignore_errors=True)
        raise InputError(f"run directory {_short(path)} cannot be written ({err.strerror or one_line(err)})") from None


def _short(path: Path) -> str:
    s = str(path)
    return s if len(s) <= 120 else s[:80] + "..." + s[-30:]


class RunLock:
    """``with RunLock(run_dir):`` this process alone writes into ``run_dir``: an advisory lock
    (``fcntl.flock`` on ``<run_dir>/.svdbench.lock``, released by the kernel when the process dies,
    so a killed run never leaves a stale lock). A second process finds it taken and gets an
    InputError naming the holder's pid."""

    NAME = ".svdbench.lock"

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / self.NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
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
