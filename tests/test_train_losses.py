"""The loss functions against their papers' formulas, computed independently with math."""

from __future__ import annotations

import math

import pytest
import torch

from prefaudit.train.losses import LOSSES, REFERENCE_FREE, LossParams, PairLogps, get_loss

PC, PR, RC, RR = [-10.0, -20.0, -5.0], [-12.0, -15.0, -9.0], [-11.0, -19.0, -6.0], [-11.5, -16.0, -8.0]
LC, LR = [4.0, 10.0, 3.0], [6.0, 7.0, 5.0]
SC, SR, RSC, RSR = [-9.0, -14.0, -4.0], [-8.0, -11.0, -6.5], [-9.5, -13.0, -4.5], [-8.5, -12.0, -6.0]


def lp() -> PairLogps:
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    return PairLogps(t(PC), t(PR), t(LC), t(LR), t(RC), t(RR), t(SC), t(SR), t(RSC), t(RSR))


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_registry_names_and_unknown():
    assert set(LOSSES) == {"sigmoid", "cdpo", "ipo", "hinge", "robust", "simpo", "rdpo", "ld-dpo"}
    assert set(REFERENCE_FREE) == {"simpo"}
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("dpo++")


def test_policy_equal_reference_gives_ln2():
    x = torch.tensor([-3.0, -7.5])
    same = PairLogps(x, x + 1, torch.ones(2), torch.ones(2), x, x + 1)
    out = LOSSES["sigmoid"](same, LossParams(beta=0.3))
    assert torch.allclose(out.losses, torch.full((2,), math.log(2)))
    assert torch.all(out.chosen_rewards == 0) and torch.all(out.rejected_rewards == 0)


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_cdpo_hinge_robust_rdpo_formulas(beta):
    lps = lp()
    for i in range(3):
        d = (PC[i] - RC[i]) - (PR[i] - RR[i])
        z = beta * d
        expected = {
            "sigmoid": -logsig(z),
            "cdpo": -(1 - 0.2) * logsig(z) - 0.2 * logsig(-z),  # Mitchell 2023 (cDPO)
            "hinge": max(0.0, 1 - z),
            "robust": ((1 - 0.1) * -logsig(z) - 0.1 * -logsig(-z)) / (1 - 0.2),  # Chowdhury et al. 2024
            "rdpo": -logsig(z + 0.05 * (LC[i] - LR[i])),  # Park et al. 2024
        }
        for name, want in expected.items():
            p = LossParams(beta=beta, label_smoothing=0.2 if name == "cdpo" else 0.0, eps=0.1, alpha=0.05)
            out = LOSSES[name](lps, p)
            assert float(out.losses[i]) == pytest.approx(want, rel=1e-12), name
            assert float(out.chosen_rewards[i]) == pytest.approx(beta * (PC[i] - RC[i]))
            assert float(out.rejected_rewards[i]) == pytest.approx(beta * (PR[i] - RR[i]))


def test_ipo_is_length_averaged_squared_loss():
    out = LOSSES["ipo"](lp(), LossParams(beta=0.25))
    for i in range(3):
        h = (PC[i] - RC[i]) / LC[i] - (PR[i] - RR[i]) / LR[i]
        assert float(out.losses[i]) == pytest.approx((h - 1 / (2 * 0.25)) ** 2)


def test_simpo_is_reference_free_and_length_normalised():
    p = LossParams(beta=2.0, gamma=0.5)
    full = LOSSES["simpo"](lp(), p)
    no_ref = LOSSES["simpo"](PairLogps(*(torch.tensor(v, dtype=torch.float64) for v in (PC, PR, LC, LR))), p)
    assert torch.equal(full.losses, no_ref.losses)
    for i in range(3):
        z = 2.0 * (PC[i] / LC[i] - PR[i] / LR[i]) - 0.5  # Meng et al. 2024, eq. 6
        assert float(full.losses[i]) == pytest.approx(-logsig(z))
        assert float(full.chosen_rewards[i]) == pytest.approx(2.0 * PC[i] / LC[i])


def test_ld_dpo_weights_the_tail_and_reduces_to_dpo():
    beta, a = 0.1, 0.3
    out = LOSSES["ld-dpo"](lp(), LossParams(beta=beta, ld_alpha=a))
    for i in range(3):
        mix = lambda total, head: head + a * (total - head)  # noqa: E731
        z = beta * ((mix(PC[i], SC[i]) - mix(RC[i], RSC[i])) - (mix(PR[i], SR[i]) - mix(RR[i], RSR[i])))
        assert float(out.losses[i]) == pytest.approx(-logsig(z))
    one = LOSSES["ld-dpo"](lp(), LossParams(beta=beta, ld_alpha=1.0))
    assert torch.allclose(one.losses, LOSSES["sigmoid"](lp(), LossParams(beta=beta)).losses)


def test_robust_with_no_noise_is_dpo_and_rejects_bad_eps():
    p = LossParams(beta=0.1, eps=0.0)
    assert torch.allclose(LOSSES["robust"](lp(), p).losses, LOSSES["sigmoid"](lp(), p).losses)
    with pytest.raises(ValueError):
        LOSSES["robust"](lp(), LossParams(eps=0.5))


def test_reference_losses_need_reference():
    bare = PairLogps(*(torch.tensor(v) for v in (PC, PR, LC, LR)))
    with pytest.raises(ValueError, match="reference"):
        LOSSES["sigmoid"](bare, LossParams())
