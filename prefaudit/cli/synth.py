"""``prefaudit synth``: write synthetic preference data with known ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefaudit.cli.common import SeedOpt, app
from prefaudit.errors import ConfigError


def _accuracies(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--accuracies expects comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError("--accuracies is empty")
    return values


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Pairs file (.jsonl, .csv, .parquet) or a directory "
                                      "(then every file is written into it).")],
    truth: Annotated[Path | None, typer.Option("--truth", help="Per-pair truth (JSONL); the global truth "
                                               "goes to <stem>.meta.json beside it.")] = None,
    annotations_out: Annotated[Path | None, typer.Option(
        "--annotations-out", help="Votes file with --annotators (default: <out stem>.annotations.jsonl).")] = None,
    target_out: Annotated[Path | None, typer.Option("--target-out", help="Target prompts file.")] = None,
    eval_out: Annotated[Path | None, typer.Option("--eval-out", help="Clean held-out eval pairs file.")] = None,
    n: Annotated[int, typer.Option("--n", help="Number of training pairs.")] = 2000,
    flip_rate: Annotated[float, typer.Option("--flip-rate", help="Share of pairs with randomly swapped labels.")] = 0.0,
    length_bias: Annotated[float | None, typer.Option(
        "--length-bias", help="P(the length-biased annotator picks the longer response); off when absent.")] = None,
    biased_share: Annotated[float, typer.Option(
        "--biased-share", help="Share of pairs labeled by the length-biased annotator.")] = 0.25,
    tie_share: Annotated[float, typer.Option("--tie-share", help="Share of pairs of equal gold quality.")] = 0.05,
    annotators: Annotated[int, typer.Option("--annotators", help="Number of annotators (0: single-label).")] = 0,
    accuracies: Annotated[str | None, typer.Option(
        "--accuracies", help="Annotator accuracies, e.g. 0.95,0.9,0.85,0.6 (sets the number of annotators).")] = None,
    votes_per_pair: Annotated[int | None, typer.Option(
        "--votes-per-pair", help="Annotators rating each pair (default: all).")] = None,
    withhold: Annotated[list[str] | None, typer.Option(
        "--withhold", help="Topic absent from training, present in the target set (repeatable; 'none' for no "
        "topic; default: astronomy).")] = None,
    n_target: Annotated[int, typer.Option("--n-target", help="Number of target prompts.")] = 400,
    n_eval: Annotated[int, typer.Option("--n-eval", help="Number of clean eval pairs.")] = 500,
    seed: SeedOpt = 0,
) -> None:
    """Generate synthetic preference data with known ground truth (topics, gold labels, noise, bias)."""
    from prefaudit.synth import DEFAULT_WITHHELD, make

    withheld = DEFAULT_WITHHELD if withhold is None else tuple(t for t in withhold if t.lower() != "none")
    data = make(n, flip_rate=flip_rate, length_bias=length_bias, biased_share=biased_share, tie_share=tie_share,
                n_annotators=annotators, annotator_accuracies=_accuracies(accuracies),
                votes_per_pair=votes_per_pair, withheld_topics=withheld, n_target=n_target, n_eval=n_eval,
                seed=seed)
    written = data.write(out, truth, annotations_path=annotations_out, target_path=target_out, eval_path=eval_out)
    meta = data.meta()
    typer.echo(f"{meta['pairs']} pairs ({meta['flipped']} flipped, {meta['biased']} length-biased, "
               f"{meta['quality_ties']} quality ties; noise rate {data.noise_rate}); "
               f"Bayes accuracy {data.bayes_accuracy}")
    for role, path in written.items():
        typer.echo(f"  {role}: {path}")
