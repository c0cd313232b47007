"""``prefaudit ablate DATA --eval GOLD --arms raw,cleaned,random_drop,robust,length_debiased --seeds 3
--model tiny --out DIR [--policy clean.toml]``: DPO per (arm, seed) and the effect of cleaning with CIs.

Writes ``DIR/ablation.json`` (arms: n_pairs, per-seed metrics, mean and ci per metric; differences:
``{arm, baseline, metric, value, ci}``) and one folder per run under ``DIR/runs``; an interrupted
ablation continues where it stopped (finished runs are not redone).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from prefaudit.cli.audit_options import QuietOpt
from prefaudit.cli.common import (
    AnnotationsOpt,
    ColumnOpt,
    DataArg,
    FormatOpt,
    LabelOpt,
    SeedOpt,
    app,
    load_input,
    parse_mapping,
    show_progress,
)
from prefaudit.errors import ConfigError, InputError


def _read_ids(path: Path) -> list[str]:
    """A pair-id list: one id per line (blank lines and '#' comments ignored)."""
    if not path.is_file():
        raise InputError("subset file not found", path=str(path))
    return [s for line in path.read_text(encoding="utf-8").splitlines() if (s := line.strip())
            and not s.startswith("#")]


@app.command("ablate")
def ablate_command(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Output folder: ablation.json and runs/.")],
    eval_: Annotated[Path | None, typer.Option("--eval", help="Held-out gold pairs, never cleaned "
                                               "(default: split off a seeded 10% of the prompts).")] = None,
    arms: Annotated[str, typer.Option("--arms", help="Comma-separated: raw, cleaned, random_drop, robust, "
                                      "length_debiased, cleaned_length_debiased, subset:NAME.")] = "raw,cleaned,random_drop,robust,length_debiased",
    subset: Annotated[list[str] | None, typer.Option("--subset", help="NAME=FILE: a pair-id list (one per "
                                                     "line) for the arm subset:NAME (repeatable).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Runs per arm (seeds seed, seed+1, ...).")] = 3,
    model: Annotated[str, typer.Option("--model", help="'tiny' or a local Hugging Face folder.")] = "tiny",
    policy: Annotated[Path | None, typer.Option("--policy", help="Clean policy TOML for the cleaned arm.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Steps per run (default: one raw epoch).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    max_length: Annotated[int, typer.Option("--max-length")] = 256,
    lr: Annotated[float, typer.Option("--lr")] = 1e-4,
    beta: Annotated[float, typer.Option("--beta")] = 0.1,
    loss: Annotated[str, typer.Option("--loss", help="Loss of every arm except robust / rdpo.")] = "sigmoid",
    sft_steps: Annotated[int, typer.Option("--sft-steps", help="Label-free SFT warm-up of the shared start.")] = 0,
    sft_lr: Annotated[float | None, typer.Option("--sft-lr", help="Warm-up learning rate (default: --lr).")] = None,
    length_debias: Annotated[str, typer.Option("--length-debias", help="resample or rdpo.")] = "resample",
    rdpo_alpha: Annotated[float, typer.Option("--rdpo-alpha")] = 0.01,
    preset: Annotated[list[str] | None, typer.Option("--preset", help="Tiny preset shape, e.g. n_layer=2.")] = None,
    gold: Annotated[str | None, typer.Option("--gold", help="'synth': score generations with the synthetic "
                                             "gold scorer.")] = None,
    generate: Annotated[int, typer.Option("--generate", help="Eval prompts to sample responses for.")] = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Sampling cap; keep it well above "
                                                "the responses' typical length so eos decides.")] = 256,
    no_embeddings: Annotated[bool, typer.Option("--no-embeddings", help="Audit without embeddings.")] = False,
    annotations: AnnotationsOpt = None,
    fmt: FormatOpt = "auto",
    columns: ColumnOpt = None,
    labels: LabelOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Train DPO on raw vs cleaned vs control subsets and report the differences with 95% CIs."""
    from prefaudit.ablate import ablate
    from prefaudit.data.load import load

    if gold not in (None, "synth"):
        raise ConfigError(f"--gold {gold}: only 'synth' is known")
    scorer = None
    if gold == "synth":
        from prefaudit.synth import gold_scores as scorer
    subsets = {name: _read_ids(Path(path)) for name, path in parse_mapping(subset, "subset").items()}
    shape = {k: int(v) for k, v in parse_mapping(preset, "preset").items()}
    pairs = load_input(data, annotations, fmt, columns, labels)
    result = ablate(
        pairs, None if eval_ is None else load(eval_), out=out, subsets=subsets, gold=scorer,
        progress=show_progress(), arms=tuple(a.strip() for a in arms.split(",") if a.strip()), seeds=seeds,
        model=model, policy=policy, steps=steps, batch_size=batch_size, max_length=max_length, lr=lr, beta=beta,
        loss=loss, sft_steps=sft_steps, sft_lr=sft_lr, length_debias=length_debias, rdpo_alpha=rdpo_alpha, preset=shape,
        generate=generate, max_new_tokens=max_new_tokens, embeddings=not no_embeddings, seed=seed)
    if not quiet:
        for d in result.summary["differences"]:
            ci = d["ci"]
            ci_s = "" if not ci else f"  95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}]"
            print(f"{d['metric']}: {d['arm']} - {d['baseline']} = {d['value']:+.4f}{ci_s}", file=sys.stdout)
        print(f"wrote {out / 'ablation.json'}", file=sys.stderr)
