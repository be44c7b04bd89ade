"""The exception types of svdbench and the one-line formatter every user-facing message goes through.

Kinds of failure and how a run reports them:

- :class:`InputError` (and its :class:`DatasetError`): bad user input found before any training;
  one line, exit code 2, nothing written.
- :class:`CheckpointError`: a checkpoint that cannot be read; one line naming the file.
- :class:`Preempted`: SIGTERM / SIGUSR1 / SIGUSR2 arrived; a checkpoint was saved.
- :class:`DivergedError`: the loss became NaN or infinite; recorded as ``status: failed``.
- :class:`OnnxCheckError`: onnxruntime disagrees with PyTorch beyond the tolerance.
- :class:`Terminated`: SIGTERM where nothing is trained (a report, latency, preflight), raised as Ctrl-C is
  (:func:`sigterm_raises`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import zipfile
from collections.abc import Iterator

__all__ = [
    "InputError",
    "load_failure",
    "DatasetError",
    "CheckpointError",
    "Preempted",
    "DivergedError",
    "OnnxCheckError",
    "one_line",
    "printable",
    "interrupted_by",
    "raise_terminated",
    "sigterm_raises",
    "swallowed",
    "Terminated",
]


class InputError(ValueError):
    """Bad user input found before any training: reported in one line, no results written."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGUSR1 or SIGUSR2 (a ``timeout``, a scheduler's preemption, a shutdown: ``signum``) where no
    training stage is there to take it, raised where the command is, as SIGINT is: what it was writing is put
    back as it was."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


def data_worker_died(err: BaseException) -> bool:
    """Whether ``err`` is PyTorch's report of a DataLoader worker that died (killed by the out-of-memory killer, a
    crash in a dataset's code): raised from its SIGCHLD handler wherever the main process was, or by the loader."""
    return isinstance(err, RuntimeError) and str(err).startswith("DataLoader worker (pid")


def interruption_in(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or :class:`Terminated` that ``err`` wraps (its causes and contexts: Python 3.11 wraps an exception
    raised in a class's creation, ``__set_name__``, in a RuntimeError; a library may turn one into its own error),
    else None."""
    seen = 0
    while err is not None and seen < 20:
        if isinstance(err, KeyboardInterrupt):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def interrupted_by(err: BaseException) -> tuple[str, int]:
    """The signal's name and the exit code (128 + signal) of an interruption: Ctrl-C or a :class:`Terminated`."""
    signum = err.signum if isinstance(err, Terminated) else signal.SIGINT
    return signal.Signals(signum).name, 128 + signum


#: the signals :func:`sigterm_raises` raises on (a training stage's PreemptionGuard takes the same ones)
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, n))


#: the signals :func:`raise_terminated` took, in order (one raised where Python drops exceptions is still here)
RECEIVED: list[int] = []


def raise_terminated(signum, frame) -> None:
    """The handler of :func:`sigterm_raises` (a training stage's own guard does not hand the signal on to it:
    the stage has stopped already)."""
    RECEIVED.append(signum)
    raise Terminated(signum)


def swallowed(before: int) -> Terminated | None:
    """The interruption a command ending normally did not see: a signal :func:`raise_terminated` took after
    ``before`` signals, whose exception Python dropped (raised inside a finaliser or a weakref callback, where
    exceptions are only reported). None when there was none."""
    return Terminated(RECEIVED[-1]) if len(RECEIVED) > before else None


def _unraisable(hook):
    def quiet(unraisable) -> None:  # a dropped Terminated is told once, by the command (:func:`swallowed`)
        if not isinstance(unraisable.exc_value, Terminated):
            hook(unraisable)

    return quiet


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM, SIGUSR1 and SIGUSR2 (:data:`STOP_SIGNALS`) raise :class:`Terminated` (a
    KeyboardInterrupt) in the main thread instead of killing the process unannounced; the handlers before are
    put back after. Elsewhere than the main thread: nothing changes."""
    main = threading.current_thread() is threading.main_thread()
    before = {s: signal.signal(s, raise_terminated) for s in STOP_SIGNALS} if main else {}
    hook, sys.unraisablehook = sys.unraisablehook, _unraisable(sys.unraisablehook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for s, handler in before.items():
            signal.signal(s, handler)


class DatasetError(InputError):
    """A dataset that cannot be found or read."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read (truncated, corrupt, not ours)."""


