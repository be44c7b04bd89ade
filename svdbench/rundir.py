"""A run directory as svdbench's own: it can be written; it is no link, and holds no link, nor a file of
the wrong kind, where svdbench or Hydra write; it holds no file svdbench did not write under a name
svdbench writes (:func:`check_run_dir`); one process at a time writes into it (:class:`RunLock`); and a
run that replaces it removes exactly what the previous run wrote (:func:`clear_run`)."""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from . import held_dirs, stop_channel, tracked_runs
from .checkpoint import (
    CHECKPOINT,
    DENSE_CHECKPOINT,
    DEPLOYED_FILES,
    STAGES,
    load_checkpoint,
    remove_orphans,
    resume_key,
)
from .deployed import ARCHITECTURE_FILE, WEIGHTS_FILE, read_document
from .errors import CheckpointError, InputError, one_line
from .jsonfile import open_regular, read_text
from .results import RESULTS_FILE, read_results

__all__ = [
    "CHECKPOINTS",
    "FAILED_JOBS",
    "OWN_FILES",
    "HydraWrites",
    "LockBusy",
    "RunLock",
    "check_run_dir",
    "check_sweep_dir",
    "check_writable",
    "clear_failed_job",
    "clear_run",
    "failed_job_dir",
    "missing_files",
    "point_dirs",
    "superseded_failure",
    "tracked_before",
    "written_by",
]

LOCK = ".svdbench.lock"
#: the checkpoints of a run (loadable svdbench checkpoints, whoever's directory they are in)
CHECKPOINTS = (CHECKPOINT, *(f"stage_{s}.pt" for s in STAGES))
#: the files a run of svdbench leaves in its directory besides results.json
OWN_FILES = (*CHECKPOINTS, DENSE_CHECKPOINT, *DEPLOYED_FILES)
#: what Hydra writes into a run's directory by default: its log and its output folder
HYDRA_WRITES = ("run.log", ".hydra/")  # what Hydra writes in a run directory: a folder's name ends in /
#: the folder of a sweep's directory that records a job's failure where the job's own directory cannot take it
#: (it holds another run's completed result, or another process holds it): ``<sweep dir>/.svdbench-failed-jobs/<num>``
FAILED_JOBS = ".svdbench-failed-jobs"


def failed_job_dir(sweep_dir: str | os.PathLike, num: int, job_dir: str | os.PathLike) -> Path:
    """Where the failure of job ``num`` of the sweep in ``sweep_dir``, whose directory is ``job_dir``, is recorded
    when that directory cannot take it (:data:`FAILED_JOBS`): ``<num>`` for the job in ``<sweep dir>/<num>`` (the
    default subdir), else ``<num>-<digest of its directory>``, so that two sweeps in one directory that number
    their jobs alike (``hydra.sweep.subdir=b${hydra.job.num}``) keep their records apart."""
    base = Path(os.path.abspath(sweep_dir))
    job = Path(os.path.abspath(job_dir))
    if job == base / str(num):
        return base / FAILED_JOBS / str(num)
    return base / FAILED_JOBS / f"{num}-{hashlib.sha256(os.fsencode(job)).hexdigest()[:12]}"


def clear_failed_job(sweep_dir: str | os.PathLike, num: int, job_dir: str | os.PathLike) -> None:
    """Remove the failure of job ``num`` (in ``job_dir``) recorded beside the jobs (:data:`FAILED_JOBS`) by an
    earlier try of the sweep, as the job starts again (a report must not count a failure that is no longer so);
    only a svdbench record of a failure of that very directory (another sweep's job of that number keeps its
    own), and its folder while empty."""
    where = failed_job_dir(sweep_dir, num, job_dir)
    if where.parent.is_symlink() or where.is_symlink():
        return
    try:
        record = previous_record(where)
    except InputError:
        return
    if (
        record is not None
        and record.get("status") == "failed"
        and _recorded_job(where, record) == Path(os.path.abspath(job_dir))
    ):
        (where / RESULTS_FILE).unlink(missing_ok=True)
    remove_empty_dirs([where, where.parent])


def _recorded_job(where: Path, record: dict) -> Path:
    """The job directory a failure recorded in ``where`` (``<sweep dir>/.svdbench-failed-jobs/<name>``) is of: the
    record's ``job_dir`` (relative to the sweep's directory, or absolute), else ``<sweep dir>/<name>``."""
    job_dir, sweep = record.get("job_dir"), where.parent.parent
    return Path(
        os.path.abspath(sweep / job_dir if isinstance(job_dir, str) and job_dir.strip() else sweep / where.name)
    )


