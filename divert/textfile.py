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


class MissingFile(UnreadableFile):
    """There is no file at the path."""


def read_text(path: Path, max_bytes: int, encoding: str = "utf-8") -> str:
    """The text of the regular file at `path` if it holds at most `max_bytes` bytes.

    Raises MissingFile, or UnreadableFile (not a regular file, too large, not `encoding`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise MissingFile(exc.strerror) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UnreadableFile(getattr(exc, "strerror", None) or str(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile("not a regular file")
        data = b""
        while len(data) <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnreadableFile(f"larger than {max_bytes // 1024} KiB")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not {encoding.removesuffix('-sig').upper()} text "
                             f"(byte {exc.start})") from None
