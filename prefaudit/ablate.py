"""Ablations: what cleaning buys — DPO on raw vs cleaned vs controls, with confidence intervals.

``ablate(data, eval, out=DIR, arms=..., seeds=3)`` trains the built-in DPO trainer once per
(arm, seed) and compares the arms on a held-out eval set that is never cleaned:

- **arms** (:data:`ARMS`, a mapping of names to builders): ``raw``; ``cleaned`` (a clean policy, the
  default one unless given); ``random_drop`` (the raw data less a seeded random sample of the same
  number of pairs the cleaning removed — separates "less data" from "cleaner data"); ``robust``
  (rDPO on the raw data with ε from the audit's ``noise.estimated_rate``); ``length_debiased`` (the
  raw data resampled so the chosen-longer rate is 0.5, or R-DPO with ``length_debias="rdpo"``);
  ``cleaned_length_debiased`` (the cleaned arm's pairs debiased the same way: both fixes at once; not
  in :data:`DEFAULT_ARMS`); and user subsets (``subsets={"mine": pair_ids}``: the raw pairs with those ids).
- **identical compute**: every arm of a seed starts from the same model folder (the tiny preset with
  that seed's random init, or ``model``; with ``sft_steps``, warmed up by :func:`prefaudit.train.sft`
  on every response, chosen and rejected alike, so labels do not enter), with the same steps, batch
  size and learning rate; the tiny preset's tokenizer is trained once on the raw data, so every arm
  shares it.
- **eval**: implicit-reward preference accuracy and mean margin per eval pair; with a gold scorer
  (``gold``, e.g. :func:`prefaudit.synth.gold_scores`), responses sampled from each trained policy
  for ``generate`` eval prompts are scored against the reference policy's samples (gold win rate,
  ties count one half) and their mean length in words is reported, with the share of samples that
  ran to ``max_new_tokens`` (a length measured at the cap says nothing) and the reference samples'
  own figures (``reference_generations``).
- **statistics**: per arm, the mean over seeds and a 95% CI from a bootstrap that resamples eval items
  (the same resample for every arm and seed: paired) and averages over seeds; paired differences of
  every arm against ``raw`` and against ``random_drop``.
- **resumable**: a finished (arm, seed) run leaves ``runs/<arm>/seed<k>/result.json`` and is not redone.

Without an eval set, one is split off by a documented rule (:func:`split_eval`): a seeded 10% of the
distinct prompts (all their pairs), never ties, and — with annotations — only pairs whose votes are
unanimous. Leakage between train and eval is measured by the hygiene analyzer
(``hygiene.eval_leakage_share``) and reported in ``ablation.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefaudit._callable import callable_module
from prefaudit.data.preference_set import PreferenceSet
from prefaudit.errors import ConfigError, InputError

GoldScorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]
DEFAULT_ARMS = ("raw", "cleaned", "random_drop", "robust", "length_debiased")
BASELINES = ("raw", "random_drop")
RESULT_FILE = "result.json"


@dataclass
class AblationConfig:
    """Options of an ablation (saved in ``ablation.json``); training options apply to every arm alike."""

    arms: tuple[str, ...] = DEFAULT_ARMS
    seeds: int = 3
    model: str = "tiny"
    preset: dict[str, int] = field(default_factory=dict)  # tiny preset shape overrides
    steps: int | None = None  # default: one epoch of the raw arm, for every arm
    batch_size: int = 8
    max_length: int = 256
    lr: float = 1e-4
    beta: float = 0.1
    loss: str = "sigmoid"
    sft_steps: int = 0  # label-free SFT warm-up of the shared starting model (on every response)
    sft_lr: float | None = None
    policy: Any = None  # clean policy (path, dict) for the cleaned arm; None: the default policy
    length_debias: str = "resample"  # "resample" or "rdpo"
    rdpo_alpha: float = 0.01
    robust_eps: float | None = None  # None: the audit's noise.estimated_rate
    generate: int = 0  # eval prompts to sample responses for (needs a gold scorer)
    max_new_tokens: int = 256  # keep well above the responses' typical length: eos, not the cap, ends samples
    eval_share: float = 0.1
    embeddings: bool = True
    n_boot: int = 1000
    seed: int = 0  # base seed: run k uses seed + k

    def validate(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS and not a.startswith("subset:")]
        if unknown:
            raise ConfigError(f"unknown arm(s) {unknown}: expected {sorted(ARMS)} or subset:NAME")
        if self.seeds < 1:
            raise ConfigError("--seeds must be at least 1")
        if self.length_debias not in ("resample", "rdpo"):
            raise ConfigError("length_debias must be 'resample' or 'rdpo'")
        if not 0 < self.eval_share < 1:
            raise ConfigError("eval_share must lie in (0, 1)")


@dataclass
class ArmPlan:
    """What one arm trains on, and how: its pairs (per seed) and training-option overrides."""

    name: str
    pairs: Callable[[int], PreferenceSet]
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class AblationContext:
    """Shared inputs of the arm builders; the cleaning is run once, on first use."""

    data: PreferenceSet
    eval: PreferenceSet
    config: AblationConfig
    subsets: Mapping[str, Sequence[str]]
    _clean: Any = None

    @property
    def raw(self) -> PreferenceSet:
        return self.data.trainable()

    def cleaned(self) -> Any:
        if self._clean is None:
            from prefaudit.clean import clean

            self._clean = clean(self.data, self.config.policy, eval=self.eval, seed=self.config.seed,
                                embeddings=self.config.embeddings)
        return self._clean


# ---- the arms --------------------------------------------------------------------------------------

def _arm_raw(ctx: AblationContext) -> ArmPlan:
    raw = ctx.raw
    return ArmPlan("raw", lambda seed: raw, note="every trainable pair (ties left out)")


def _arm_cleaned(ctx: AblationContext) -> ArmPlan:
    kept = ctx.cleaned().data.trainable()
    return ArmPlan("cleaned", lambda seed: kept, note="the clean policy's kept pairs")


def _arm_random_drop(ctx: AblationContext) -> ArmPlan:
    raw, n_keep = ctx.raw, len(ctx.cleaned().data.trainable())
    return ArmPlan("random_drop", lambda seed: raw.sample(n_keep, seed=seed + 7919),
                   note=f"a seeded random {n_keep} of the raw pairs (the cleaned arm's size)")


def _arm_robust(ctx: AblationContext) -> ArmPlan:
    eps = ctx.config.robust_eps
    source = "given"
    if eps is None:
        aud = ctx.cleaned().audit
        m = aud.metrics.get("noise.estimated_rate") if aud is not None else None
        if m is None or m.value is None:
            raise InputError("the robust arm needs noise.estimated_rate from the audit (none was estimated)")
        eps, source = m.value, "noise.estimated_rate"
    eps = float(min(max(eps, 0.0), 0.45))
    raw = ctx.raw
    return ArmPlan("robust", lambda seed: raw, {"loss": "robust", "eps": eps},
                   note=f"rDPO on the raw pairs, eps={eps:.3f} ({source})")


def _length_resampled(pset: PreferenceSet) -> Callable[[int], PreferenceSet]:
    """Per seed, ``pset`` resampled so its chosen-longer rate (characters) is 0.5 within 0.02
    (:func:`prefaudit.clean.debias_resample`; pairs of equal length are kept)."""
    from prefaudit.clean import debias_resample

    df = pset.df
    longer = (df["chosen"].str.len_chars() > df["rejected"].str.len_chars()).to_numpy()
    equal = (df["chosen"].str.len_chars() == df["rejected"].str.len_chars()).to_numpy()
    side = np.where(equal, -1, longer.astype(int))

    def pairs(seed: int) -> PreferenceSet:
        drop = debias_resample(side, np.ones(len(side), dtype=bool), 0.02, seed)
        return pset.drop(df["pair_id"].gather(drop))

    return pairs


def _debiased(name: str, pset: PreferenceSet, what: str, ctx: AblationContext) -> ArmPlan:
    """``pset`` length-debiased the configured way: resampled (per seed) or trained with R-DPO."""
    if ctx.config.length_debias == "rdpo":
        return ArmPlan(name, lambda seed: pset, {"loss": "rdpo", "alpha": ctx.config.rdpo_alpha},
                       note=f"R-DPO on {what}, alpha={ctx.config.rdpo_alpha}")
    return ArmPlan(name, _length_resampled(pset), note=f"{what} resampled to a chosen-longer rate of 0.5")


def _arm_length_debiased(ctx: AblationContext) -> ArmPlan:
    return _debiased("length_debiased", ctx.raw, "the raw pairs", ctx)


def _arm_cleaned_length_debiased(ctx: AblationContext) -> ArmPlan:
    return _debiased("cleaned_length_debiased", ctx.cleaned().data.trainable(), "the clean policy's kept pairs", ctx)


def _arm_subset(ctx: AblationContext, name: str) -> ArmPlan:
    if name not in ctx.subsets:
        raise ConfigError(f"arm subset:{name}: no subset of that name was given")
    ids = set(map(str, ctx.subsets[name]))
    unknown = ids - set(ctx.data.pair_ids)
    if unknown:
        raise InputError(f"subset {name!r}: {len(unknown)} pair ids are not in the data, e.g. {sorted(unknown)[0]!r}")
    chosen = ctx.raw.select(ids)
    return ArmPlan(f"subset:{name}", lambda seed: chosen, note=f"user subset {name!r} ({len(chosen)} pairs)")


ARMS: dict[str, Callable[[AblationContext], ArmPlan]] = {
    "raw": _arm_raw,
    "cleaned": _arm_cleaned,
    "random_drop": _arm_random_drop,
    "robust": _arm_robust,
    "length_debiased": _arm_length_debiased,
    "cleaned_length_debiased": _arm_cleaned_length_debiased,
}


def build_arm(name: str, ctx: AblationContext) -> ArmPlan:
    if name.startswith("subset:"):
        return _arm_subset(ctx, name.split(":", 1)[1])
    return ARMS[name](ctx)


# ---- the eval set ----------------------------------------------------------------------------------

def split_eval(data: PreferenceSet, share: float = 0.1, seed: int = 0) -> tuple[PreferenceSet, PreferenceSet]:
    """Split off a held-out eval set: a seeded ``share`` of the distinct prompts, with all their pairs.

    Ties never go to eval; with annotations only unanimous pairs do (the others stay in training).
    Splitting by prompt keeps a prompt from straddling train and eval.
    """
    prompts = data.df["prompt"].unique().sort()
    rng = np.random.default_rng(seed)
    n_eval = max(1, round(share * len(prompts)))
    held = prompts.gather(np.sort(rng.choice(len(prompts), size=n_eval, replace=False)))
    in_eval = pl.col("prompt").is_in(held.implode()) & ~pl.col("tie")
    if data.annotations is not None:
        cons = data.annotations.consensus()
        unanimous = cons.filter(pl.max_horizontal("votes_a", "votes_b", "votes_tie") == pl.col("n_votes"))
        in_eval = in_eval & pl.col("pair_id").is_in(unanimous["pair_id"].implode())
    eval_ids = data.df.filter(in_eval)["pair_id"]
    return data.drop(eval_ids), data.select(eval_ids)


def eval_leakage_share(train: PreferenceSet, eval_set: PreferenceSet) -> dict[str, Any]:
    """The hygiene analyzer's train/eval leakage check (exact and near-duplicate prompts)."""
    from prefaudit.analyzers.base import AuditContext
    from prefaudit.analyzers.hygiene import HygieneAnalyzer

    res = HygieneAnalyzer().run(train, AuditContext(eval=eval_set))
    m = res.metrics.get("hygiene.eval_leakage_share")
    return m.to_dict() if m is not None else {"value": None, "note": "not measured"}


