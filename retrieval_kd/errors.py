"""User-facing errors: each names the file, line or field that is wrong."""
from __future__ import annotations

from pathlib import Path


class RKDError(Exception):
    """Base class for errors whose message is meant for the user (no traceback shown by the CLI)."""


class DataFormatError(RKDError):
    """A data file is malformed: carries the path, line number and field when known."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = message
        where = self.path + (f":{line}" if line is not None else "")
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {message}".replace(": ", ": ", 1))


class DataNotFoundError(RKDError):
    """A collection or one of its files is missing."""


class ConfigError(RKDError):
    """A configuration file or value is invalid."""


class BundleError(RKDError):
    """A bundle (index + encoder + docstore) is missing a file, corrupt or of the wrong version."""


class DataWarning(UserWarning):
    """A data file has something the reader left out on purpose (e.g. an empty rewrite): names file and item."""
