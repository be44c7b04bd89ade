"""How a parallel sweep's launching process tells its workers that it stops, and sees which jobs are under way.

The launching process of a sweep under joblib's launcher (``hydra/launcher=local_parallel``) makes, before its
workers start, a small directory of its own in the temporary directory and names it in ``$SVDBENCH_SWEEP_STOP``
(which the workers inherit). Its file ``owner`` holds the launching process's pid. Each worker marks a job it runs
with a file ``busy-<pid>`` there holding the job's directory (:func:`busy`), removed when the job ends. Stopping
(:mod:`svdbench.sweep_stop`), the launching process writes ``<pid> stopping`` into ``owner``: each worker's
training stage reads it with its signals (:func:`stopping`, at most every 0.2 s) and stops at its next step as on
SIGTERM, saving its checkpoint, and no worker starts another job; the launching process waits for the busy marks
to go (:func:`under_way`). A file, not a signal: a worker that the signal reached too (Ctrl-C reaches the whole
process group) would get it twice. The directory is removed when the launching process exits; one whose
launching process was killed (SIGKILL) is removed by the next parallel sweep of the same user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["STOP_ENV", "busy", "mark", "open_channel", "opened", "stopping", "under_way"]

#: the environment variable naming the launching process's channel directory
STOP_ENV = "SVDBENCH_SWEEP_STOP"
#: what ``owner`` says after the launching process's pid once it stops
STOPPING = "stopping"
OWNER = "owner"
#: the channel directory's name in the temporary directory, before ``<pid>-<random>``
PREFIX = "svdbench-sweep-"

_opened: list[Path] = []  # this process's channel directory


def open_channel() -> None:
    """In the launching process of a parallel sweep, before its workers start: the channel directory, named in
    ``$SVDBENCH_SWEEP_STOP``; removed at exit. Opened once."""
    if _opened:
        return
    try:
        _remove_stale()
        where = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        _write_whole(where / OWNER, str(os.getpid()))
    except OSError as err:  # no temporary directory to write: stopped, the sweep's pool ends its workers at once
        print(f"warning: no directory to tell the sweep's workers to stop ({err.strerror or err}): stopped, the jobs "
              "under way will not save first", file=sys.stderr)  # fmt: skip
        return
    _opened.append(where)
    os.environ[STOP_ENV] = str(where)
    atexit.register(_close)


def _write_whole(path: Path, text: str) -> None:
    """A channel's file written whole: to a temporary file beside it, renamed over it (a process reading it
    meanwhile reads the old text or the new, never an empty file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _remove_stale() -> None:
    """Remove the channels, of this user, whose launching process is gone (killed by SIGKILL: its exit never
    removed it). One whose ``owner`` is not written yet (another sweep starting) is left alone."""
    for where in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            if where.is_symlink() or not where.is_dir() or where.stat().st_uid != os.getuid():
                continue
            owner = _read(where / OWNER)
            pid = int(owner.split()[0]) if owner and owner.split()[0].isdigit() else None
            if pid is None or pid == os.getpid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:  # its launching process is gone: no one reads or removes it now
            shutil.rmtree(where, ignore_errors=True)
        except OSError:  # another user's process (EPERM), or a directory read as it went: left alone
            continue


def opened() -> bool:
    """Whether this process opened a channel for its workers (:func:`open_channel`)."""
    return bool(_opened) and os.environ.get(STOP_ENV) == str(_opened[0])


def mark() -> bool:
    """Tell the workers that this process stops (:func:`stopping` turns true in each); the channel's directory,
    removed meanwhile (a temporary directory cleaned under the sweep), is made again. False, with a warning,
    where the workers could not be told, or their jobs under way cannot be seen (their busy marks went with it)."""
    if not _opened:
        return False
    where = _opened[0]
    gone = not where.is_dir()
    try:
        where.mkdir(mode=0o700, exist_ok=True)
        _write_whole(where / OWNER, f"{os.getpid()} {STOPPING}")
    except OSError as err:
        print(f"warning: the sweep's workers could not be told to stop ({where}: {err.strerror or err}): the pool "
              "ends them at once", file=sys.stderr)  # fmt: skip
        return False
    if gone:
        print(f"warning: {where}, where the sweep's workers mark their jobs, was removed: the jobs under way stop "
              "at their next step but are not waited for", file=sys.stderr)  # fmt: skip
        return False
    return True