def superseded_failure(path: Path, record: dict) -> bool:
    """Whether ``record`` (read from ``path``) is a job's failure recorded beside a sweep's jobs (:data:`FAILED_JOBS`)
    whose job directory now holds a completed run of the job's own config (the job run again by hand, say): the
    failure is no longer so, and a report does not count it. The job's directory is the one the record names
    (relative to the sweep's directory), else ``<sweep dir>/<num>``; its run is the job's when its config is the
    one recorded with the failure."""
    where = Path(path).parent
    if where.parent.name != FAILED_JOBS or record.get("status") != "failed":
        return False
    job = _recorded_job(where, record)
    try:
        done = read_results(job / RESULTS_FILE)
    except (ValueError, OSError):
        return False
    method, config = record.get("method"), record.get("config")
    if done.get("status") != "completed" or done.get("method") != method or not isinstance(config, dict):
        return False
    try:
        return resume_key(done.get("config") or {}, method) == resume_key(config, method)
    except Exception:  # a record edited into something no run records: the failure stays counted
        return False


def check_run_dir(run_dir: str | os.PathLike, hydra: Sequence[str] = HYDRA_WRITES, points: Sequence[str] = ()) -> None:
    """The run directory can be written (:func:`check_sweep_dir`, with Hydra's log and output folder
    ``hydra``), and holds no file of svdbench's names (:data:`OWN_FILES`) that no run of svdbench left:
    without a results.json, every such file must be a svdbench checkpoint (what a killed run of an older
    version leaves). The directories of the run's operating points (``points``, labels) are held to the
    same rules: no link, no file in their place, no foreign file. InputError in one line."""
    check_sweep_dir(run_dir, "run directory", hydra)
    path = Path(os.path.abspath(run_dir))
    check_owned(path)
    for label in points:
        check_point_dir(path, label)


def check_point_dir(run_dir: Path, label: str) -> None:
    """The directory of the operating point ``label`` of the run in ``run_dir``, before the run starts and again as
    the point starts (a link or a folder of another's put there meanwhile): no link, no file in its place, no
    foreign file, no run of its own. InputError in one line."""
    path, point = Path(os.path.abspath(run_dir)), Path(os.path.abspath(run_dir)) / label
    if point.is_symlink() or (point.exists() and not point.is_dir()):
        kind = "a link" if point.is_symlink() else "not a directory"
        raise InputError(f"run directory {_short(path)}: {label}, the directory of an operating point, is {kind}")
    if point.is_dir():
        _check_kinds(point, (LOCK, RESULTS_FILE, *OWN_FILES), (), "operating point")
        check_owned(point)
        record = previous_record(point)
        if record is not None and record.get("point_of") is None:
            raise InputError(
                f"run directory {_short(path)}: {label}, the directory of an operating point, holds a run of its "
                "own: svdbench replaces only its own points; move that run elsewhere, or use another run directory"
            )


def check_owned(path: Path) -> None:
    if (path / RESULTS_FILE).is_file():
        return
    ours = _our_deployed(path)
    foreign = [n for n in OWN_FILES if (path / n).exists() and not _our_checkpoint(path / n) and n not in ours]
    if foreign:
        raise InputError(
            f"{_short(path)} holds {', '.join(foreign)} but no results.json: files svdbench did not write are never "
            "replaced; use another run directory"
        )