# ---- statistics ------------------------------------------------------------------------------------

def paired_bootstrap(values: Mapping[str, np.ndarray], baselines: Iterable[str] = BASELINES, *,
                     n_boot: int = 1000, seed: int = 0) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Means with CIs per arm, and paired differences, from per-(seed, eval item) values.

    ``values[arm]`` has shape (n_seeds, n_items): a metric of each eval item under each seed's run.
    Each bootstrap resample draws eval items with replacement (the same items for every arm and
    seed), averages over items then over seeds. Returns ({arm: {mean, ci}}, [{arm, baseline, value, ci}]).
    """
    arms = list(values)
    n_items = next(iter(values.values())).shape[1]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_items, size=(n_boot, n_items))
    boot = {}
    for arm in arms:
        v = np.asarray(values[arm], dtype=float)
        boot[arm] = np.nanmean(np.nanmean(v[:, idx], axis=2), axis=0)  # (n_boot,)

    def ci(samples: np.ndarray) -> list[float] | None:
        s = samples[np.isfinite(samples)]
        return None if s.size < n_boot / 2 else [float(np.quantile(s, 0.025)), float(np.quantile(s, 0.975))]

    per_arm = {a: {"mean": float(np.nanmean(values[a])), "ci": ci(boot[a])} for a in arms}
    diffs = []
    for base in baselines:
        if base not in values:
            continue
        for arm in arms:
            if arm == base:
                continue
            point = float(np.nanmean(np.nanmean(values[arm], axis=1) - np.nanmean(values[base], axis=1)))
            diffs.append({"arm": arm, "baseline": base, "value": point, "ci": ci(boot[arm] - boot[base])})
    return per_arm, diffs


# ---- running ---------------------------------------------------------------------------------------

@dataclass
class AblationResult:
    """``ablation.json`` as a dict, plus where it was written."""

    summary: dict[str, Any]
    out: Path

    @property
    def differences(self) -> pl.DataFrame:
        rows = [{**d, "ci_lo": d["ci"][0] if d["ci"] else None, "ci_hi": d["ci"][1] if d["ci"] else None}
                for d in self.summary["differences"]]
        return pl.DataFrame(rows).drop("ci") if rows else pl.DataFrame()

    def difference(self, arm: str, baseline: str, metric: str) -> dict[str, Any]:
        for d in self.summary["differences"]:
            if (d["arm"], d["baseline"], d["metric"]) == (arm, baseline, metric):
                return d
        raise KeyError((arm, baseline, metric))

    def _repr_html_(self) -> str:
        from prefaudit.reprs import table_html

        rows = [(d["arm"], d["baseline"], d["metric"], f"{d['value']:+.4f}",
                 "" if not d["ci"] else f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]")
                for d in self.summary["differences"]]
        return "<div><b>Ablation</b>" + table_html(("arm", "baseline", "metric", "difference", "95% CI"), rows) \
            + "</div>"


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _start_model(data: PreferenceSet, eval_set: PreferenceSet, cfg: AblationConfig, seed: int, out: Path) -> Path:
    """The folder every arm of ``seed`` starts from (and whose samples are the reference generations)."""
    from prefaudit.train import presets
    from prefaudit.train.warmup import sft

    folder = out / "models" / f"seed{seed}"
    done = folder / "start"
    if (done / "config.json").is_file():
        return done
    if cfg.model == "tiny":
        tok_dir = out / "models" / "tokenizer"
        if not (tok_dir / "tokenizer.json").is_file():
            texts = presets.preset_texts(data) + presets.preset_texts(eval_set)
            preset = presets.TinyPreset(**{k: v for k, v in cfg.preset.items() if k in ("vocab_size", "min_frequency")})
            presets.train_tokenizer(texts, preset.vocab_size, preset.min_frequency).save_pretrained(tok_dir)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tok_dir)
        init = presets.build_tiny(folder / "init", (), seed=seed, tokenizer=tok, **cfg.preset)
    else:
        init = Path(cfg.model)
    if not cfg.sft_steps:
        return init
    # Label-free SFT warm-up: every response (chosen and rejected alike) is a target, fair to every arm.
    res = sft(data, model=str(init), responses="both", steps=cfg.sft_steps, lr=cfg.sft_lr or cfg.lr,
              batch_size=cfg.batch_size, max_length=cfg.max_length, seed=seed, out=folder / "sft_run")
    res.model_dir.rename(done)
    return done


def _generations(model: Any, tokenizer: Any, prompts: list[str], cfg: AblationConfig, seed: int,
                 gold: GoldScorer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold scores, lengths in words, and whether each sample ran to ``max_new_tokens`` (its text
    re-tokenizes to within 2 tokens of the cap: it stopped without eos, so its length says little)."""
    from prefaudit.train import generate

    texts = generate(model, prompts, tokenizer=tokenizer, max_new_tokens=cfg.max_new_tokens, seed=seed)
    capped = np.array([len(ids) >= cfg.max_new_tokens - 2 for ids in tokenizer(texts)["input_ids"]], dtype=float)
    return (np.asarray(gold(prompts, texts), dtype=float), np.array([len(t.split()) for t in texts], dtype=float),
            capped)


