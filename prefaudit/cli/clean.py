"""``prefaudit clean DATA [--policy clean.toml] --out cleaned.jsonl --manifest removed.jsonl [--review-out F]``.

Writes the kept pairs in TRL's prompt/chosen/rejected (+ weight) format, the manifest of every removed
or relabeled pair with all its reason codes, and optionally a CSV of suspicious pairs for re-annotation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefaudit.cli.audit_options import AuditOptions, QuietOpt, audit_options
from prefaudit.cli.common import DataArg, app, show_progress


@app.command("clean")
@audit_options(without=("target", "by"))
def clean_command(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Cleaned pairs, TRL prompt/chosen/rejected (+ weight).")],
    manifest: Annotated[Path, typer.Option(
        "--manifest", help="Every removed or relabeled pair with action and reason codes (.jsonl/.csv).")],
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="Cleaning policy TOML (default: the documented prefaudit/defaults/clean.toml).")] = None,
    review_out: Annotated[Path | None, typer.Option(
        "--review-out", help="CSV of suspicious pairs for re-annotation (label column left empty).")] = None,
    opts: AuditOptions = AuditOptions(),  # the shared options, put in place by @audit_options
    quiet: QuietOpt = False,
) -> None:
    """Clean preference data by a policy; kept + removed = pairs in, always."""
    from prefaudit.clean import clean, load_policy
    from prefaudit.errors import ConfigError

    if review_out is not None and review_out.suffix.lower() != ".csv":
        raise ConfigError(f"--review-out must be a .csv file, got {review_out.name!r}")
    pol = load_policy(policy)  # a malformed policy fails before any work
    pset = opts.load(data)
    result = clean(pset, pol, eval=opts.eval_, seed=opts.seed, embeddings=not opts.no_embeddings,
                   embedder=opts.embedder(), tokenizer=opts.tokenizer, max_length=opts.max_length,
                   progress=show_progress(), max_model_pairs=opts.max_model_pairs)
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
