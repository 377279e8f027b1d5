"""Collecting configuration errors: every problem of a file is reported at once.

`Ctx` records `<key path>: <message>` errors and the secret values seen, and redacts those from
every message before it is raised as one `ConfigError`. Validators return `BAD` after recording
an error, so the caller can carry on and report the next problem too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


class ConfigError(Exception):
    """Invalid configuration. `str(err)` lists every problem, one per line, key path first."""

    def __init__(self, errors: str | Sequence[str]):
        self.errors: tuple[str, ...] = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("\n".join(self.errors))


class _Bad:
    """Marker for a value that failed validation (its error is already recorded)."""

    def __repr__(self) -> str:
        return "<bad>"


BAD: Any = _Bad()


class Expanded(str):
    """A string that came (partly) from an environment variable. Such values may also stand for
    a bool or int ("true", "3"), because environment variables can only carry strings."""


@dataclass
class Ctx:
    base_dir: str
    environ: Mapping[str, str]

    def __post_init__(self) -> None:
        self.errors: list[str] = []
        self.secrets: set[str] = set()
        # Paths whose ${...} expansion failed: they hold BAD, and any later complaint about that
        # value ("must be a string") would only repeat the first error.
        self.unexpanded: set[str] = set()

    def add(self, path: str, message: str) -> Any:
        if path not in self.unexpanded:
            self.errors.append(f"{path or 'config'}: {message}")
        return BAD

    def add_unexpanded(self, path: str, message: str) -> Any:
        self.add(path, message)
        self.unexpanded.add(path)
        return BAD

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigError([self._redact(m) for m in self.errors])

    def _redact(self, message: str) -> str:
        # Longest first, so a secret containing another is removed whole.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 4:
                message = message.replace(secret, "<redacted>")
        return message


def join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def describe(value: object) -> str:
    """The kind of a value, for messages that must not echo it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    return f"a {type(value).__name__}"
