"""The DPO training loop: one file, read top to bottom (no ``transformers.Trainer`` subclass).

``train(data, ...)`` does, in order:

1. set up: processes (DDP under ``torchrun`` / ``accelerate launch``: gloo on CPU, nccl on CUDA), device
   and precision (CUDA with bf16 autocast when present, float32 on CPU), seeds, output folder;
2. the model: the tiny preset built from the data, or a local Hugging Face folder;
3. the data: tokenized and truncated by :mod:`prefaudit.train.truncation` (the rule the truncation
   audit applies); pairs left with no response token are dropped and counted;
4. optional SFT warm-up on the chosen responses; the warmed model is both the reference and the start
   of the policy;
5. reference log-probs, computed once (length-sorted inference batches) for every pair the run will
   see and for the eval set, then cached — in memory and in checkpoints; no reference model stays
   in memory during training;
6. optional LoRA adapters (peft);
7. the loop: length-bucketed global batches split over processes and gradient-accumulation
   micro-batches, chosen and rejected rows in one forward, the loss from :mod:`losses`, clipping,
   AdamW, warmup then cosine / linear / constant schedule; a ``metrics.jsonl`` record per step and a
   checkpoint every ``save_every`` steps (``resume=True`` continues from it with the same metrics);
8. evaluation on the held-out set (implicit-reward preference accuracy, mean margin) and
   ``summary.json``.

``batch_size`` is the number of pairs per optimizer step over all processes; it is split into
``grad_accum`` micro-batches per process, so the arithmetic of a run does not depend on its layout.

``summary.json``: ``wall_s`` is the whole call (model, tokenization, reference pass, loop, eval);
``steps_per_s`` and ``tokens_per_s`` are over the optimisation loop, counting the tokens of the
sequences prompt + chosen and prompt + rejected (as trl counts them) even where the shared-prompt
forward runs a prompt once. Records in ``metrics.jsonl`` have ``kind`` ``"train"`` (one per step),
``"eval"`` (with ``eval_every``) or ``"sft"`` (warm-up steps).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.distributed as dist

from prefaudit.errors import ConfigError, InputError
from prefaudit.stats import mean_interval, wilson_interval
from prefaudit.train import presets
from prefaudit.train.batching import (
    batch_schedule,
    collate_pairs,
    collate_sequences,
    length_batches,
    packed_length,
)
from prefaudit.train.logps import ResponseLogps, batch_logps, select_device
from prefaudit.train.losses import LOSSES, REFERENCE_FREE, LossParams, PairLogps, get_loss
from prefaudit.train.truncation import TRUNCATION_MODES, TruncatedPair, prepare_pairs

SCHEDULES = ("cosine", "linear", "constant")
CHECKPOINT_DIR = "checkpoint"
TIMING_KEYS = frozenset({"tokens_per_s", "step_s", "elapsed_s"})


@dataclass
class TrainConfig:
    """Every option of a run (saved in ``summary.json`` and in checkpoints)."""

    model: str = "tiny"  # "tiny" or a local Hugging Face folder
    ref_model: str | None = None  # reference folder; default: the (warmed-up) initial policy
    loss: str = "sigmoid"
    beta: float = 0.1
    label_smoothing: float = 0.0
    eps: float = 0.1
    gamma: float = 0.5
    alpha: float = 0.0
    ld_alpha: float = 0.5
    batch_size: int = 8  # pairs per optimizer step, over all processes
    grad_accum: int = 1
    max_length: int = 256
    truncation: str = "keep_end_prompt"  # or "keep_start" (trl >= 1.0); see train/truncation.py
    max_prompt_length: int | None = None
    steps: int | None = None  # default: one epoch
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int | None = None  # default: 10% of the steps
    schedule: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 0
    bucket_batches: int = 64  # batches per length-sorting window (1 = plain random batches)
    share_prompt: bool = True  # run each prompt once for both responses (when the model allows it)
    ref_batch_size: int | None = None  # pairs per reference / eval forward (default: batch_size, 4x on GPU)
    save_every: int = 0  # checkpoint every N steps (0: never)
    eval_every: int = 0  # evaluate every N steps (0: only at the end)
    sft_steps: int = 0
    sft_lr: float | None = None
    lora_r: int = 0
    lora_alpha: int | None = None
    lora_targets: list[str] | None = None
    trust_remote_code: bool = False
    device: str | None = None
    precision: str = "auto"
    preset: dict[str, int] = field(default_factory=dict)  # tiny preset shape overrides
    save_model: bool = True

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss {self.loss}: expected one of {sorted(LOSSES)}")
        if self.truncation not in TRUNCATION_MODES:
            raise ConfigError(f"--truncation {self.truncation}: expected one of {TRUNCATION_MODES}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule {self.schedule}: expected one of {SCHEDULES}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_length < 2:
            raise ConfigError("batch_size and grad_accum must be >= 1 and max_length >= 2")
        if self.steps is not None and self.steps < 1:
            raise ConfigError("--steps must be at least 1")
        if self.loss == "robust" and not 0 <= self.eps < 0.5:
            raise ConfigError("--eps must lie in [0, 0.5) for the robust loss")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError("--label-smoothing must lie in [0, 0.5)")
        if self.ref_model is not None and self.sft_steps:
            raise ConfigError("give either --ref-model or --sft-steps (the warmed-up model is the reference)")

    def loss_params(self) -> LossParams:
        return LossParams(beta=self.beta, label_smoothing=self.label_smoothing, eps=self.eps, gamma=self.gamma,
                          alpha=self.alpha, ld_alpha=self.ld_alpha)


@dataclass
class TrainResult:
    """What a run leaves: the summary, the per-step metrics, per-pair eval results, the trained model."""

    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    eval_pairs: pl.DataFrame | None
    model: Any
    tokenizer: Any
    out: Path | None
    model_dir: Path | None


# ---- processes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    created: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_hint: str | None) -> Dist:
    """Join the process group that torchrun / accelerate launch describe in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    created = False
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_hint != "cpu"
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        created = True
    return Dist(rank, world, local, created)