def _run_one(arm: ArmPlan, seed: int, start: Path, eval_set: PreferenceSet, cfg: AblationConfig, steps: int,
             run_dir: Path, gen_prompts: list[str], ref_gold: np.ndarray | None, gold: GoldScorer | None,
             progress: bool) -> dict[str, Any]:
    from prefaudit.train import train

    pairs = arm.pairs(seed)
    options = {"loss": cfg.loss, "beta": cfg.beta, "lr": cfg.lr, "batch_size": cfg.batch_size,
               "max_length": cfg.max_length, "steps": steps, **arm.options}
    fp = _fingerprint({"pairs": sorted(pairs.pair_ids), "options": options, "start": str(start), "seed": seed,
                       "gen": len(gen_prompts), "eval": sorted(eval_set.pair_ids)})
    done = run_dir / RESULT_FILE
    if done.is_file():
        prev = json.loads(done.read_text())
        if prev.get("fingerprint") == fp:
            return prev
    res = train(pairs, eval_set, model=str(start), seed=seed, out=run_dir, save_model=False, progress=progress,
                **options)
    ev = res.eval_pairs.sort("pair_id")
    record: dict[str, Any] = {
        "arm": arm.name, "seed": seed, "fingerprint": fp, "n_pairs": len(pairs), "options": options,
        "final_loss": res.summary["final_loss"], "wall_s": res.summary["wall_s"],
        "preference_accuracy": res.summary["eval"]["preference_accuracy"],
        "mean_margin": res.summary["eval"]["mean_margin"],
        "items": {"pair_id": ev["pair_id"].to_list(), "correct": ev["correct"].cast(pl.Float64).to_list(),
                  "margin": ev["margin"].to_list()},
    }
    if gold is not None and gen_prompts:
        g, lengths, capped = _generations(res.model, res.tokenizer, gen_prompts, cfg, seed, gold)
        win = np.where(g > ref_gold, 1.0, np.where(g == ref_gold, 0.5, 0.0))
        record.update(gold_win_rate=float(win.mean()), mean_length=float(lengths.mean()),
                      mean_gold=float(g.mean()), capped_share=float(capped.mean()),
                      gen_items={"gold_win": win.tolist(), "length": lengths.tolist(), "gold": g.tolist()})
    run_dir.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(record))
    return record


