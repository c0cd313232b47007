"""Reading the project's TOML configuration files (gate thresholds, cleaning policies) with one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefaudit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The parsed TOML at ``path``; a :class:`ConfigError` (exit code 2) naming the file when it is
    missing (``what`` says which kind of file: "policy", "thresholds"), malformed or not UTF-8."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
