"""Parity of the trainer's first step with trl (DPOTrainer; CPOTrainer for SimPO) and with the R-DPO paper.

Policy and reference are two tiny-preset models with different random weights (so rewards are not
zero), on one fixed batch where some pairs are truncated. trl is a test-only dependency.
"""

from __future__ import annotations

import math
import warnings

import polars as pl
import pytest
import torch

from prefaudit.data.preference_set import PreferenceSet
from prefaudit.train import build_tiny, prepare_pairs, train, train_tokenizer
from prefaudit.train.presets import preset_texts

pytest.importorskip("trl")

ROWS = [
    ("Human: What is the capital of France?\nAssistant:", " Paris is the capital of France.",
     " I think it is Lyon, but I am not sure at all."),
    ("Human: Say hi\nAssistant:", " Hi!", " Hello there, how can I help you today? I am a friendly assistant."),
    ("Human: Count to five please, slowly and with commas between the numbers\nAssistant:",
     " one, two, three, four, five", " 1 2 3"),
    ("Human: Tell me a long story about a dragon who lived in a cave by the sea and ate fish\nAssistant:",
     " Once upon a time a dragon lived by the sea. It ate fish every day and slept in a cave.", " No."),
    ("Human: 2+2?\nAssistant:", " 4", " 5"),
    ("Human: Name a colour\nAssistant:", " Blue is a colour that many people like",
     " Blue is a colour that many people dislike"),
]
MAX_LENGTH = 40
BETA = 0.1
FIELDS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    df = pl.DataFrame([{"pair_id": f"p{i}", "prompt": p, "chosen": c, "rejected": r}
                       for i, (p, c, r) in enumerate(ROWS)])
    data = PreferenceSet(df)
    tok = train_tokenizer(preset_texts(data), vocab_size=400, min_frequency=1)
    policy = build_tiny(root / "policy", [], tokenizer=tok, seed=0, n_layer=2, n_embd=64, n_head=2)
    ref = build_tiny(root / "ref", [], tokenizer=tok, seed=1, n_layer=2, n_embd=64, n_head=2)
    prepared = prepare_pairs(tok, df["prompt"].to_list(), df["chosen"].to_list(), df["rejected"].to_list(),
                             MAX_LENGTH, "keep_start")
    assert sum(p.truncated for p in prepared) >= 1 and not any(p.empty for p in prepared)
    return data, policy, ref, root


def ours(setup, loss, **kw):
    data, policy, ref, _ = setup
    ref_kw = {} if loss == "simpo" else {"ref_model": str(ref)}
    res = train(data, data, model=str(policy), loss=loss, steps=1, batch_size=len(ROWS), lr=0.0,
                max_length=MAX_LENGTH, truncation="keep_start", save_model=False, **ref_kw, **kw)
    return res.metrics[0], res.eval_pairs


def _records():
    return [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in ROWS]


