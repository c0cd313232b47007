"""``prefaudit audit DATA ... --json OUT``: run every applicable analyzer and write the audit JSON.

The options shared with ``gate``, ``report`` and ``clean`` are in :mod:`prefaudit.cli.audit_options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefaudit.cli.audit_options import AuditOptions, QuietOpt, audit_options
from prefaudit.cli.common import DataArg, app

if TYPE_CHECKING:
    from prefaudit.audit import Audit


def print_summary(audit: Audit) -> None:
    """A short table of the contract metrics (and skipped analyzers) on stdout."""
    from rich.console import Console
    from rich.table import Table

    from prefaudit.reprs import format_metric

    table = Table(title=f"prefaudit audit: {audit.input.get('pairs', 0):,} pairs", title_justify="left")
    for col in ("metric", "value", "95% CI", "n / note"):
        table.add_column(col, overflow="fold")
    for name, m in audit.headline():
        table.add_row(name, *format_metric(m))
    console = Console(highlight=False, width=None if Console().is_terminal else 120)
    console.print(table)
    for name, reason in audit.skipped.items():
        console.print(f"skipped {name}: {reason}", markup=False)


@app.command("audit")
@audit_options()
def audit_command(
    data: DataArg,
    json_out: Annotated[Path, typer.Option("--json", help="Write the audit JSON here (DESIGN.md contract).")],
    opts: AuditOptions = AuditOptions(),  # the shared options, put in place by @audit_options
    pairs_out: Annotated[Path | None, typer.Option(
        "--pairs-out", help="Write the per-pair table (.parquet or .csv).")] = None,
    target_out: Annotated[Path | None, typer.Option(
        "--target-out", help="Write one row per target prompt: prompt, ood_score, ood_flag, cluster.")] = None,
    examples: Annotated[int, typer.Option("--examples", help="Most suspicious pairs kept in the JSON.")] = 500,
    quiet: QuietOpt = False,
) -> None:
    """Audit preference data: agreement, label noise, bias, coverage, truncation and hygiene."""
    from prefaudit.errors import ConfigError

    if target_out is not None and opts.target is None:
        raise ConfigError("--target-out needs --target")
    if pairs_out is not None and pairs_out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--pairs-out must end in .parquet or .csv, got {pairs_out.name!r}")
    result = opts.run_audit(data)
    result.n_examples = examples
    result.to_json(json_out)
    if pairs_out is not None:
        result.write_pairs(pairs_out)
    if target_out is not None:
        result.write_target(target_out)
    if not quiet:
        print_summary(result)
        typer.echo(f"audit written to {json_out}")
