"""The cursor file: the last (epoch, seq) the bot finished, replaced atomically so a crash never leaves half."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from quantum_signals_client.events import Cursor


class CursorFileError(ValueError):
    """A cursor file that cannot be read as a cursor."""


class CursorFile:
    """A JSON file {"epoch": ..., "seq": ...}; load() gives None until the first save()."""

    def __init__(self, path: str | os.PathLike[str]):
        """Bind to PATH (nothing is read or written yet)."""
        self.path = Path(path)

    def load(self) -> Cursor | None:
        """The saved cursor, None when there is no file; CursorFileError naming the file when it is not one."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            epoch, seq = data["epoch"], data["seq"]
        except (ValueError, TypeError, KeyError):
            data = epoch = seq = None
        if not (isinstance(epoch, str) and epoch and isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0):
            raise CursorFileError(
                f'{self.path} is not a cursor file (want {{"epoch": "...", "seq": N}}, got {text[:200]!r}); '
                "fix it, or delete it to start from the live stream"
            )
        return Cursor(epoch, seq)

    def save(self, cursor: Cursor) -> None:
        """Replace the file with CURSOR: write a temporary file, fsync it, rename it over, fsync the folder."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump({"epoch": cursor.epoch, "seq": cursor.seq}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename itself is durable only once the folder's entry is on disk.
        folder = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
