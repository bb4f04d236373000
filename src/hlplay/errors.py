"""Errors a user sees: one line, with the file, line and column where known.

Every error meant for the user derives from :class:`HlplayError`; the CLI
prints ``str(err)`` and exits with ``err.exit_code`` — never a traceback
unless ``--debug`` is given.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

# Exit codes follow ansible-playbook's where it has one.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FAILED = 2
EXIT_UNREACHABLE = 4
EXIT_BAD_OPTIONS = 5
EXIT_INTERRUPTED = 99


@dataclass(frozen=True)
class Location:
    """A place in a source file; line and column are 1-based (0 = unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.file}:{self.line}:{self.column}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


class HlplayError(Exception):
    """An error in the user's input or environment, reported without a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        return self.message


class InventoryError(HlplayError):
    """The inventory cannot be loaded or a selection is invalid."""


class SelectionError(HlplayError):
    """A host pattern is malformed or matches nothing."""


class PlaybookError(HlplayError):
    """A playbook cannot be loaded or validated."""


class OptionsError(HlplayError):
    """Bad command-line options."""

    exit_code = EXIT_BAD_OPTIONS


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choices, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    if not close:
        return ""
    if len(close) == 1:
        return f" (did you mean '{close[0]}'?)"
    return " (did you mean " + ", ".join(f"'{c}'" for c in close) + "?)"
