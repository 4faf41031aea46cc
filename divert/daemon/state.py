"""The daemon's persistent state: one JSON file, written atomically, never trusted blindly.

A write goes to a temporary file beside the target, is fsynced, renamed over the target and
the directory fsynced: after a power cut the file is the old or the new version, never a mix.
A file that cannot be read or parsed is reported, renamed aside (kept for inspection) and the
daemon starts afresh; the relay guard then errs on the side of no history.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VERSION = 1


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None if there is none or it is unusable (then set aside)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.set_aside(f"cannot read: {exc}")
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            self.set_aside(f"not valid JSON (truncated?): {exc}")
            return None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            self.set_aside(f"not a version {VERSION} state object")
            return None
        return data

    def set_aside(self, why: str) -> None:
        """Report an unusable state file and move it out of the way."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            self.path.replace(aside)
        except OSError as exc:
            log.error("state file %s is unusable (%s) and could not be moved aside: %s; "
                      "starting without saved state", self.path, why, exc)
            return
        log.error("state file %s is unusable (%s); moved to %s, starting without saved state",
                  self.path, why, aside)

    def save(self, data: dict[str, Any]) -> None:
        """Write `data` atomically and durably; OSError if the file system refused (the
        previous file is then left as it was)."""
        payload = json.dumps({"version": VERSION, **data}, indent=1, sort_keys=True)
        directory = self.path.parent
        tmp: str | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            tmp = None
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