def _our_deployed(path: Path) -> tuple[str, ...]:
    """The deployed model's two files in ``path`` when both are what svdbench writes (a run killed between
    them and its results.json leaves them): ``deployed.json`` of svdbench's format, ``deployed.pt`` a state
    dict of tensors loaded with ``weights_only=True``; else nothing."""
    if not (path / ARCHITECTURE_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        return ()
    try:
        read_document(path)
        with open_regular(path / WEIGHTS_FILE) as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception:  # not ours to replace, whatever it is
        return ()
    ok = isinstance(state, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())
    return (ARCHITECTURE_FILE, WEIGHTS_FILE) if ok else ()


def _our_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint a run of svdbench wrote (``checkpoint.pt``, ``stage_<name>.pt``). A file of
    a checkpoint's name that does not load is named in the CheckpointError (corrupt, truncated, not a torch
    file), so that it is neither replaced nor silently taken as foreign."""
    if path.name not in CHECKPOINTS or not path.is_file():
        return False
    load_checkpoint(path)
    return True


def check_sweep_dir(
    run_dir: str | os.PathLike,
    what: str = "sweep directory",
    hydra: Sequence[str] = (".hydra/", "multirun.yaml", "optimization_results.yaml"),  # the last: Optuna's
) -> None:
    """A run's or a sweep's directory can be made and written, is no link, and holds no link nor a file of the
    wrong kind where svdbench or Hydra (``hydra``: its log file and output folder) write: InputError in one
    line naming it (an empty name is refused, not taken as ``.``)."""
    if not str(run_dir).strip():
        raise InputError(f"the {what} is empty: give hydra.{'run' if what.startswith('run') else 'sweep'}.dir=<dir>")
    path = Path(os.path.abspath(run_dir))
    if path in (Path("/"), Path.home()):
        raise InputError(f"{what} {path} is not a directory of its own: give a new directory")
    created: list[Path] = []
    try:
        if path.is_symlink():
            raise InputError(f"{what} {_short(path)} is a link ({os.readlink(path)}): svdbench never writes through it")
        if path.exists() and not path.is_dir():
            raise InputError(f"{what} {path} is a file, not a directory")
        created = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:  # not permitted, read-only, a name too long, no such parent ...
        raise InputError(f"{what} {_short(path)} cannot be written ({err.strerror or one_line(err)})") from None
    finally:  # a check: what it made to try is removed again, deepest first, and only while empty (another
        for p in created:  # command may have made its own directory in a parent this one made meanwhile)
            try:
                os.rmdir(p)
            except OSError:
                pass
    check_hydra_paths(path, hydra, what, also=(LOCK, RESULTS_FILE, *OWN_FILES))


def _check_foreign_yaml(path: Path, files: Sequence[str], what: str) -> None:
    foreign = [n for n in files if n.endswith(".yaml") and not _hydra_file_of_ours(path / n)]
    if foreign:
        raise InputError(
            f"{what} {_short(path)} holds {foreign[0]}, which no run of svdbench wrote: files svdbench did not write "
            "are never replaced; use another directory"
        )


def _hydra_paths(hydra: Sequence[str]) -> tuple[list[str], list[str]]:
    """Hydra's names in a job's directory (``run.log``, ``.hydra/``, ``multirun.yaml``; a folder's ends in ``/``,
    whatever its name: ``cfg.v2/``) as its folders and the files it writes there:
    ``([".hydra"], ["run.log", ".hydra/config.yaml", ".hydra/hydra.yaml", ...])``."""
    folders = [n.rstrip("/") for n in hydra if n.endswith("/")]
    in_folders = [f"{d}/{f}" for d in folders for f in ("config.yaml", "hydra.yaml", "overrides.yaml")]
    return folders, [*(n for n in hydra if not n.endswith("/")), *in_folders]


def _hydra_file_of_ours(path: Path) -> bool:
    """Whether a YAML file where Hydra writes (``multirun.yaml``, ``.hydra/config.yaml``, ``hydra.yaml``,
    ``overrides.yaml``) is what Hydra wrote for a run of svdbench (or absent): the config with svdbench's
    groups, Hydra's own node, a list of overrides."""
    if not path.is_file() or path.stat().st_size == 0:  # absent, or left empty by a process killed as Hydra wrote it
        return True
    try:
        data = yaml.safe_load(read_text(path))  # a regular file of bounded size only
    # RecursionError: nested deeper than the parser's recursion (``[[[...]]]``, r4a F7); ValueError: a scalar
    # the safe loader cannot construct (a date such as 2020-13-45): neither is a file Hydra wrote
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError, ValueError):
        return False
    if path.name == "overrides.yaml":
        return isinstance(data, list) and all(isinstance(o, str) for o in data)
    if path.name == "hydra.yaml":
        return isinstance(data, dict) and "hydra" in data
    if path.name == "optimization_results.yaml":  # the Optuna sweeper's, beside multirun.yaml
        return isinstance(data, dict) and data.get("name") == "optuna"
    return isinstance(data, dict) and {"model", "dataset", "method"} <= data.keys()


