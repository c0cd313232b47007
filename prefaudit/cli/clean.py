"""``prefaudit clean DATA [--policy clean.toml] --out cleaned.jsonl --manifest removed.jsonl [--review-out F]``.

Writes the kept pairs in TRL's prompt/chosen/rejected (+ weight) format, the manifest of every removed
or relabeled pair with all its reason codes, and optionally a CSV of suspicious pairs for re-annotation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefaudit.cli.audit import EvalOpt, MaxLengthOpt, ModelOpt, NoEmbeddingsOpt, QuietOpt, TokenizerOpt
from prefaudit.cli.common import (
    AnnotationsOpt,
    ColumnOpt,
    DataArg,
    FormatOpt,
    LabelOpt,
    SeedOpt,
    app,
    load_input,
    show_progress,
)


@app.command("clean")
def clean_command(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Cleaned pairs, TRL prompt/chosen/rejected (+ weight).")],
    manifest: Annotated[Path, typer.Option(
        "--manifest", help="Every removed or relabeled pair with action and reason codes (.jsonl/.csv).")],
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="Cleaning policy TOML (default: the documented prefaudit/defaults/clean.toml).")] = None,
    review_out: Annotated[Path | None, typer.Option(
        "--review-out", help="CSV of suspicious pairs for re-annotation (label column left empty).")] = None,
    annotations: AnnotationsOpt = None,
    eval_: EvalOpt = None,
    fmt: FormatOpt = "auto",
    columns: ColumnOpt = None,
    labels: LabelOpt = None,
    no_embeddings: NoEmbeddingsOpt = False,
    tokenizer: TokenizerOpt = None,
    max_length: MaxLengthOpt = 256,
    model: ModelOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Clean preference data by a policy; kept + removed = pairs in, always."""
    from prefaudit.clean import clean, load_policy
    from prefaudit.errors import ConfigError

    if review_out is not None and review_out.suffix.lower() != ".csv":
        raise ConfigError(f"--review-out must be a .csv file, got {review_out.name!r}")
    pol = load_policy(policy)  # a malformed policy fails before any work
    pset = load_input(data, annotations, fmt, columns, labels)
    embedder = None
    if model is not None and not no_embeddings:
        from prefaudit.embed import Embedder

        embedder = Embedder(model, progress=show_progress())
    result = clean(pset, pol, eval=eval_, seed=seed, embeddings=not no_embeddings, embedder=embedder, tokenizer=tokenizer,
                   max_length=max_length, progress=show_progress())
    result.write(out)
    result.write_manifest(manifest)
    if review_out is not None:
        result.write_review(review_out)
    if not quiet:
        c = result.counts
        reasons = ", ".join(f"{k} {v}" for k, v in c["by_reason"].items()) or "none"
        typer.echo(f"clean: {c['pairs_in']} pairs in, {c['kept']} kept ({c['relabeled']} relabeled), "
                   f"{c['removed']} removed; reasons: {reasons}")
        typer.echo(f"cleaned pairs: {out}; manifest: {manifest}" + (f"; review: {review_out}" if review_out else ""))
