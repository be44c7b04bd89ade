"""The directories this process writes under a lock (:class:`svdbench.rundir.RunLock`), each known by the
identity (device, inode) of its lock file as taken. A writer asks :func:`check_in_place` before it writes:
a directory moved or removed meanwhile is never made again at its old path, where a second command could
take a new lock and two processes would then write one run (hostile round 19, r19b F1)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["DirectoryGone", "check_in_place", "forget", "identity", "is_in_place", "register", "watched"]

#: absolute lock path -> the identities (st_dev, st_ino) of the lock file this process took (or writes under,
#: lent) and of its directory, as taken
_locks: dict[str, tuple[tuple[int, int], tuple[int, int] | None]] = {}


#: absolute folder -> its identity (st_dev, st_ino) when it was first written (:func:`watched`)
_folders: dict[str, tuple[int, int] | None] = {}


@contextlib.contextmanager
def watched(folder: str | os.PathLike) -> Iterator[None]:
    """Within the block, every write under ``folder`` (an operating point's directory, made here where it is not
    yet) checks that ``folder`` is still the directory it was: not moved away, removed, or replaced by another's
    folder (DirectoryGone)."""
    path = os.path.abspath(folder)
    os.makedirs(path, exist_ok=True)
    _folders[path] = identity(path)
    try:
        yield
    finally:
        _folders.pop(path, None)


class DirectoryGone(OSError):
    """A locked directory was moved or removed while this process wrote in it, or a folder in it replaced by a
    link: nothing more is written there."""


def identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """What is at ``path`` itself (a link is not followed), as (st_dev, st_ino); None where nothing is."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _of_fd(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def register(lock_path: str | os.PathLike, fd: int | None = None) -> None:
    """``lock_path`` is held by this process: the file of ``fd`` (its open lock), else the file there now."""
    path = os.path.abspath(lock_path)
    ident = _of_fd(fd) if fd is not None else identity(path)
    if ident is not None:
        _locks[path] = ident, identity(os.path.dirname(path))


def forget(lock_path: str | os.PathLike) -> None:
    _locks.pop(os.path.abspath(lock_path), None)


def is_in_place(lock_path: str | os.PathLike, fd: int) -> bool:
    """Whether the file at ``lock_path`` is still the one open as ``fd`` (not moved away with its directory)."""
    return identity(os.path.abspath(lock_path)) == _of_fd(fd)


def check_in_place(path: str | os.PathLike) -> None:
    """Before a file is written at ``path``: every locked directory that holds it still holds the lock file this
    process took there (not moved, not removed); DirectoryGone, in one line, otherwise."""
    target = os.path.abspath(path)
    holding = [(lock, ident, folder) for lock, (ident, folder) in _locks.items()
               if target.startswith(os.path.dirname(lock) + os.sep)]  # fmt: skip
    for lock, ident, folder in holding:
        where = os.path.dirname(lock)
        if identity(lock) == ident:
            continue
        if folder is not None and identity(where) == folder:  # the directory is in place, its lock file is not
            raise DirectoryGone(
                f"{lock} was removed or replaced while svdbench wrote in {where}: nothing more is written there "
                "(another command may write there now); rerun the same command to resume"
            )
        raise DirectoryGone(
            f"{where} was moved or removed while svdbench wrote in it: nothing more is written there (a new "
            "directory at that path would be another run's)"
        )
    for folder, ident in list(_folders.items()):
        if target.startswith(folder + os.sep) and identity(folder) != ident:
            raise DirectoryGone(f"{folder} was moved, removed or replaced while svdbench wrote in it: nothing more is "
                                "written there")  # fmt: skip
    for lock, _, _ in holding:  # a folder between the locked directory and the file, made a link meanwhile
        where, folder = os.path.dirname(lock), os.path.dirname(target)
        while len(folder) > len(where):
            if os.path.islink(folder):
                raise DirectoryGone(f"{folder} became a link while svdbench wrote in {where}: svdbench never "
                                    "writes through a link; nothing more is written there")  # fmt: skip
            folder = os.path.dirname(folder)