def trl_dpo(setup, loss_type, **kw):
    """trl's first-step batch metrics and grad norm, and its per-pair rewards (batches of one pair)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    _, policy, ref, root = setup
    cfg = DPOConfig(output_dir=str(root / "trl"), loss_type=[loss_type], beta=BETA, max_length=MAX_LENGTH,
                    bf16=False, report_to=[], use_cpu=True, per_device_train_batch_size=len(ROWS),
                    gradient_checkpointing=False, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(policy),
                             ref_model=AutoModelForCausalLM.from_pretrained(ref), args=cfg,
                             train_dataset=Dataset.from_list(_records()),
                             processing_class=AutoTokenizer.from_pretrained(policy))
    ds = trainer.train_dataset
    assert len(ds) == len(ROWS)
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, trainer.data_collator([ds[i] for i in range(len(ds))]))
    loss.backward()
    grad_norm = float(torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters()
                                                     if p.grad is not None]))
    batch = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    batch["loss"] = float(loss.detach())
    per_pair = []
    with torch.no_grad():
        for i in range(len(ds)):
            trainer._metrics["train"].clear()
            li = trainer.compute_loss(trainer.model, trainer.data_collator([ds[i]]))
            m = trainer._metrics["train"]
            per_pair.append((float(li), m["rewards/chosen"][-1], m["rewards/rejected"][-1]))
    return batch, grad_norm, per_pair


def _check(batch_ours, pairs_ours, batch_trl, per_pair_trl, fields=FIELDS, tol=1e-5):
    for key in fields:
        assert batch_ours[key] == pytest.approx(batch_trl[key], abs=tol, rel=tol), key
    got = pairs_ours.select("loss", "chosen_reward", "rejected_reward").rows()
    for (lo, rc, rr), (lt, tc, tr) in zip(got, per_pair_trl, strict=True):
        assert lo == pytest.approx(lt, abs=tol, rel=tol)
        assert rc == pytest.approx(tc, abs=tol, rel=tol)
        assert rr == pytest.approx(tr, abs=tol, rel=tol)


@pytest.mark.parametrize(("loss", "trl_type", "ours_kw", "trl_kw"), [
    ("sigmoid", "sigmoid", {}, {}),
    ("ipo", "ipo", {}, {}),
    ("hinge", "hinge", {}, {}),
    ("robust", "robust", {"eps": 0.1}, {"label_smoothing": 0.1}),
    ("ld-dpo", "sigmoid", {"ld_alpha": 0.3}, {"ld_alpha": 0.3}),
])
def test_first_step_matches_trl_dpo(setup, loss, trl_type, ours_kw, trl_kw):
    batch_ours, pairs_ours = ours(setup, loss, beta=BETA, **ours_kw)
    batch_trl, grad_norm_trl, per_pair_trl = trl_dpo(setup, trl_type, **trl_kw)
    assert abs(batch_ours["rewards/margins"]) > 1e-3  # policy != reference: a non-trivial comparison
    # trl logs LD-DPO's length-weighted log-probs as logps/*; prefaudit logs the plain sequence log-probs
    fields = FIELDS[:4] if loss == "ld-dpo" else FIELDS
    _check(batch_ours, pairs_ours, batch_trl, per_pair_trl, fields)
    assert batch_ours["grad_norm"] == pytest.approx(grad_norm_trl, rel=1e-4)


def test_simpo_matches_trl_cpo(setup):
    cpo = pytest.importorskip("trl.experimental.cpo")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, policy, _, root = setup
    beta, gamma = 2.0, 0.5
    batch_ours, pairs_ours = ours(setup, "simpo", beta=beta, gamma=gamma)
    cfg = cpo.CPOConfig(output_dir=str(root / "cpo"), loss_type="simpo", cpo_alpha=0.0, simpo_gamma=gamma,
                        beta=beta, max_length=MAX_LENGTH, bf16=False, report_to=[], use_cpu=True,
                        per_device_train_batch_size=len(ROWS), gradient_checkpointing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = cpo.CPOTrainer(model=AutoModelForCausalLM.from_pretrained(policy), args=cfg,
                                 train_dataset=Dataset.from_list(_records()),
                                 processing_class=AutoTokenizer.from_pretrained(policy))
    ds = trainer.train_dataset
    trainer.model.train()
    with torch.no_grad():
        loss, met = trainer.get_batch_loss_metrics(trainer.model, trainer.data_collator([ds[i] for i in range(6)]))
        batch_trl = {"loss": float(loss), "rewards/chosen": met["rewards/chosen"],
                     "rewards/rejected": met["rewards/rejected"], "rewards/margins": met["rewards/margins"]}
        per_pair = []
        for i in range(len(ds)):
            li, m = trainer.get_batch_loss_metrics(trainer.model, trainer.data_collator([ds[i]]))
            per_pair.append((float(li), m["rewards/chosen"], m["rewards/rejected"]))
    for key in batch_trl:
        assert batch_ours[key] == pytest.approx(batch_trl[key], abs=1e-5, rel=1e-5), key
    got = pairs_ours.select("loss", "chosen_reward", "rejected_reward").rows()
    for ours_row, trl_row in zip(got, per_pair, strict=True):
        assert ours_row == pytest.approx(trl_row, abs=1e-5)


def _independent_logps(folder, tok, prompt, response):
    """Summed response log-probs by a plain full-logits forward (no prefaudit code)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    p = tok(prompt)["input_ids"]
    full = tok(prompt + response + tok.eos_token)["input_ids"][:MAX_LENGTH]
    assert full[:len(p)] == p
    with torch.no_grad():
        logp = model(torch.tensor([full])).logits[0].log_softmax(-1)
    return sum(float(logp[t - 1, full[t]]) for t in range(len(p), len(full))), len(full) - len(p)


def test_rdpo_matches_paper_formula(setup):
    from transformers import AutoTokenizer

    _, policy, ref, _ = setup
    alpha = 0.05
    batch_ours, pairs_ours = ours(setup, "rdpo", beta=BETA, alpha=alpha)
    tok = AutoTokenizer.from_pretrained(policy)
    expected = []
    for p, c, r in ROWS:
        pc, nc = _independent_logps(policy, tok, p, c)
        pr, nr = _independent_logps(policy, tok, p, r)
        rc, _ = _independent_logps(ref, tok, p, c)
        rr, _ = _independent_logps(ref, tok, p, r)
        # Park et al. 2024, eq. 9: -log σ(β log πθ(yw)/πref(yw) - β log πθ(yl)/πref(yl) + α|yw| - α|yl|)
        z = BETA * (pc - rc) - BETA * (pr - rr) + alpha * (nc - nr)
        expected.append(-math.log(1 / (1 + math.exp(-z))))
    assert pairs_ours["loss"].to_list() == pytest.approx(expected, abs=1e-5)
    assert batch_ours["loss"] == pytest.approx(sum(expected) / len(expected), abs=1e-5)
    # the length term matters here: plain DPO gives other losses
    assert pairs_ours["loss"].to_list() != pytest.approx(ours(setup, "sigmoid", beta=BETA)[1]["loss"].to_list(),
                                                         abs=1e-4)
