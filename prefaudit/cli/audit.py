"""``prefaudit audit DATA ... --json OUT``: run every applicable analyzer and write the audit JSON.

The audit options defined here (embeddings, tokenizer, breakdowns) are shared with ``prefaudit gate``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    show_progress,
)

if TYPE_CHECKING:
    from prefaudit.audit import Audit

EvalOpt = Annotated[Path | None, typer.Option(
    "--eval", help="An eval set: its prompts are checked for leakage into DATA.")]
NoEmbeddingsOpt = Annotated[bool, typer.Option(
    "--no-embeddings", help="Run only what needs no embedding model (the fast path for large data).")]
ByOpt = Annotated[list[str] | None, typer.Option(
    "--by", help="Break the results down by this metadata column (repeatable).")]
TokenizerOpt = Annotated[str | None, typer.Option(
    "--tokenizer", help="Tokenizer for the truncation audit: a local Hugging Face path, or 'tiny'.")]
MaxLengthOpt = Annotated[int, typer.Option("--max-length", help="Token budget of the truncation audit.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Embedding model name or local path (default: the bundled all-MiniLM-L6-v2).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
MaxModelPairsOpt = Annotated[int, typer.Option(
    "--max-model-pairs", help="Above this many pairs, the model-fitting analyzers (noise without annotations, "
    "bias) run on a seeded random sample of this size; 0: every pair.")]


def run_audit(data: Path, annotations: Path | None, target: Path | None, eval_: Path | None, fmt: str,
              columns: list[str] | None, labels: list[str] | None, no_embeddings: bool, by: list[str] | None,
              tokenizer: str | None, max_length: int, seed: int, model: str | None = None,
              max_model_pairs: int = 50_000) -> Audit:
    """Load the inputs with the common options and audit them (shared by ``audit`` and ``gate``)."""
    from prefaudit.audit import audit

    t, c = time.perf_counter(), time.process_time()
    pset = load_input(data, annotations, fmt, columns, labels)
    tgt = load_target_input(target, columns)
    read = {"read": time.perf_counter() - t, "cpu_read": time.process_time() - c}
    embedder = None
    if model is not None and not no_embeddings:
        from prefaudit.embed import Embedder

        embedder = Embedder(model, progress=show_progress())
    result = audit(pset, target=tgt, eval=eval_, seed=seed, embeddings=not no_embeddings, embedder=embedder,
                   tokenizer=tokenizer, max_length=max_length, by=tuple(by or ()), progress=show_progress(),
                   max_model_pairs=max_model_pairs or None)
    result.timings = {**read, **result.timings}
    return result


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
def audit_command(
    data: DataArg,
    json_out: Annotated[Path, typer.Option("--json", help="Write the audit JSON here (DESIGN.md contract).")],
    annotations: AnnotationsOpt = None,
    target: TargetOpt = None,
    eval_: EvalOpt = None,
    fmt: FormatOpt = "auto",
    columns: ColumnOpt = None,
    labels: LabelOpt = None,
    no_embeddings: NoEmbeddingsOpt = False,
    by: ByOpt = None,
    tokenizer: TokenizerOpt = None,
    max_length: MaxLengthOpt = 256,
    model: ModelOpt = None,
    max_model_pairs: MaxModelPairsOpt = 50_000,
    pairs_out: Annotated[Path | None, typer.Option(
        "--pairs-out", help="Write the per-pair table (.parquet or .csv).")] = None,
    target_out: Annotated[Path | None, typer.Option(
        "--target-out", help="Write one row per target prompt: prompt, ood_score, ood_flag, cluster.")] = None,
    examples: Annotated[int, typer.Option("--examples", help="Most suspicious pairs kept in the JSON.")] = 500,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Audit preference data: agreement, label noise, bias, coverage, truncation and hygiene."""
    from prefaudit.errors import ConfigError

    if target_out is not None and target is None:
        raise ConfigError("--target-out needs --target")
    if pairs_out is not None and pairs_out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--pairs-out must end in .parquet or .csv, got {pairs_out.name!r}")
    result = run_audit(data, annotations, target, eval_, fmt, columns, labels, no_embeddings, by, tokenizer,
                       max_length, seed, model, max_model_pairs)
    result.n_examples = examples
    result.to_json(json_out)
    if pairs_out is not None:
        result.write_pairs(pairs_out)
    if target_out is not None:
        result.write_target(target_out)
    if not quiet:
        print_summary(result)
        typer.echo(f"audit written to {json_out}")
