"""``prefaudit gate [DATA | --audit audit.json] [--config gate.toml] [--baseline F] [--json OUT]``.

Exit 0 when the verdict is pass or warn, 1 when it is fail, 2 on bad input (missing file, malformed
TOML, unknown metric name) with a one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefaudit.cli.audit_options import AuditOptions, QuietOpt, audit_options
from prefaudit.cli.common import app
from prefaudit.errors import ConfigError

if TYPE_CHECKING:
    from prefaudit.gate import GateResult


def print_checks(result: GateResult) -> None:
    """The checks table (skipped checks on one line) and the verdict, on stdout."""
    from rich.console import Console
    from rich.table import Table

    colour = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
    table = Table(title="prefaudit gate", title_justify="left")
    for col in ("status", "metric", "check", "detail"):
        table.add_column(col, overflow="fold")
    shown = result.checks.filter(result.checks["status"] != "skip")
    for r in shown.iter_rows(named=True):
        table.add_row(f"[{colour[r['status']]}]{r['status']}[/]", r["metric"],
                      f"{r['kind']} ({r['severity']})", r["message"])
    console = Console(highlight=False, width=None if Console().is_terminal else 120)
    console.print(table)
    skipped = sorted(set(result.checks.filter(result.checks["status"] == "skip")["metric"].to_list()))
    if skipped:
        console.print(f"skipped (metric undefined): {', '.join(skipped)}", markup=False)
    c = result.counts
    console.print(f"verdict: [bold {colour[result.verdict]}]{result.verdict.upper()}[/] "
                  f"({c['pass']} pass, {c['warn']} warn, {c['fail']} fail, {c['skip']} skipped)")


@app.command("gate")
@audit_options()
def gate_command(
    data: Annotated[Path | None, typer.Argument(
        help="Preference data to audit (omit with --audit).")] = None,
    audit_json: Annotated[Path | None, typer.Option(
        "--audit", help="Judge an existing audit JSON instead of auditing DATA.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Thresholds TOML (default: the documented prefaudit/defaults/gate.toml).")] = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="A previous audit JSON: adds regression checks.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write the audit JSON with its checks and verdict here.")] = None,
    opts: AuditOptions = AuditOptions(),  # the shared options, put in place by @audit_options
    quiet: QuietOpt = False,
) -> None:
    """Judge preference data against thresholds: exit 0 pass/warn, 1 fail, 2 bad input."""
    from prefaudit.audit import Audit
    from prefaudit.gate import gate, load_thresholds

    if (data is None) == (audit_json is None):
        raise ConfigError("give either DATA or --audit audit.json (exactly one)")
    thresholds = load_thresholds(config)  # a malformed file fails before any audit work
    base = Audit.from_json(baseline) if baseline is not None else None
    result = Audit.from_json(audit_json) if audit_json is not None else opts.run_audit(data)
    verdict = gate(result, thresholds, baseline=base)
    if baseline is not None:
        verdict.baseline = str(baseline)
    if json_out is not None:
        result.to_json(json_out)
    if not quiet:
        print_checks(verdict)
    raise typer.Exit(verdict.exit_code)