class Preempted(RuntimeError):
    """The run received SIGTERM, SIGUSR1 or SIGUSR2: a checkpoint was saved, or (``completed``) the
    signal came after the last step and the results are complete."""

    def __init__(self, signum: int, completed: bool = False) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum, self.completed = signum, completed


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class OnnxCheckError(AssertionError):
    """onnxruntime's output differs from PyTorch's by more than the tolerance."""


def printable(text: str) -> str:
    """``text`` as UTF-8 can hold it. A file name that is not valid UTF-8 (a Latin-1 ``caf\\xe9`` from an old
    archive: a legal Linux name) reaches Python with its bytes as lone surrogates (``os.fsdecode``'s
    surrogateescape, ``'caf\\udce9'``), which a UTF-8 file or stream refuses ("surrogates not allowed"): such a
    byte is shown as ``\\xe9``, any other lone surrogate as ``\\udXXX``; valid text is returned as it is."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no byte escape made (from JSON's "\\ud800", say)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _first(text: str) -> str:
    """The first non-empty line, with the next one joined when it only introduces it (ends with ``:``,
    as Hydra's "ConfigKeyError raised while composing config:" before the cause)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "Original Traceback" in text:
        return lines[-1]  # an error in a DataLoader worker, re-raised: its worker's traceback, then the error itself
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


def _yaml_line(err: BaseException) -> str | None:
    """A YAML syntax error (PyYAML's MarkedYAMLError: ``problem``, ``problem_mark``, ``context``) as
    ``<file>, line L, column C: <problem> (<context>)``; None for any other error."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or not problem:
        return None
    context = getattr(err, "context", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}"
    return f"{where}: {problem}" + (f" ({context})" if context else "")


def one_line(err: BaseException, with_type: bool = False) -> str:
    """The most specific single line describing ``err``.

    Follows the ``__cause__`` chain to its root and returns the first non-empty line of the
    innermost error that says something (OmegaConf errors: their ``msg``, with the full key
    appended where the line does not name it). ``with_type`` prefixes the exception's class name
    (``"ValueError: ..."``), for messages that go into a record rather than to a user's terminal.
    """
    chain = [err]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    for e in reversed(chain):
        key = getattr(e, "full_key", None)
        first = _yaml_line(e) or _first(str(getattr(e, "msg", None) or e))
        if not first:
            continue
        if key and key not in first:
            first = f"{first} (key: {key})"
        named = first.startswith(f"{type(e).__name__}: ")  # a worker's error, re-raised: its type said already
        return f"{type(e).__name__}: {first}" if with_type and not named else first
    return type(err).__name__


def load_failure(err: BaseException, path: str | os.PathLike | None = None) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file (``path``, where known), in one line and
    without torch's advice to load it with ``weights_only=False`` (which would run the code a pickle
    carries: svdbench never does)."""
    if path is not None and os.path.isfile(path) and not zipfile.is_zipfile(path):
        return "not a torch file (torch.save writes a zip archive)"
    text = one_line(err)
    if "Weights only load failed" in str(err) or "weights_only" in text:
        return "it holds Python objects besides tensors (svdbench reads tensors only and never unpickles code)"
    return text


#: the exit code of a command whose reader closed its output (``| head``): 128 + SIGPIPE, as the shell's tools give
BROKEN_PIPE = 141


def output_closed() -> int:
    """After a BrokenPipeError on stdout (its reader, ``| head``, has what it wanted): stdout pointed at /dev/null, so
    that Python's flush at exit raises nothing more; returns :data:`BROKEN_PIPE`, the exit code."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return BROKEN_PIPE