def check_hydra_paths(path: Path, names: Sequence[str], what: str = "job directory", also: Sequence[str] = ()) -> None:
    """No link (nor a file where a folder goes), and no YAML file Hydra did not write for svdbench, at the names
    Hydra writes in ``path`` (:func:`svdbench.preflight.hydra_names`: a folder's name ends in ``/``) and at
    svdbench's own names ``also``, looked at before Hydra writes there; InputError in one line."""
    folders, files = _hydra_paths(names)
    _check_kinds(path, (*also, *files), folders, what)
    _check_foreign_yaml(path, files, what)


def _check_kinds(path: Path, files: Sequence[str], folders: Sequence[str], what: str) -> None:
    """No link at any of these names, ``files`` regular files where they exist, ``folders`` directories."""
    for name in (*folders, *files):
        p = path / name
        if p.is_symlink():
            raise InputError(
                f"{what} {_short(path)}: {name} is a link ({os.readlink(p)}); svdbench never writes through a link: "
                "remove it or use another directory"
            )
        if p.exists() and (not p.is_dir() if name in folders else not p.is_file()):
            kind = "a directory" if name in folders else "a regular file"
            raise InputError(f"{what} {_short(path)}: {name} is not {kind}: remove it or use another directory")
        in_place = name not in (*folders, RESULTS_FILE, *OWN_FILES)  # the lock, Hydra's log and .yaml: not renamed
        if in_place and p.is_file() and p.stat().st_nlink > 1:  # writing it would write the other name's file too
            raise InputError(
                f"{what} {_short(path)}: {name} is a hard link (to a file elsewhere); svdbench never writes through a "
                "link: remove it or use another directory"
            )


def check_writable(run_dir: str | os.PathLike, hydra: Sequence[str], what: str = "run directory") -> None:
    """Every file written in place in ``run_dir`` that is there already can be written: Hydra's (``hydra``: its
    log, opened to append, and the files of its output folder, rewritten) and the run lock; its output folder
    can take files. Checked where a job will start (Hydra writes them even for a completed job of a sweep):
    an immutable or read-only one is one line here, not a traceback from Hydra's logging. InputError."""
    path = Path(os.path.abspath(run_dir))
    folders, files = _hydra_paths(hydra)
    for name in (*folders, *files, LOCK):
        p = path / name
        if p.exists() and not p.is_symlink() and not os.access(p, os.W_OK | (os.X_OK if p.is_dir() else 0)):
            raise InputError(
                f"{what} {_short(path)}: {name} cannot be written (read-only or immutable), and Hydra or svdbench "
                "writes it: make it writable, or use another directory"
            )


def _short(path: Path) -> str:
    s = str(path)
    return s if len(s) <= 120 else s[:80] + "..." + s[-30:]


#: the environment variable through which a sweep's launching process tells its workers that it holds
#: their jobs' locks (:meth:`RunLock.lend_to_workers`): its pid
HOLDER_ENV = "SVDBENCH_LOCKS_HELD_BY"


