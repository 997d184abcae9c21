"""Errors that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DltkError(Exception):
    """A problem with the user's input: shown as one line, never as a traceback."""


class ConfigError(DltkError):
    """A configuration file, recipe or override is invalid."""


class DataError(DltkError):
    """A data source is missing, unreadable or malformed."""


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line (its type's name where it has none),
    for one-line errors that quote a library's reason."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest known name, or ''."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""
