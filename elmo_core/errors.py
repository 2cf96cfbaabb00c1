"""Typed errors shared by the library, the CLI and the service."""

from __future__ import annotations


class ElmoError(Exception):
    """Base class of every error elmo raises on purpose."""


class DatasetFormatError(ElmoError):
    """A dataset file is malformed: names the file, the 1-based line (0 if none) and the defect."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file = str(file)
        self.line = int(line)
        self.reason = reason
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        super().__init__(f"{where}: {reason}")


class ConfigError(ElmoError):
    """A configuration value is invalid."""