class RunLock:
    """``with RunLock(run_dir):`` this process alone writes into ``run_dir``: an advisory lock
    (``fcntl.flock`` on ``<run_dir>/.svdbench.lock``, or on ``name``, released by the kernel when the
    process dies, so a killed run never leaves a stale lock). A second process finds it taken and gets
    an InputError naming the holder's pid."""

    #: locks this process took ahead of their ``with`` (:meth:`hold`), by absolute lock path: fd
    _held: dict[str, int] = {}

    def __init__(self, run_dir: Path, name: str = LOCK, wait: bool = False, make: bool = True) -> None:
        self.path = Path(run_dir) / name
        self.wait = wait  # block until the holder lets go, instead of an InputError
        self.make = make  # False: a directory that is gone (moved, removed) is not made again: FileNotFoundError
        self.fd: int | None = None
        self.made: list[Path] = []  # the directories taking the lock made (a new run directory and its parents)

    @classmethod
    def hold(cls, run_dir: Path) -> None:
        """Take ``run_dir``'s lock now, for the ``with RunLock(run_dir)`` of this process that comes later
        (which adopts it and lets it go as usual): preflight takes it before Hydra writes ``.hydra/`` and
        the log, so that a second command on the directory is refused before it writes anything."""
        lock = cls(run_dir).__enter__()
        if not cls._held:  # at exit: a job never reached (a sweep interrupted) leaves no empty directory
            atexit.register(cls.release_held, remove_made=True)
        cls._held[os.path.abspath(lock.path)] = lock.fd
        cls._made[os.path.abspath(lock.path)] = lock.made

    @classmethod
    def lend_to_workers(cls) -> None:
        """Let the worker processes this process starts write under the locks it took ahead (:meth:`hold`) for a
        sweep's jobs (``hydra/launcher=local_parallel``): a worker whose parent holds its job's lock (the pid in
        the lock file and in ``$SVDBENCH_LOCKS_HELD_BY``) writes under it; any other process is refused until
        the sweep ends."""
        os.environ[HOLDER_ENV] = str(os.getpid())

    #: the directories :meth:`hold` made for each lock it took ahead (by absolute lock path)
    _made: dict[str, list[Path]] = {}

    @classmethod
    def release_held(cls, remove_made: bool = False) -> None:
        """Let go of every lock taken ahead and never adopted (a job the sweep did not reach, or one a
        worker ran), removing its file as :meth:`__exit__` does; ``remove_made``: and the directories taking it
        made, while empty (a command refused after it took some of its jobs' locks leaves nothing behind)."""
        for path in reversed(list(cls._held)):  # the last taken first: a parent the first made is empty by then
            lock = cls(Path(path).parent, name=Path(path).name)
            lock.fd = cls._held.pop(path)
            lock.__exit__()
            made = cls._made.pop(path, [])
            if remove_made:
                remove_empty_dirs(made)

    def __enter__(self) -> RunLock:
        held = RunLock._held.pop(os.path.abspath(self.path), None)
        if held is not None:  # taken ahead by this process (hold): adopted
            self.fd = held
            return self
        try:
            return self._take()
        except LockBusy:
            if self._held_by_parent():  # a worker of the sweep whose launching process holds the lock
                RunLock.lender = os.environ[HOLDER_ENV]
                _watch_lender()
                held_dirs.register(self.path)
                return self
            raise

    #: the pid of the parent whose lock this process writes under (:meth:`_held_by_parent`); None: none lent
    lender: str | None = None

    @classmethod
    def lender_gone(cls) -> bool:
        """Whether this process writes under a lock its parent lent it (:meth:`lend_to_workers`) and that parent
        is gone (killed: the locks are let go, so the worker must stop writing). A process that merely inherited
        the variable, and took no lent lock, is no such worker."""
        return cls.lender is not None and str(os.getppid()) != cls.lender

    @classmethod
    def held_elsewhere(cls, run_dir: str | os.PathLike) -> bool:
        """Whether another process holds ``run_dir``'s lock: neither this one (taken ahead, :meth:`hold`) nor
        the parent that lends it to this worker (:meth:`lend_to_workers`)."""
        lock = cls(Path(run_dir))
        if os.path.abspath(lock.path) in cls._held:
            return False
        try:
            cls.check_free(run_dir)
        except InputError:
            return not lock._held_by_parent()
        return False

    def _held_by_parent(self) -> bool:
        """Whether the holder is this process's parent, holding the lock for it (:meth:`lend_to_workers`)."""
        holder = os.environ.get(HOLDER_ENV)
        if holder != str(os.getppid()):
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            return os.read(fd, 32).decode(errors="replace").strip() == holder
        finally:
            os.close(fd)

    def _take(self) -> RunLock:
        parent = Path(os.path.abspath(self.path.parent))
        made = [p for p in [parent, *parent.parents] if not os.path.lexists(p)]  # what a failure removes again
        try:
            if self.make:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.parent.is_dir():
                raise FileNotFoundError(errno.ENOENT, "no such directory (moved or removed)", str(self.path.parent))
            while True:  # the holder unlinks the file before it lets go: a lock taken on an unlinked file is retried
                fd = self._open_locked()
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            try:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            except OSError as err:  # a full disk: the lock file (held: no one else took it) goes, as it came
                self.path.unlink(missing_ok=True)
                os.close(fd)
                raise InputError(f"{self.path} cannot be written ({err.strerror or one_line(err)}): svdbench locks "
                                 "a directory it writes into") from None  # fmt: skip
        except BaseException:
            remove_empty_dirs(made)
            raise
        self.fd = fd
        self.made = made
        held_dirs.register(self.path, fd)
        return self

    def _not_a_lock(self) -> InputError:
        return InputError(f"{self.path} is not a regular file, not svdbench's lock: remove it")

    def _open_locked(self) -> int:
        try:  # a directory, FIFO, socket or device at the lock's name is named as such, never opened as a lock
            mode = os.lstat(self.path).st_mode
        except OSError:  # none yet (or not ours to look at: opening says why)
            mode = None
        if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):  # a link: O_NOFOLLOW below
            raise self._not_a_lock()
        try:  # O_NONBLOCK: a FIFO put there meanwhile never blocks the open
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        except OSError as err:
            if err.errno == errno.ELOOP:  # a link planted where the lock goes
                raise InputError(f"{self.path} is a link, not svdbench's lock: remove it") from None
            if err.errno in (errno.EISDIR, errno.ENXIO):  # a directory or a socket put there meanwhile
                raise self._not_a_lock() from None
            raise InputError(f"{self.path.parent} cannot be written ({err.strerror}): svdbench locks a directory "
                             "it writes into") from None  # fmt: skip
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # put there between the look and the open
            os.close(fd)
            raise self._not_a_lock()
        os.set_blocking(fd, True)
        if os.fstat(fd).st_nlink > 1:  # a hard link planted where the lock goes: writing the pid would write it
            os.close(fd)
            raise InputError(f"{self.path} is a hard link, not svdbench's lock: remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            err = _in_use(self.path, fd)
            os.close(fd)
            raise err from None
        return fd

    @staticmethod
    def check_free(run_dir: str | os.PathLike, name: str = LOCK) -> None:
        """InputError (as entering would) when a running process holds ``run_dir``'s lock; nothing is
        created: a directory without a lock file is free."""
        path = Path(run_dir) / name
        if not path.is_file() or path.is_symlink():
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return  # gone meanwhile, or not ours to open: entering reports it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(path, fd) from None
        finally:
            os.close(fd)

    def __exit__(self, *exc) -> None:
        held_dirs.forget(self.path)
        if self.fd is not None:
            if held_dirs.is_in_place(self.path, self.fd):  # moved away with its directory: the file there is another's
                self.path.unlink(missing_ok=True)  # while still held: no one can take a lock on it meanwhile
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def remove_empty_dirs(made: Sequence[Path]) -> None:
    """Remove the directories ``made`` (deepest first), each only while empty: another command may have put
    its own in one meanwhile."""
    for p in made:
        try:
            os.rmdir(p)
        except OSError:
            break


_watching: list[threading.Thread] = []


def _watch_lender(every: float = 0.5, grace: float = 30.0) -> None:
    """In a worker writing under its parent's lock: a thread that, once the parent is gone (its locks with it),
    sends this process SIGTERM (a training stage saves its checkpoint and stops; anything else ends at once,
    every file it writes being atomic) and ends it ``grace`` seconds later (a pool's idle worker outlives a
    signal), so that no orphan writes or lingers beside the next command. Started once."""
    if _watching:
        return

    def watch() -> None:
        while not RunLock.lender_gone():
            time.sleep(every)
        stop_channel.end_orphan(grace)  # once, whichever watcher sees it first

    _watching.append(threading.Thread(target=watch, name="svdbench-lender-watch", daemon=True))
    _watching[0].start()


class LockBusy(InputError):
    """A directory's lock is held by another process (a run, ``svdbench latency``, a report): ``holder``, its
    pid as its lock file says ("?" where it says none)."""

    def __init__(self, message: str, holder: str = "?") -> None:
        super().__init__(message)
        self.holder = holder


def _in_use(lock: Path, fd: int) -> LockBusy:
    """The error for a lock another process holds, naming its pid (written into the lock by its holder)."""
    holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
    return LockBusy(
        f"{lock.parent} is in use by another svdbench run (pid {holder}): wait for it to finish or use another "
        "run directory",
        holder,
    )


def written_by(record: dict) -> list[str]:
    """The files (names in its directory) the run of ``record`` wrote besides results.json: its ``files``;
    for a record of an older version, the deployed model it names and the ``dense.pt`` of a dense or
    pretrained run."""
    if isinstance(record.get("files"), list):  # of svdbench's names only: an edited record deletes nothing else
        return [n for n in record["files"] if isinstance(n, str) and n in OWN_FILES]
    names = []
    model = record.get("model_path")
    if isinstance(model, str):
        name = Path(model).name
        names += [*DEPLOYED_FILES[:2]] if name == DEPLOYED_FILES[0] else [name]
    if record.get("method") == "dense" or "pretrain" in (record.get("wall_time") or {}):
        names.append(DENSE_CHECKPOINT)
    return [n for n in names if n in OWN_FILES]


def missing_files(run_dir: str | os.PathLike, record: dict) -> list[Path]:
    """The files the run of ``record`` in ``run_dir`` records writing (:func:`written_by`), and those of its
    operating points, that are no longer regular files there (moved, removed, replaced by a link): a completed
    run lacking them is not handed back as complete."""
    path = Path(run_dir)
    found = [(path, record)]
    for point in point_dirs(path, record):
        with contextlib.suppress(InputError):
            found.append((point, previous_record(point) or {}))
    return [d / n for d, rec in found for n in written_by(rec) if (d / n).is_symlink() or not (d / n).is_file()]


def clear_run(run_dir: str | os.PathLike) -> list[Path]:
    """Remove what the previous run in ``run_dir`` wrote (its results.json, the files it records writing
    (:func:`written_by`), its checkpoints, and the same in the directories of its operating points,
    :func:`point_dirs`), before a run replaces it (``resume=false``): a report or ``svdbench latency``
    must never count what the new run did not make. Every point's lock is taken before anything is
    removed (one that another process holds: LockBusy, nothing removed). A results.json that is not
    svdbench's is refused (InputError), and nothing else is touched. Returns the files removed."""
    path = Path(run_dir)
    record = previous_record(path)
    if record is None:
        return []
    removed = []
    with contextlib.ExitStack() as held:
        points = point_dirs(path, record)
        for point in points:  # a point svdbench latency is timing is not cleared under it
            held.enter_context(RunLock(point))
        for point in points:
            sub = previous_record(point)
            if sub is not None:
                removed += _remove(point, (RESULTS_FILE, *written_by(sub), *CHECKPOINTS))
            removed += remove_orphans(point)  # temporary files a process killed while writing left
    for point in points:
        with contextlib.suppress(OSError):  # a point directory left empty goes too
            point.rmdir()
    removed += tracked_runs.remove(path, record.get("tracking"))  # its W&B run's offline folders
    return removed + _remove(path, (RESULTS_FILE, *written_by(record), *CHECKPOINTS))


def tracked_before(path: Path) -> dict | None:
    """The ``tracking`` record (:mod:`svdbench.tracked_runs`) of the run in ``path``, to be continued by a
    resumed leg: its steps the most any of its records says (a point's record is the last written when the
    run was cut during its points). None: no W&B run recorded."""
    try:
        record = previous_record(path)
    except InputError:
        return None
    info = tracked_runs.check((record or {}).get("tracking"))
    if info is None:
        return None
    for point in point_dirs(path, record):
        with contextlib.suppress(InputError):
            other = tracked_runs.check((previous_record(point) or {}).get("tracking"))
            if other is not None and other["id"] == info["id"]:
                info["steps"] = max(info["steps"], other["steps"])
    return info


def point_dirs(path: Path, record: dict) -> list[Path]:
    """The operating points of the run ``record`` in ``path``: the directories its results.json lists, and
    every subdirectory holding an operating point made from ``path`` (its results.json's ``point_of``: a
    run killed during its points has not listed them yet); no link."""
    labels = []
    for entry in record.get("operating_points") or record.get("energy_sweep") or []:
        label = entry.get("label") if isinstance(entry, dict) else None
        if isinstance(label, str) and label and "/" not in label and label not in (".", ".."):
            labels.append(label)
    with contextlib.suppress(OSError):
        for sub in sorted(path.iterdir()):
            if sub.name not in labels and _point_of(sub) in (os.path.abspath(path), os.path.realpath(path)):
                labels.append(sub.name)
    return [path / label for label in labels if (path / label).is_dir() and not (path / label).is_symlink()]


def _point_of(sub: Path) -> str | None:
    """The run directory (absolute, links resolved) whose operating point ``sub`` holds, None when it holds none."""
    if sub.is_symlink() or not sub.is_dir() or not (sub / RESULTS_FILE).is_file():
        return None
    try:
        parent = read_results(sub / RESULTS_FILE).get("point_of")
    except (ValueError, OSError):
        return None
    return os.path.realpath(parent) if isinstance(parent, str) and parent else None


def previous_record(path: Path) -> dict | None:
    """The results.json of the run in ``path`` (None: none); InputError for one that is not svdbench's."""
    results = path / RESULTS_FILE
    if not results.exists() and not results.is_symlink():
        return None
    if not results.is_file():
        raise InputError(f"{results} is not a regular file: svdbench replaces only its own runs")
    try:
        return read_results(results)
    except (ValueError, OSError) as err:
        reason = one_line(err).removeprefix(f"{results}: ")
        raise InputError(
            f"{results} is not a svdbench result ({reason}): svdbench replaces only its own runs; use "
            "another run directory"
        ) from None


def _remove(directory: Path, names: Sequence[str]) -> list[Path]:
    gone = []
    for name in dict.fromkeys(names):
        f = directory / name
        if name in CHECKPOINTS and f.is_file():
            try:
                _our_checkpoint(f)
            except CheckpointError:  # not loadable: whose it is cannot be told, so it stays
                continue
        if f.is_file() or f.is_symlink():
            f.unlink()
            gone.append(f)
    return gone


class HydraWrites:
    """What a run's directory held where Hydra writes (``.hydra/*.yaml``, the log) and its results.json, taken
    before Hydra writes there (a single run's by preflight; a sweep's job's as Hydra starts the job, by
    :func:`svdbench.app.take_job_dir`): a job refused before the pipeline wrote anything puts them back
    (:meth:`restore`), so that a refused command or job leaves another run's recorded config and log as they
    were and a new directory as it was not."""

    taken: HydraWrites | None = None

    def __init__(self, run_dir: Path, names: Sequence[str]) -> None:
        self.dir, self.existed = Path(os.path.abspath(run_dir)), Path(run_dir).is_dir()
        self.folders, self.paths = _hydra_paths(names)
        self.before = {n: self._read(n) for n in (*self.paths, RESULTS_FILE)}

    def _read(self, name: str) -> bytes | None:
        p = self.dir / name
        return p.read_bytes() if p.is_file() and not p.is_symlink() else None

    @classmethod
    def take(cls, run_dir: Path, names: Sequence[str]) -> None:
        cls.taken = cls(run_dir, names)

    @classmethod
    def restore(cls, run_dir: str | os.PathLike | None = None) -> None:
        """Put back what Hydra replaced (in ``run_dir`` only, where given), unless the run had begun (its
        results.json changed); the log files open there are closed first, so that nothing more is written
        into them. A directory that did not exist before is removed again when nothing else is in it."""
        self, cls.taken = cls.taken, None
        if self is None or self._read(RESULTS_FILE) != self.before[RESULTS_FILE]:
            return
        if run_dir is not None and Path(os.path.abspath(run_dir)) != self.dir:  # another job's: not this one's
            return
        close_logs_in(self.dir)
        if os.path.abspath(self.dir / LOCK) in RunLock._held:  # taken ahead and never adopted: adopted, let go
            with RunLock(self.dir):
                pass
        for name in self.paths:
            with contextlib.suppress(OSError):
                if not _put_back(self.dir, name, self.before[name]):
                    logging.getLogger(__name__).warning("%s is a link or no file: left as it is", self.dir / name)
        for folder in self.folders:
            with contextlib.suppress(OSError):
                (self.dir / folder).rmdir()  # empty: Hydra made it
        if not self.existed:
            with contextlib.suppress(OSError):
                self.dir.rmdir()


_NO_LINK = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _put_back(root: Path, name: str, old: bytes | None) -> bool:
    """Put ``old`` back at ``root/name`` (a name below ``root``: ``.hydra/config.yaml``), written to a temporary
    file there and renamed over it; None: remove the file Hydra made there. Every folder below ``root`` is
    opened without following a link, and the file itself is replaced, never written through: False (nothing
    done) where a link, or anything but a regular file, stands at the name."""
    *folders, leaf = Path(name).parts
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | _NO_LINK)
    try:
        for folder in folders:  # a folder made a link meanwhile: ELOOP / ENOTDIR, nothing done
            inner = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NO_LINK, dir_fd=fd)
            os.close(fd)
            fd = inner
        try:
            mode = os.stat(leaf, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            return False
        if old is None:
            if mode is not None:
                os.unlink(leaf, dir_fd=fd)
            return True
        tmp = f".{leaf}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_LINK, 0o666, dir_fd=fd)
        try:
            with os.fdopen(out, "wb") as f:
                f.write(old)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, leaf, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
        return True
    finally:
        os.close(fd)


def close_logs_in(directory: Path) -> None:
    """Close and remove the root logger's file handlers that write into ``directory`` (Hydra's job log): what is
    logged after goes to the console only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        name = getattr(handler, "baseFilename", None)
        if isinstance(name, str) and Path(name).parent == directory:
            root.removeHandler(handler)
            handler.close()