def under_way() -> list[Path]:
    """The directories of the jobs the workers run now (their busy marks, of workers alive), sorted."""
    if not _opened:
        return []
    jobs = []
    for mark_ in _opened[0].glob("busy-*"):
        try:
            pid = int(mark_.name.removeprefix("busy-"))
            os.kill(pid, 0)
            jobs.append(Path(mark_.read_text()))
        except (ValueError, OSError):  # a worker gone (killed): its job is not under way
            continue
    return sorted(jobs)


def _close() -> None:
    while _opened:
        shutil.rmtree(_opened.pop(), ignore_errors=True)


#: the pid of the launching process this worker found its channel's owner (its parent then); None before
_owner: list[int] = []


def _worker_channel() -> Path | None:
    """In a worker of a parallel sweep, the channel of its launching process (its parent, as ``owner`` says); None
    in any other process (one that merely inherited the variable is no such worker)."""
    path = os.environ.get(STOP_ENV)
    if not path or opened():
        return None
    owner = _read(Path(path) / OWNER)
    if owner is None or owner.split()[:1] != [str(os.getppid())]:  # empty: another's, or one being made
        return None
    if not _owner:
        _owner.append(os.getppid())
        _watch_owner()
    return Path(path)


def orphaned() -> bool:
    """Whether this worker's launching process is gone (it found one: :func:`_worker_channel`), killed: its
    jobs' directories are no longer held for it, so the worker stops as on SIGTERM."""
    return bool(_owner) and os.getppid() != _owner[0]


def _watch_owner(every: float = 0.5, grace: float = 30.0) -> None:
    """A thread that, once this worker's launching process is gone, sends it SIGTERM (a training stage saves its
    checkpoint and stops; the job ends) and ends it ``grace`` seconds later (an idle worker of a pool would
    linger)."""

    def watch() -> None:
        while not orphaned():
            time.sleep(every)
        end_orphan(grace)

    threading.Thread(target=watch, name="svdbench-owner-watch", daemon=True).start()


_ending = threading.Lock()


def end_orphan(grace: float = 30.0) -> None:
    """End this orphaned worker: SIGTERM to itself (a training stage saves its checkpoint and stops; the job
    ends), then ``os._exit`` ``grace`` seconds later (an idle worker of a pool would linger). Once per process,
    whichever watcher finds the orphan first (:func:`_watch_owner`, :func:`svdbench.rundir._watch_lender`): a
    second SIGTERM would stop the stage at once, before it saved."""
    if not _ending.acquire(blocking=False):
        return
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(128 + signal.SIGTERM)


@contextlib.contextmanager
def busy(job_dir: str | os.PathLike) -> Iterator[None]:
    """In a worker of a parallel sweep: the job in ``job_dir`` is under way for its launching process while the
    block runs. Nothing elsewhere."""
    channel = _worker_channel()
    if channel is None:
        yield
        return
    mark_ = channel / f"busy-{os.getpid()}"
    with contextlib.suppress(OSError):
        _write_whole(mark_, os.path.abspath(job_dir))
    _interruptible(True)
    try:
        yield
    finally:
        _interruptible(False)  # idle, Ctrl-C to the process group is the launching process's to handle
        with contextlib.suppress(OSError):
            mark_.unlink()


def _interruptible(on: bool) -> None:
    """Ctrl-C raises in this worker while it runs a job (which saves and says so), and is ignored between jobs
    (it printed loky's traceback from wherever the idle worker was)."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.default_int_handler if on else signal.SIG_IGN)


_last_read: list[float | bool] = [0.0, False]  # when this worker last read ``owner``, and whether it said stopping


def stopping(every: float = 0.2) -> bool:
    """In a worker of a parallel sweep: whether its launching process stops (:func:`mark`), ``owner`` read at most
    every ``every`` seconds. False in any other process."""
    if orphaned():
        return True
    when, said = _last_read
    if said or time.monotonic() - when < every:
        return bool(said)
    channel = _worker_channel()
    said = channel is not None and _read(channel / OWNER) == f"{os.getppid()} {STOPPING}"
    _last_read[:] = [time.monotonic(), said]
    return said


def _read(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return os.read(fd, 64).decode(errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
