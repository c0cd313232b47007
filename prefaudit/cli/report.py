"""``prefaudit report [DATA | --audit audit.json] -o audit.html [--config gate.toml] [--ablation DIR]``.

Writes one self-contained HTML file (opens offline) and prints its path. Exit 0 whatever the verdict
(only ``gate`` judges with its exit code), 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefaudit.cli.audit_options import AuditOptions, QuietOpt, audit_options
from prefaudit.cli.common import app
from prefaudit.errors import ConfigError


@app.command("report")
@audit_options()
def report_command(
    data: Annotated[Path | None, typer.Argument(help="Preference data to audit (omit with --audit).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("audit.html"),
    audit_json: Annotated[Path | None, typer.Option(
        "--audit", help="Render an existing audit JSON instead of auditing DATA.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Gate thresholds TOML: adds the verdict banner and the checks table.")] = None,
    ablation: Annotated[Path | None, typer.Option(
        "--ablation", help="Directory (or file) with ablation.json from `prefaudit ablate`.")] = None,
    max_pairs: Annotated[int, typer.Option(
        "--max-pairs", help="Most suspicious flagged pairs embedded in the pair browser.")] = 2000,
    pairs_out: Annotated[Path | None, typer.Option(
        "--pairs-out", help="Also write the full per-pair table (.parquet or .csv); the report names it.")] = None,
    opts: AuditOptions = AuditOptions(),  # the shared options, put in place by @audit_options
    quiet: QuietOpt = False,
) -> None:
    """Write the self-contained HTML audit report (verdict, metrics, plots, pair browser, ablation)."""
    from prefaudit.report import read_audit_json, render_html
    from prefaudit.report.ablation import load_ablation

    if (data is None) == (audit_json is None):
        raise ConfigError("give either DATA or --audit audit.json (exactly one)")
    if max_pairs < 0:
        raise ConfigError(f"--max-pairs must be >= 0, got {max_pairs}")
    if pairs_out is not None:
        if audit_json is not None:
            raise ConfigError("--pairs-out needs DATA: an audit JSON holds only its most suspicious pairs")
        if pairs_out.suffix.lower() not in (".parquet", ".csv"):
            raise ConfigError(f"--pairs-out must end in .parquet or .csv, got {pairs_out.name!r}")
    thresholds = None
    if config is not None:  # malformed inputs fail before any audit work
        from prefaudit.gate import load_thresholds

        thresholds = load_thresholds(config)
    abl = load_ablation(ablation) if ablation is not None else None
    if audit_json is not None:
        audit = read_audit_json(audit_json)
    else:
        audit = opts.run_audit(data)
        if pairs_out is not None:
            audit.write_pairs(pairs_out)
    render_html(audit, out, gate=thresholds, ablation=abl, max_pairs=max_pairs, pairs_out=pairs_out)
    if not quiet:
        typer.echo(f"report written to {out}")
