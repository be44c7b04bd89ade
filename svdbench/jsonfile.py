"""Reading the small files svdbench itself wrote (results.json, deployed.json, a report's summary.json,
Hydra's YAML) safely: only a regular file, of bounded size, is ever read.

A FIFO at such a name would block the reader for good, and a link to ``/dev/zero`` (or a runaway file)
would be read until memory runs out; both are refused with :class:`UnreadableFile` (a ValueError), whose
message says why, without the path (the caller names the file).
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, BinaryIO

__all__ = ["MAX_FILE_BYTES", "UnreadableFile", "open_regular", "read_json", "read_text"]

#: the largest file svdbench reads back: its results.json and deployed.json are kilobytes to a few megabytes
MAX_FILE_BYTES = 64 * 2**20


class UnreadableFile(ValueError):
    """A file that is not a regular file, or larger than :data:`MAX_FILE_BYTES` (never read), or JSON nested
    deeper than the parser goes."""


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """The regular file at ``path`` (a link to one is followed), opened for binary reading, for
    readers of any size (``torch.load`` of a checkpoint or a deployed model). UnreadableFile for a FIFO, a
    device or a directory, looked at on the open file (a FIFO put there meanwhile never blocks); OSError where
    it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO without a writer: opened at once, never waited on
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile("not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file at ``path`` (a link to one is followed), of at most ``limit``
    bytes. UnreadableFile for anything else (looked at on the open file: a FIFO put there meanwhile never
    blocks), UnicodeDecodeError (a ValueError) for text that is not UTF-8, OSError where it cannot be opened."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise UnreadableFile(f"larger than {limit // 2**20} MiB ({size} bytes): not a file svdbench wrote")
        chunks, size = [], 0
        while size <= limit:
            chunk = f.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > limit:  # grew after the look
        raise UnreadableFile(f"larger than {limit // 2**20} MiB: not a file svdbench wrote")
    return b"".join(chunks).decode("utf-8")


def read_json(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> Any:
    """The JSON value in the file at ``path``, read by :func:`read_text`; ValueError (UnreadableFile, also for
    nesting too deep to parse; JSONDecodeError; UnicodeDecodeError) or OSError otherwise."""
    text = read_text(path, limit)
    try:
        return json.loads(text)
    except RecursionError:
        raise UnreadableFile("not valid JSON (nested too deeply)") from None