def _all_sum(values: list[float], d: Dist, device: torch.device) -> list[float]:
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


# ---- the run -----------------------------------------------------------------------------------

def train(data: Any, eval_data: Any = None, *, out: str | Path | None = None, config: TrainConfig | None = None,
          resume: bool = False, progress: bool | None = None, **options: Any) -> TrainResult:
    """Train a policy with DPO (or a variant) on ``data`` (a PreferenceSet; ties are left out).

    ``options`` override :class:`TrainConfig` fields (``loss="ipo"``, ``steps=100``...). With ``out``,
    writes ``metrics.jsonl``, ``summary.json``, checkpoints and the trained model (``out/model``);
    ``resume=True`` continues the run saved in ``out/checkpoint``.
    """
    t_start = time.perf_counter()
    unknown = set(options) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown training options: {sorted(unknown)}")
    cfg = replace(config or TrainConfig(), **options)
    cfg.validate()
    d = init_distributed(cfg.device)
    device, amp = select_device(cfg.device, cfg.precision, d.local_rank)
    torch.manual_seed(cfg.seed)
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    progress = progress and d.main
    _quiet_transformers()
    if out is None and d.world > 1:
        raise ConfigError("a distributed run needs an output folder (--out)")
    tmp = tempfile.TemporaryDirectory(prefix="prefaudit-train-") if out is None else None
    out_dir = Path(out) if out is not None else Path(tmp.name)
    if d.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / CHECKPOINT_DIR
    checkpoint = _load_checkpoint(ckpt_dir) if resume else None

    # ---- 2-3. the model and the data ---------------------------------------------------------------------
    pairs_set = _trainable(data, "training data")
    eval_set = _trainable(eval_data, "eval data") if eval_data is not None else None
    model_dir = _model_folder(cfg, pairs_set, out_dir, d)
    model, tok = presets.load_model(model_dir, trust_remote_code=cfg.trust_remote_code)
    model.to(device)
    pad_id = tok.pad_token_id

    train_pairs, train_ids, dropped = _prepare(tok, pairs_set, cfg)
    if not train_pairs:
        raise InputError("no training pair keeps a response token after truncation; raise --max-length")
    eval_pairs, eval_ids, eval_dropped = _prepare(tok, eval_set, cfg) if eval_set is not None else ([], [], 0)
    lengths = [packed_length(p) for p in train_pairs]
    steps = cfg.steps or math.ceil(len(train_pairs) / cfg.batch_size)
    per_rank, rem = divmod(cfg.batch_size, d.world * cfg.grad_accum)
    if rem or per_rank < 1:
        raise ConfigError(f"batch_size {cfg.batch_size} must be a multiple of processes x grad_accum "
                          f"({d.world} x {cfg.grad_accum})")
    schedule = batch_schedule(lengths, cfg.batch_size, steps, cfg.seed, cfg.bucket_batches)
    fingerprint = _fingerprint(train_ids, cfg)
    if checkpoint is not None and checkpoint["fingerprint"] != fingerprint:
        raise ConfigError(f"--resume: {ckpt_dir} belongs to a run with other data or options")
    loss_fn, params = get_loss(cfg.loss), cfg.loss_params()
    needs_ref = cfg.loss not in REFERENCE_FREE
    ref_bs = cfg.ref_batch_size or (cfg.batch_size if device.type == "cpu" else 4 * cfg.batch_size)
    metrics: list[dict[str, Any]] = []
    metrics_path = out_dir / "metrics.jsonl"

    if checkpoint is None:
        # ---- 4. optional SFT warm-up: the warmed model is the reference and the policy's start ----
        if cfg.sft_steps:
            metrics += _sft_warmup(model, train_pairs, lengths, cfg, pad_id, device, amp, d, progress)
        # ---- 5. reference log-probs, once, for every pair the run will see -------------------
        ref_cache = torch.full((len(train_pairs), 4), float("nan"), dtype=torch.float64)
        eval_ref = torch.full((len(eval_pairs), 4), float("nan"), dtype=torch.float64)
        t_ref = time.perf_counter()
        if needs_ref:
            ref_source = model
            if cfg.ref_model is not None:
                ref_source, _ = presets.load_model(cfg.ref_model, trust_remote_code=cfg.trust_remote_code)
                ref_source.to(device)
            used = sorted({i for b in schedule for i in b})
            ref_module = ResponseLogps(ref_source, cfg.share_prompt)
            ref_cache[used] = _sequence_logps(ref_module, [train_pairs[i] for i in used], pad_id, device, amp,
                                              ref_bs, d, progress, "reference log-probs")
            if eval_pairs:
                eval_ref[:] = _sequence_logps(ref_module, eval_pairs, pad_id, device, amp, ref_bs, d, progress,
                                              "reference log-probs (eval)")
            del ref_module
            del ref_source
        ref_s = time.perf_counter() - t_ref
        start_step = 0
    else:
        ref_cache, eval_ref = checkpoint["ref_cache"], checkpoint["eval_ref"]
        ref_s, start_step = 0.0, int(checkpoint["step"])
        metrics = _read_metrics(metrics_path, start_step)

    # ---- 6. optional LoRA ------------------------------------------------------------------------
    if cfg.lora_r:
        model = _add_lora(model, cfg)
    policy = ResponseLogps(model, cfg.share_prompt)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(0.1 * steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.schedule, warmup, steps))
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng"])
    module = _wrap_ddp(policy, d, device)
    if d.main:
        _write_metrics(metrics_path, metrics)

    # ---- 7. the loop ----------------------------------------------------------------------------
    model.train()
    bar = _Progress(progress, "training", steps, start_step)
    t_loop, tokens_total = time.perf_counter(), 0
    for step in range(start_step, steps):
        t_step = time.perf_counter()
        local = schedule[step][d.rank * per_rank * cfg.grad_accum:(d.rank + 1) * per_rank * cfg.grad_accum]
        sums = np.zeros(8)  # loss, r_c, r_r, correct, logp_c, logp_r, pairs, tokens
        for k in range(cfg.grad_accum):
            idx = local[k * per_rank:(k + 1) * per_rank]
            batch = collate_pairs([train_pairs[i] for i in idx], pad_id)
            sync = contextlib.nullcontext() if d.world == 1 or k == cfg.grad_accum - 1 else module.no_sync()
            with sync:
                total, shared = batch_logps(module, batch, device, amp)
                lp = _pair_logps(total, shared, batch, ref_cache[idx] if needs_ref else None, device)
                res = loss_fn(lp, params)
                (res.losses.sum() * (d.world / cfg.batch_size)).backward()
            sums += _batch_sums(res, lp, batch.n_tokens)
        grad_norm = _clip(trainable, cfg.max_grad_norm)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        sums = np.asarray(_all_sum(sums.tolist(), d, device))
        tokens_total += int(sums[7])
        step_s = time.perf_counter() - t_step
        record = _step_record(step + 1, steps, len(train_pairs), cfg.batch_size, sums, grad_norm, lr, step_s,
                              time.perf_counter() - t_start)
        metrics.append(record)
        if d.main:
            _append_metrics(metrics_path, record)
        bar.update(record["loss"])
        if cfg.eval_every and eval_pairs and (step + 1) % cfg.eval_every == 0 and step + 1 < steps:
            ev, _ = _evaluate(policy, eval_pairs, eval_ids, eval_ref, loss_fn, params, needs_ref, pad_id, device,
                              amp, ref_bs, d)
            model.train()
            rec = {"kind": "eval", "step": step + 1, **{f"eval/{k}": v for k, v in ev.items()}}
            metrics.append(rec)
            if d.main:
                _append_metrics(metrics_path, rec)
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < steps and out is not None:
            _save_checkpoint(ckpt_dir, d, model, optimizer, scheduler, step + 1, ref_cache, eval_ref, fingerprint,
                             cfg)
    bar.close()
    loop_s = time.perf_counter() - t_loop

    # ---- 8. evaluation and summary --------------------------------------------------------------
    eval_summary, eval_frame = None, None
    if eval_pairs:
        eval_summary, eval_frame = _evaluate(policy, eval_pairs, eval_ids, eval_ref, loss_fn, params, needs_ref,
                                             pad_id, device, amp, ref_bs, d)
    model.eval()
    if cfg.lora_r:
        model = model.merge_and_unload()
    saved = None
    if out is not None and cfg.save_model and d.main:
        saved = out_dir / "model"
        model.save_pretrained(saved)
        tok.save_pretrained(saved)
    done = steps - start_step
    train_steps = [m for m in metrics if m.get("kind") == "train"]
    summary = {
        "steps": steps, "steps_run": done, "resumed_from": start_step if checkpoint is not None else None,
        "wall_s": time.perf_counter() - t_start, "loop_s": loop_s, "reference_s": ref_s,
        "steps_per_s": done / loop_s if loop_s > 0 else None,
        "tokens_per_s": tokens_total / loop_s if loop_s > 0 else None, "tokens": tokens_total,
        "final_loss": train_steps[-1]["loss"] if train_steps else None, "eval": eval_summary,
        "pairs": len(train_pairs), "pairs_dropped_no_response": dropped,
        "pairs_damaged_by_truncation": sum(p.damaged for p in train_pairs),
        "eval_pairs": len(eval_pairs), "eval_pairs_dropped_no_response": eval_dropped,
        "device": str(device), "autocast": None if amp is None else str(amp).replace("torch.", ""),
        "world_size": d.world, "model_source": str(model_dir), "config": asdict(cfg),
    }
    if d.main and out is not None:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if eval_frame is not None:
            eval_frame.write_parquet(out_dir / "eval_pairs.parquet")
        if ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
    if d.created:
        dist.destroy_process_group()
    if tmp is not None:
        tmp.cleanup()
    return TrainResult(summary, metrics, eval_frame, model, tok, None if out is None else out_dir, saved)


