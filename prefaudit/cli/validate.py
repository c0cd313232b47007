"""``prefaudit validate DATA [--annotations F] [--target F] [--format ...] [--quarantine-out FILE] [--strict] [--json]``.

Loads the data exactly as every other command does and prints what was read: rows, pairs, ties,
quarantined records by reason, annotations used/quarantined, and whether every row is accounted
for. Exit 0; with ``--strict`` exit 1 when anything was quarantined; exit 2 (one line naming file,
line/row and column) when the input is unusable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from prefaudit.cli.common import (
    AnnotationsOpt,
    ColumnOpt,
    DataArg,
    FormatOpt,
    LabelOpt,
    SeedOpt,
    TargetOpt,
    app,
    load_input,
    load_target_input,
)


@app.command("validate")
def validate_command(
    data: DataArg,
    annotations: AnnotationsOpt = None,
    target: TargetOpt = None,
    fmt: FormatOpt = "auto",
    column: ColumnOpt = None,
    label: LabelOpt = None,
    seed: SeedOpt = 0,
    quarantine_out: Annotated[Path | None, typer.Option(
        "--quarantine-out", help="Write the quarantined records (pairs and annotations) to this file "
        "(.jsonl, .json, .csv or .parquet).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any record was quarantined.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Load DATA, account for every row, and report what was quarantined and why."""
    from prefaudit.data.io import write_frame
    from prefaudit.data.validate import format_report, quarantine_table, report

    ps = load_input(data, annotations, fmt, column, label)
    tgt = load_target_input(target, column)
    summary = report(ps, tgt, None if target is None else str(target))
    if quarantine_out is not None:
        write_frame(quarantine_table(ps), quarantine_out)
        summary["quarantine_out"] = str(quarantine_out)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_report(summary))
        if quarantine_out is not None:
            print(f"  quarantine written to {quarantine_out}")
    sys.stdout.flush()
    anything = summary["quarantined"] or (summary.get("annotations") or {}).get("quarantined", 0)
    if strict and anything:
        raise typer.Exit(1)
