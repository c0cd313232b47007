"""Shared pieces of the CLI: the app, the input options every data-reading command takes, output helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from prefaudit.errors import ConfigError

app = typer.Typer(
    name="prefaudit",
    help="Audit preference data (prompt, chosen, rejected) before DPO trains on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

# ---- the input options every command that reads preference data accepts ------------------------
DataArg = Annotated[Path, typer.Argument(help="Preference data: JSONL(.gz), JSON, CSV or Parquet.")]
AnnotationsOpt = Annotated[
    Path | None, typer.Option("--annotations", help="Long-form annotations: pair_id, annotator_id, label.")]
TargetOpt = Annotated[
    Path | None, typer.Option("--target", help="Target prompts (any loadable file with a prompt column).")]
FormatOpt = Annotated[str, typer.Option("--format", help="Input shape: auto, flat, trl, hh, pairwise, "
                                        "scored, annotations-long, annotations-wide, tulu.")]
ColumnOpt = Annotated[list[str] | None, typer.Option(
    "--column", help="Column mapping NAME=SOURCE, e.g. --column prompt=instruction (repeatable).")]
LabelOpt = Annotated[list[str] | None, typer.Option(
    "--label", help="Label mapping VALUE=LABEL, e.g. --label a-is-slightly-better=1 (repeatable).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (every result is deterministic for a seed).")]


def parse_mapping(items: list[str] | None, what: str) -> dict[str, str]:
    """Parse repeated KEY=VALUE options into a dict (exit 2 on a malformed item)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--{what} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def parse_labels(items: list[str] | None) -> dict[str, Any]:
    """Label mappings: the value is a/b/tie or a number in [-2, 2]."""
    out: dict[str, Any] = {}
    for key, value in parse_mapping(items, "label").items():
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def load_input(data: Path, annotations: Path | None = None, fmt: str = "auto",
               columns: list[str] | None = None, labels: list[str] | None = None):
    """Load DATA (+ annotations) with the common options into a PreferenceSet."""
    from prefaudit.data.load import load

    return load(data, format=fmt, columns=parse_mapping(columns, "column"), labels=parse_labels(labels),
                annotations=annotations)


def load_target_input(target: Path | None, columns: list[str] | None = None):
    if target is None:
        return None
    from prefaudit.data.load import load_prompts

    return load_prompts(target, columns=parse_mapping(columns, "column"))


def show_progress() -> bool:
    """Progress bars only on an interactive terminal, never in CI logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit."""
    first = " ".join(str(message).split())
    print(f"prefaudit: error: {first}", file=sys.stderr)
    sys.exit(code)