# ---- pieces of the run, in the order they are used ------------------------------------------------

def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _trainable(data: Any, what: str) -> Any:
    if not hasattr(data, "trainable"):
        raise ConfigError(f"{what} must be a PreferenceSet (see prefaudit.load)")
    return data.trainable()


def _model_folder(cfg: TrainConfig, data: Any, out_dir: Path, d: Dist) -> Path:
    """The tiny preset is built once, by the main process, into ``out/init_model``."""
    if cfg.model != "tiny":
        return presets.resolve_model(cfg.model, data, out_dir)
    folder = out_dir / "init_model"
    if d.main and not (folder / "config.json").is_file():
        presets.build_tiny(folder, presets.preset_texts(data), seed=cfg.seed, **cfg.preset)
    _barrier(d)
    return folder


def _prepare(tok: Any, data: Any, cfg: TrainConfig) -> tuple[list[TruncatedPair], list[str], int]:
    df = data.df
    prepared = prepare_pairs(tok, df["prompt"].to_list(), df["chosen"].to_list(), df["rejected"].to_list(),
                             cfg.max_length, cfg.truncation, cfg.max_prompt_length)
    keep = [i for i, p in enumerate(prepared) if not p.empty]
    ids = df["pair_id"].to_list()
    return [prepared[i] for i in keep], [ids[i] for i in keep], len(prepared) - len(keep)


