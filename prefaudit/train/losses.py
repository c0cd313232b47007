"""Preference losses: small pure functions of per-pair log-probs -> (losses, chosen and rejected rewards).

Every loss takes a :class:`PairLogps` (summed response log-probs of the policy and the reference,
response lengths in tokens, and the sums over the responses' shared-length prefix for LD-DPO) and a
:class:`LossParams`, and returns a :class:`LossOutput` of per-pair tensors, so that results can be
split by pair (e.g. by audit flags). Select one by name from :data:`LOSSES`.

Notation: ``d_c = policy_chosen - ref_chosen``, ``d_r = policy_rejected - ref_rejected`` (log-ratios),
``z = beta * (d_c - d_r)``; rewards are ``beta * d_c`` and ``beta * d_r`` unless stated otherwise.

==========  =====================================================================================
name        per-pair loss
==========  =====================================================================================
sigmoid     DPO: ``-log σ(z)``; with ``label_smoothing`` ε: ``-(1-ε) log σ(z) - ε log σ(-z)`` (cDPO)
cdpo        the same function, named for its label smoothing (conservative DPO)
ipo         ``(d_c/|y_c| - d_r/|y_r| - 1/(2 beta))^2`` (length-averaged, as trl and the IPO authors)
hinge       ``max(0, 1 - z)`` (SLiC)
robust      rDPO with noise rate ε: ``((1-ε)(-log σ(z)) - ε(-log σ(-z))) / (1 - 2ε)``
simpo       reference-free: ``-log σ(beta (π_c/|y_c| - π_r/|y_r|) - gamma)``; rewards ``beta·π/|y|``
rdpo        R-DPO: ``-log σ(z + alpha (|y_c| - |y_r|))`` (Park et al. 2024, eq. 9)
ld-dpo      LD-DPO: log-probs ``shared + ld_alpha * (total - shared)`` over the responses' common
            length, then DPO (trl's ``ld_alpha``)
==========  =====================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class PairLogps:
    """Per-pair (1-D, one entry per pair) summed response log-probs and response lengths.

    ``*_shared`` are the sums over each response's first ``min(|y_c|, |y_r|)`` tokens (LD-DPO).
    Reference fields may be None for reference-free losses.
    """

    policy_chosen: Tensor
    policy_rejected: Tensor
    chosen_len: Tensor
    rejected_len: Tensor
    ref_chosen: Tensor | None = None
    ref_rejected: Tensor | None = None
    policy_chosen_shared: Tensor | None = None
    policy_rejected_shared: Tensor | None = None
    ref_chosen_shared: Tensor | None = None
    ref_rejected_shared: Tensor | None = None


@dataclass(frozen=True)
class LossParams:
    """Hyper-parameters; each loss reads only its own (see the module table)."""

    beta: float = 0.1
    label_smoothing: float = 0.0  # sigmoid / cdpo / simpo: probability that a label is flipped
    eps: float = 0.1  # robust: the label-noise rate ε in [0, 0.5)
    gamma: float = 0.5  # simpo: target reward margin
    alpha: float = 0.0  # rdpo: length regularisation strength
    ld_alpha: float = 0.5  # ld-dpo: weight of the tokens beyond the responses' common length


class LossOutput(NamedTuple):
    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor


LossFn = Callable[[PairLogps, LossParams], LossOutput]


def _ref(lp: PairLogps) -> tuple[Tensor, Tensor]:
    if lp.ref_chosen is None or lp.ref_rejected is None:
        raise ValueError("this loss needs reference log-probs")
    return lp.ref_chosen, lp.ref_rejected


def _log_ratios(lp: PairLogps) -> tuple[Tensor, Tensor]:
    ref_c, ref_r = _ref(lp)
    return lp.policy_chosen - ref_c, lp.policy_rejected - ref_r


def _smoothed_logistic(z: Tensor, eps: float) -> Tensor:
    """``-(1-ε) log σ(z) - ε log σ(-z)``; exactly ``-log σ(z)`` when ε = 0."""
    loss = -F.logsigmoid(z)
    return loss if eps == 0 else (1 - eps) * loss - eps * F.logsigmoid(-z)


def sigmoid(lp: PairLogps, p: LossParams) -> LossOutput:
    """DPO (Rafailov et al. 2023); with ``label_smoothing`` > 0, conservative DPO (cDPO)."""
    d_c, d_r = _log_ratios(lp)
    return LossOutput(_smoothed_logistic(p.beta * (d_c - d_r), p.label_smoothing), p.beta * d_c, p.beta * d_r)


def ipo(lp: PairLogps, p: LossParams) -> LossOutput:
    """IPO (Azar et al. 2023, eq. 17) on length-averaged log-ratios; ``beta`` is τ."""
    d_c, d_r = _log_ratios(lp)
    h = d_c / lp.chosen_len.clamp(min=1) - d_r / lp.rejected_len.clamp(min=1)
    return LossOutput((h - 1 / (2 * p.beta)) ** 2, p.beta * d_c, p.beta * d_r)


def hinge(lp: PairLogps, p: LossParams) -> LossOutput:
    """Hinge loss on the DPO logit (SLiC-style)."""
    d_c, d_r = _log_ratios(lp)
    return LossOutput(torch.relu(1 - p.beta * (d_c - d_r)), p.beta * d_c, p.beta * d_r)


def robust(lp: PairLogps, p: LossParams) -> LossOutput:
    """rDPO (Chowdhury et al. 2024): an unbiased DPO loss under label-noise rate ``eps``."""
    if not 0 <= p.eps < 0.5:
        raise ValueError("robust: eps must lie in [0, 0.5)")
    d_c, d_r = _log_ratios(lp)
    z = p.beta * (d_c - d_r)
    losses = ((1 - p.eps) * -F.logsigmoid(z) - p.eps * -F.logsigmoid(-z)) / (1 - 2 * p.eps)
    return LossOutput(losses, p.beta * d_c, p.beta * d_r)


def simpo(lp: PairLogps, p: LossParams) -> LossOutput:
    """SimPO (Meng et al. 2024): reference-free, length-normalised, with target margin ``gamma``."""
    avg_c = lp.policy_chosen / lp.chosen_len.clamp(min=1)
    avg_r = lp.policy_rejected / lp.rejected_len.clamp(min=1)
    z = p.beta * (avg_c - avg_r) - p.gamma
    return LossOutput(_smoothed_logistic(z, p.label_smoothing), p.beta * avg_c, p.beta * avg_r)


def rdpo(lp: PairLogps, p: LossParams) -> LossOutput:
    """R-DPO (Park et al. 2024): ``-log σ(z + alpha (|y_c| - |y_r|))``."""
    d_c, d_r = _log_ratios(lp)
    z = p.beta * (d_c - d_r) + p.alpha * (lp.chosen_len - lp.rejected_len)
    return LossOutput(-F.logsigmoid(z), p.beta * d_c, p.beta * d_r)


def ld_dpo(lp: PairLogps, p: LossParams) -> LossOutput:
    """LD-DPO (Liu et al. 2024): down-weight the tokens beyond the shorter response's length by ``ld_alpha``."""
    shared = (lp.policy_chosen_shared, lp.policy_rejected_shared, lp.ref_chosen_shared, lp.ref_rejected_shared)
    if any(s is None for s in shared):
        raise ValueError("ld-dpo needs the shared-prefix log-probs")
    ref_c, ref_r = _ref(lp)
    pcs, prs, rcs, rrs = shared

    def mix(total: Tensor, head: Tensor) -> Tensor:
        return head + p.ld_alpha * (total - head)

    d_c = mix(lp.policy_chosen, pcs) - mix(ref_c, rcs)
    d_r = mix(lp.policy_rejected, prs) - mix(ref_r, rrs)
    return LossOutput(-F.logsigmoid(p.beta * (d_c - d_r)), p.beta * d_c, p.beta * d_r)


LOSSES: dict[str, LossFn] = {
    "sigmoid": sigmoid,
    "cdpo": sigmoid,
    "ipo": ipo,
    "hinge": hinge,
    "robust": robust,
    "simpo": simpo,
    "rdpo": rdpo,
    "ld-dpo": ld_dpo,
}

REFERENCE_FREE = frozenset({"simpo"})


def get_loss(name: str) -> LossFn:
    """The loss function registered under ``name`` (ValueError listing the names otherwise)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
