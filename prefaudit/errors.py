"""Typed errors. Every user-facing failure is one of these; the CLI maps them to exit code 2."""

from __future__ import annotations


class PrefauditError(Exception):
    """Base class of the project's own errors."""

    exit_code = 2


class InputError(PrefauditError):
    """Unusable input: names the file, the line or row, and the column when known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path, self.line, self.row, self.column = path, line, row, column
        self.reason = message
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(PrefauditError):
    """A bad thresholds / policy / option value (e.g. a malformed TOML file, an unknown metric)."""
