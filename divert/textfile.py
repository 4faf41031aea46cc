"""Reading a text file a user named: a regular file under a size cap, or a clear error.

A path may name anything: `/dev/zero` (endless), `/dev/stdin` or a FIFO (blocks), a
directory, a huge file. The file is opened without blocking and checked before it is read,
and never more than the cap is read. A leaf: no other layer is imported.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnreadableFile(ValueError):
    """Why a file cannot be used as text, without the path (the caller names it)."""


def read_text(path: Path, max_bytes: int, encoding: str = "utf-8") -> str:
    """The text of the regular file at `path` if it holds at most `max_bytes` bytes.

    Raises UnreadableFile (missing, not a regular file, too large, not `encoding`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UnreadableFile(getattr(exc, "strerror", None) or str(exc)) from None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UnreadableFile("not a regular file")
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None
    if len(data) > max_bytes:
        raise UnreadableFile(f"larger than {max_bytes // 1024} KiB")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not {encoding.removesuffix('-sig').upper()} text "
                             f"(byte {exc.start})") from None
