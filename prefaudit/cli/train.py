"""``prefaudit train DATA --model PATH|tiny --loss sigmoid --beta 0.1 ... --out DIR [--eval F] [--resume]``.

Writes ``DIR/metrics.jsonl`` (one record per step), ``DIR/summary.json`` (steps, wall_s, steps_per_s,
tokens_per_s, final_loss, eval), ``DIR/eval_pairs.parquet`` with ``--eval``, and the trained model in
``DIR/model``. Runs under ``torchrun`` / ``accelerate launch`` as well (DDP).
"""

from __future__ import annotations

import os
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
    app,
    load_input,
    parse_mapping,
    show_progress,
)


def _opt(name: str, help: str) -> typer.models.OptionInfo:
    return typer.Option(name, help=help)


@app.command("train")
def train_command(
    data: DataArg,
    out: Annotated[Path, _opt("--out", "Output folder: metrics.jsonl, summary.json, checkpoints, model/.")],
    model: Annotated[str, _opt("--model", "'tiny' (built from the data) or a local Hugging Face folder.")] = "tiny",
    ref_model: Annotated[str | None, _opt("--ref-model", "Reference model folder (default: the initial "
                                          "policy).")] = None,
    loss: Annotated[str, _opt("--loss", "sigmoid, cdpo, ipo, hinge, robust, simpo, rdpo or ld-dpo.")] = "sigmoid",
    beta: Annotated[float, _opt("--beta", "Strength of the KL constraint (IPO: tau).")] = 0.1,
    label_smoothing: Annotated[float, _opt("--label-smoothing", "cDPO / SimPO label-flip probability.")] = 0.0,
    eps: Annotated[float, _opt("--eps", "robust: label-noise rate in [0, 0.5).")] = 0.1,
    gamma: Annotated[float, _opt("--gamma", "simpo: target reward margin.")] = 0.5,
    alpha: Annotated[float, _opt("--alpha", "rdpo: length regularisation strength.")] = 0.0,
    ld_alpha: Annotated[float, _opt("--ld-alpha", "ld-dpo: weight of tokens beyond the common length.")] = 0.5,
    batch_size: Annotated[int, _opt("--batch-size", "Pairs per optimizer step (over all processes).")] = 8,
    grad_accum: Annotated[int, _opt("--grad-accum", "Micro-batches per step and process.")] = 1,
    max_length: Annotated[int, _opt("--max-length", "Tokens per sequence (prompt + response).")] = 256,
    max_prompt_length: Annotated[int | None, _opt("--max-prompt-length", "keep_end_prompt: fewest prompt "
                                                  "tokens kept (default max-length / 2).")] = None,
    truncation: Annotated[str, _opt("--truncation", "keep_end_prompt (default) or keep_start (trl >= 1.0).")]
    = "keep_end_prompt",
    steps: Annotated[int | None, _opt("--steps", "Optimizer steps (default: one epoch).")] = None,
    lr: Annotated[float, _opt("--lr", "Peak learning rate (AdamW).")] = 1e-4,
    warmup: Annotated[int | None, _opt("--warmup", "Warmup steps (default: 10% of the steps).")] = None,
    schedule: Annotated[str, _opt("--schedule", "cosine, linear or constant after warmup.")] = "cosine",
    max_grad_norm: Annotated[float, _opt("--max-grad-norm", "Gradient clipping (0: off).")] = 1.0,
    save_every: Annotated[int, _opt("--save-every", "Checkpoint every N steps (0: never).")] = 0,
    eval_every: Annotated[int, _opt("--eval-every", "Evaluate every N steps (0: at the end only).")] = 0,
    sft_steps: Annotated[int, _opt("--sft-steps", "SFT warm-up steps on the chosen responses first.")] = 0,
    sft_lr: Annotated[float | None, _opt("--sft-lr", "SFT warm-up learning rate (default: --lr).")] = None,
    lora_r: Annotated[int, _opt("--lora-r", "LoRA rank (0: full fine-tuning; needs peft).")] = 0,
    lora_alpha: Annotated[int | None, _opt("--lora-alpha", "LoRA alpha (default 2 x rank).")] = None,
    trust_remote_code: Annotated[bool, _opt("--trust-remote-code", "Allow a model folder's own code.")] = False,
    device: Annotated[str | None, _opt("--device", "cpu or cuda (default: cuda when available).")] = None,
    precision: Annotated[str, _opt("--precision", "auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.")]
    = "auto",
    eval_: Annotated[Path | None, _opt("--eval", "Held-out pairs: preference accuracy and margin.")] = None,
    resume: Annotated[bool, _opt("--resume", "Continue the run checkpointed in --out.")] = False,
    annotations: AnnotationsOpt = None,
    fmt: FormatOpt = "auto",
    columns: ColumnOpt = None,
    labels: LabelOpt = None,
    seed: SeedOpt = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Train a policy with DPO (or a variant) on DATA; ties are left out."""
    from prefaudit.data.load import load
    from prefaudit.train import train

    pset = load_input(data, annotations, fmt, columns, labels)
    held_out = load(eval_, columns=parse_mapping(columns, "column")) if eval_ is not None else None
    res = train(pset, held_out, out=out, resume=resume, progress=show_progress(), model=model, ref_model=ref_model,
                loss=loss, beta=beta, label_smoothing=label_smoothing, eps=eps, gamma=gamma, alpha=alpha,
                ld_alpha=ld_alpha, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
                max_prompt_length=max_prompt_length, truncation=truncation, steps=steps, lr=lr,
                warmup_steps=warmup, schedule=schedule, max_grad_norm=max_grad_norm, save_every=save_every,
                eval_every=eval_every, sft_steps=sft_steps, sft_lr=sft_lr, lora_r=lora_r, lora_alpha=lora_alpha,
                trust_remote_code=trust_remote_code, device=device, precision=precision, seed=seed)
    s = res.summary
    if not quiet and os.environ.get("RANK", "0") == "0":  # one report from a distributed run
        line = (f"train: {s['steps']} steps on {s['pairs']} pairs, final loss {s['final_loss']:.4f}, "
                f"{s['steps_per_s']:.2f} steps/s, {s['tokens_per_s']:.0f} tokens/s")
        if s["eval"]:
            line += (f"; eval preference accuracy {s['eval']['preference_accuracy']:.3f}, "
                     f"mean margin {s['eval']['mean_margin']:.3f} (n={s['eval']['n']})")
        typer.echo(line)
        typer.echo(f"metrics: {out / 'metrics.jsonl'}; summary: {out / 'summary.json'}")