def ablate(data: Any, eval: Any = None, *, out: str | Path, annotations: Any = None,  # noqa: A002
           subsets: Mapping[str, Sequence[str]] | None = None, gold: GoldScorer | None = None,
           config: AblationConfig | None = None, progress: bool = False, **options: Any) -> AblationResult:
    """Train every arm for every seed, evaluate on the held-out set, and write ``out/ablation.json``.

    ``data``/``eval``: PreferenceSets or anything :func:`prefaudit.load` reads (``eval`` None: split
    off by :func:`split_eval`). ``options`` override :class:`AblationConfig` fields.
    """
    from prefaudit.data.load import load

    unknown = set(options) - set(AblationConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown ablation options: {sorted(unknown)}")
    cfg = AblationConfig(**{**asdict(config or AblationConfig()), **options})
    cfg.arms = tuple(cfg.arms)
    cfg.validate()
    data = data if isinstance(data, PreferenceSet) else load(data, annotations=annotations)
    split_rule = None
    if eval is None:
        data, eval_set = split_eval(data, cfg.eval_share, cfg.seed)
        split_rule = f"seeded {cfg.eval_share:.0%} of distinct prompts (seed {cfg.seed}); no ties; unanimous only"
    else:
        eval_set = eval if isinstance(eval, PreferenceSet) else load(eval)
    eval_set = eval_set.trainable()
    if len(eval_set) == 0:
        raise InputError("the eval set holds no pair with a preference")
    if cfg.generate and gold is None:
        raise ConfigError("generation-based evaluation needs a gold scorer (gold=...; --gold synth)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = AblationContext(data, eval_set, cfg, subsets or {})
    plans = [build_arm(name, ctx) for name in cfg.arms]
    steps = cfg.steps or math.ceil(len(ctx.raw) / cfg.batch_size)
    gen_prompts = eval_set.df["prompt"].unique(maintain_order=True).head(cfg.generate).to_list() if cfg.generate \
        else []

    runs: dict[str, list[dict[str, Any]]] = {p.name: [] for p in plans}
    reference: list[dict[str, Any]] = []  # the starting model's samples, per seed
    for k in range(cfg.seeds):
        seed = cfg.seed + k
        start = _start_model(data, eval_set, cfg, seed, out)
        ref_gold = None
        if gen_prompts:
            from prefaudit.train import presets

            ref_model, ref_tok = presets.load_model(start)
            ref_gold, ref_len, ref_capped = _generations(ref_model, ref_tok, gen_prompts, cfg, seed, gold)
            reference.append({"seed": seed, "mean_length": float(ref_len.mean()), "mean_gold": float(ref_gold.mean()),
                              "capped_share": float(ref_capped.mean())})
        for plan in plans:
            run_dir = out / "runs" / plan.name.replace(":", "_") / f"seed{seed}"
            runs[plan.name].append(_run_one(plan, seed, start, eval_set, cfg, steps, run_dir, gen_prompts,
                                            ref_gold, gold, progress))

    summary = _summarise(plans, runs, cfg, steps, eval_set, split_rule, ctx)
    if reference:
        summary["reference_generations"] = reference
    (out / "ablation.json").write_text(json.dumps(summary, indent=2))
    return AblationResult(summary, out)


def _summarise(plans: list[ArmPlan], runs: dict[str, list[dict[str, Any]]], cfg: AblationConfig, steps: int,
               eval_set: PreferenceSet, split_rule: str | None, ctx: AblationContext) -> dict[str, Any]:
    item_metrics = {"preference_accuracy": ("items", "correct"), "mean_margin": ("items", "margin"),
                    "gold_win_rate": ("gen_items", "gold_win"), "mean_length": ("gen_items", "length")}
    arms: dict[str, Any] = {}
    differences: list[dict[str, Any]] = []
    for metric, (block, key) in item_metrics.items():
        if not all(block in r for rs in runs.values() for r in rs):
            continue
        values = {a: np.array([r[block][key] for r in rs]) for a, rs in runs.items()}
        per_arm, diffs = paired_bootstrap(values, n_boot=cfg.n_boot, seed=cfg.seed)
        for a, stats in per_arm.items():
            arms.setdefault(a, {"mean": {}, "ci": {}})
            arms[a]["mean"][metric], arms[a]["ci"][metric] = stats["mean"], stats["ci"]
        differences += [{**d, "metric": metric} for d in diffs]
    for plan in plans:
        rs = runs[plan.name]
        arms[plan.name].update(
            n_pairs=int(np.mean([r["n_pairs"] for r in rs])), note=plan.note, options=plan.options,
            per_seed=[{k: r.get(k) for k in ("seed", "n_pairs", "preference_accuracy", "mean_margin",
                                             "gold_win_rate", "mean_length", "mean_gold", "capped_share", "final_loss",
                                             "wall_s")
                       if k in r} for r in rs])
    clean_info = None
    if ctx._clean is not None:
        c = ctx._clean
        clean_info = {"pairs_in": len(ctx.data), "kept": len(c.data), "removed": len(c.removed_ids),
                      "relabeled": len(c.relabeled_ids)}
    return {
        "schema_version": 1,
        "arms": arms,
        "differences": differences,
        "config": {**{k: v for k, v in asdict(cfg).items() if k != "policy"},
                   "policy": None if cfg.policy is None else str(cfg.policy), "steps": steps},
        "eval": {"n_pairs": len(eval_set), "split_rule": split_rule,
                 "leakage": eval_leakage_share(ctx.data, eval_set)},
        "cleaning": clean_info,
    }


callable_module(__name__, ablate)