def _fingerprint(pair_ids: list[str], cfg: TrainConfig) -> str:
    h = hashlib.sha256("\x1f".join(pair_ids).encode())
    h.update(json.dumps(asdict(cfg), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _sequence_logps(module: ResponseLogps, pairs: list[TruncatedPair], pad_id: int, device: torch.device,
                    amp: torch.dtype | None, batch_pairs: int, d: Dist, progress: bool,
                    label: str) -> torch.Tensor:
    """(n, 4) float64: chosen total, rejected total, chosen shared, rejected shared — no gradients.

    Pairs go through in length-sorted batches; with several processes each takes a share and the
    results are summed across processes.
    """
    model = module.model
    was_training = model.training
    model.eval()
    result = torch.zeros((len(pairs), 4), dtype=torch.float64)
    lengths = np.array([packed_length(p) for p in pairs])
    chunks = length_batches(lengths, range(len(pairs)), batch_pairs)[d.rank::d.world]
    bar = _Progress(progress, label, len(chunks))
    with torch.inference_mode():
        for chunk in chunks:
            batch = collate_pairs([pairs[i] for i in chunk], pad_id)
            total, shared = batch_logps(module, batch, device, amp)
            n = len(chunk)
            vals = torch.stack([total[:n], total[n:], shared[:n], shared[n:]], dim=1).double().cpu()
            result[chunk] = vals
            bar.update()
    bar.close()
    if d.world > 1:
        result = result.to(device)
        dist.all_reduce(result)
        result = result.cpu()
    model.train(was_training)
    return result


def _pair_logps(total: torch.Tensor, shared: torch.Tensor, batch: Any, ref: torch.Tensor | None,
                device: torch.device) -> PairLogps:
    n = total.shape[0] // 2
    lens = batch.response_len.to(device)
    kw: dict[str, Any] = {}
    if ref is not None:
        r = ref.to(device=device, dtype=total.dtype)
        kw = {"ref_chosen": r[:, 0], "ref_rejected": r[:, 1], "ref_chosen_shared": r[:, 2],
              "ref_rejected_shared": r[:, 3]}
    return PairLogps(policy_chosen=total[:n], policy_rejected=total[n:], chosen_len=lens[:n], rejected_len=lens[n:],
                     policy_chosen_shared=shared[:n], policy_rejected_shared=shared[n:], **kw)


def _batch_sums(res: Any, lp: PairLogps, n_tokens: int) -> np.ndarray:
    with torch.no_grad():
        rc, rr = res.chosen_rewards.detach().double(), res.rejected_rewards.detach().double()
        return np.array([float(res.losses.detach().double().sum()), float(rc.sum()), float(rr.sum()),
                         float((rc > rr).double().sum()), float(lp.policy_chosen.detach().double().sum()),
                         float(lp.policy_rejected.detach().double().sum()), float(rc.numel()), float(n_tokens)])


def _step_record(step: int, steps: int, n_pairs: int, batch_size: int, sums: np.ndarray, grad_norm: float,
                 lr: float, step_s: float, elapsed: float) -> dict[str, Any]:
    n = float(sums[6])
    sums = [float(x) for x in sums]
    return {
        "kind": "train", "step": step, "epoch": step * batch_size / n_pairs,
        "loss": sums[0] / n, "rewards/chosen": sums[1] / n, "rewards/rejected": sums[2] / n,
        "rewards/margins": (sums[1] - sums[2]) / n, "rewards/accuracies": sums[3] / n,
        "logps/chosen": sums[4] / n, "logps/rejected": sums[5] / n, "grad_norm": grad_norm, "lr": lr,
        "tokens": int(sums[7]), "tokens_per_s": sums[7] / step_s if step_s > 0 else None, "step_s": step_s,
        "elapsed_s": elapsed,
    }


def _clip(params: list[torch.Tensor], max_norm: float) -> float:
    """Clip the global gradient norm to ``max_norm`` (when > 0); return the norm before clipping."""
    if max_norm and max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    grads = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0


def _lr_lambda(schedule: str, warmup: int, steps: int):
    """Multiplier of the base learning rate at a step: linear warmup, then cosine / linear / constant."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, steps - warmup)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return f


def _wrap_ddp(module: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    if d.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def _add_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap the model with LoRA adapters (peft); only the adapters train."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - peft is an optional extra
        raise ConfigError("--lora-r needs peft: pip install 'prefaudit[lora]'") from e
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r, lora_dropout=0.0,
                      target_modules=cfg.lora_targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _sft_warmup(model: Any, pairs: list[TruncatedPair], lengths: list[int], cfg: TrainConfig, pad_id: int,
                device: torch.device, amp: torch.dtype | None, d: Dist, progress: bool) -> list[dict[str, Any]]:
    """Fine-tune on prompt -> chosen (token-mean NLL, prompt masked) for ``sft_steps`` steps, in place."""
    module = _wrap_ddp(ResponseLogps(model, share_prompt=False), d, device)  # chosen rows only
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.sft_lr or cfg.lr,
                            weight_decay=cfg.weight_decay)
    schedule = batch_schedule(lengths, cfg.batch_size, cfg.sft_steps, cfg.seed + 1, cfg.bucket_batches)
    per_rank = cfg.batch_size // d.world
    records = []
    model.train()
    bar = _Progress(progress, "SFT warm-up", cfg.sft_steps)
    for step, global_idx in enumerate(schedule):
        idx = global_idx[d.rank * per_rank:(d.rank + 1) * per_rank]
        batch = collate_sequences([pairs[i].prompt for i in idx], [pairs[i].chosen for i in idx], pad_id)
        total, _ = batch_logps(module, batch, device, amp)
        tokens = _all_sum([float(batch.response_len.sum())], d, device)[0]
        nll = -total.sum() * d.world / tokens
        nll.backward()
        grad_norm = _clip([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss = _all_sum([float(-total.detach().sum())], d, device)[0] / tokens
        records.append({"kind": "sft", "step": step + 1, "nll": loss, "grad_norm": grad_norm})
        bar.update(loss)
    bar.close()
    return records


def _evaluate(module: ResponseLogps, pairs: list[TruncatedPair], pair_ids: list[str], ref: torch.Tensor, loss_fn: Any,
              params: LossParams, needs_ref: bool, pad_id: int, device: torch.device, amp: torch.dtype | None,
              batch_pairs: int, d: Dist) -> tuple[dict[str, Any], pl.DataFrame]:
    """Implicit-reward preference accuracy and margin of the policy on held-out pairs (+ per-pair table)."""
    pol = _sequence_logps(module, pairs, pad_id, device, amp, batch_pairs, d, False, "eval")
    lens_c = torch.tensor([float(len(p.chosen)) for p in pairs], dtype=torch.float64)
    lens_r = torch.tensor([float(len(p.rejected)) for p in pairs], dtype=torch.float64)
    kw: dict[str, Any] = {}
    if needs_ref:
        kw = {"ref_chosen": ref[:, 0], "ref_rejected": ref[:, 1], "ref_chosen_shared": ref[:, 2],
              "ref_rejected_shared": ref[:, 3]}
    lp = PairLogps(policy_chosen=pol[:, 0], policy_rejected=pol[:, 1], chosen_len=lens_c, rejected_len=lens_r,
                   policy_chosen_shared=pol[:, 2], policy_rejected_shared=pol[:, 3], **kw)
    res = loss_fn(lp, params)
    margin = (res.chosen_rewards - res.rejected_rewards).numpy()
    correct = margin > 0
    frame = pl.DataFrame({"pair_id": pair_ids, "chosen_reward": res.chosen_rewards.numpy(),
                          "rejected_reward": res.rejected_rewards.numpy(), "margin": margin, "correct": correct,
                          "loss": res.losses.numpy(), "chosen_tokens": lens_c.numpy().astype(int),
                          "rejected_tokens": lens_r.numpy().astype(int)})
    n = len(pairs)
    ci = mean_interval(margin)
    summary = {"preference_accuracy": float(correct.mean()), "preference_accuracy_ci": wilson_interval(
        int(correct.sum()), n), "mean_margin": float(margin.mean()), "mean_margin_ci": ci,
        "loss": float(res.losses.mean()), "n": n}
    return summary, frame


# ---- checkpoints and metrics files ----------------------------------------------------------------

def _save_checkpoint(ckpt_dir: Path, d: Dist, model: Any, optimizer: Any, scheduler: Any, step: int,
                     ref_cache: torch.Tensor, eval_ref: torch.Tensor, fingerprint: str, cfg: TrainConfig) -> None:
    """Write the state atomically (temp folder, then rename): a kill never leaves half a checkpoint."""
    if d.main:
        tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "ref_cache": ref_cache,
                 "eval_ref": eval_ref, "fingerprint": fingerprint, "config": json.dumps(asdict(cfg), default=str)}
        torch.save(state, tmp / "state.pt")
        old = ckpt_dir.with_name(ckpt_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if ckpt_dir.exists():
            ckpt_dir.rename(old)
        tmp.rename(ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
    _barrier(d)


def _load_checkpoint(ckpt_dir: Path) -> dict[str, Any] | None:
    """The saved state (tensors and plain values only: loaded with ``weights_only=True``), or None."""
    for candidate in (ckpt_dir, ckpt_dir.with_name(ckpt_dir.name + ".old")):
        f = candidate / "state.pt"
        if f.is_file():
            return torch.load(f, map_location="cpu", weights_only=True)
    return None


def _read_metrics(path: Path, up_to_step: int) -> list[dict[str, Any]]:
    """Records of a killed run up to its checkpoint (SFT records and train/eval records <= step)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "sft" or r["step"] <= up_to_step]


def _write_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool, label: str, total: int, done: int = 0) -> None:
        self._bar = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._task = self._bar.add_task(label, total=total, completed=done)
            self._bar.start()

    def update(self, loss: float | None = None) -> None:
        if self._bar is not None:
            desc = None if loss is None else f"loss {loss:.4f}"
            self._bar.update(self._task, advance=1, **({"description": desc} if desc else {}))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
