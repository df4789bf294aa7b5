"""The correlation loss's divergences against hand computations (paper Eqs. 2, 8, 9)."""

from __future__ import annotations

import math

import pytest
import torch

from tumorseg.trainers.correlation_loss import correlation_loss, divergence, log_distribution

# Two distributions over three positions, written out by hand.
P = [0.7, 0.2, 0.1]
Q = [0.2, 0.5, 0.3]


def _logits(probabilities: list[float]) -> torch.Tensor:
    """``(1, 1, 3)`` features whose spatial softmax (temperature 1) is ``probabilities``."""
    return torch.tensor([[[math.log(p) for p in probabilities]]])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("kl", sum(p * math.log(p / q) for p, q in zip(P, Q, strict=True))),
        ("jeffreys", sum((p - q) * (math.log(p) - math.log(q)) for p, q in zip(P, Q, strict=True))),
        (
            "hellinger",
            2 * sum((math.sqrt(p) - math.sqrt(q)) ** 2 for p, q in zip(P, Q, strict=True)),
        ),
    ],
)
def test_divergences_match_the_formulas(kind: str, expected: float) -> None:
    log_p, dim = log_distribution(_logits(P))
    log_q, _ = log_distribution(_logits(Q))
    assert dim == 2
    value = divergence(log_p, log_q, dim, kind)  # type: ignore[arg-type]
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_identical_features_have_no_divergence_and_kl_is_asymmetric() -> None:
    f = torch.randn(2, 4, 3, 3)
    for kind in ("kl", "jeffreys", "hellinger"):
        assert float(correlation_loss([f, f], [f, f], kind=kind)) == pytest.approx(0, abs=1e-6)  # type: ignore[arg-type]
    log_p, dim = log_distribution(_logits(P))
    log_q, _ = log_distribution(_logits(Q))
    assert float(divergence(log_p, log_q, dim)) != pytest.approx(
        float(divergence(log_q, log_p, dim))
    )
    # Jeffreys is the symmetrised KL.
    jeffreys = divergence(log_p, log_q, dim, "jeffreys")
    both = divergence(log_p, log_q, dim) + divergence(log_q, log_p, dim)
    assert float(jeffreys) == pytest.approx(float(both), rel=1e-5)


def test_spatial_axis_normalises_each_channel_over_positions_and_temperature_flattens() -> None:
    f = torch.randn(2, 3, 4, 5)
    log_p, dim = log_distribution(f, "spatial")
    assert log_p.shape == (2, 3, 20)
    torch.testing.assert_close(log_p.exp().sum(dim), torch.ones(2, 3))
    log_c, dim_c = log_distribution(f, "channel")
    torch.testing.assert_close(log_c.exp().sum(dim_c), torch.ones(2, 20))
    hot, _ = log_distribution(f, "spatial", temperature=100.0)
    assert float(hot.exp().max()) < float(log_p.exp().max())  # flatter at high temperature
    with pytest.raises(ValueError, match="temperature"):
        log_distribution(f, temperature=0)


def test_pairs_compare_each_estimate_with_the_next_modality() -> None:
    f0, f1 = _logits(P), _logits(Q)
    g0, g1 = _logits(Q), _logits(P)  # g0 estimates f1 exactly, g1 estimates f0 exactly
    assert float(correlation_loss([f0, f1], [g0, g1])) == pytest.approx(0, abs=1e-6)
    swapped = correlation_loss([f0, f1], [g1, g0])
    expected = sum(p * math.log(p / q) for p, q in zip(P, Q, strict=True))
    reverse = sum(q * math.log(q / p) for p, q in zip(P, Q, strict=True))
    assert float(swapped) == pytest.approx((expected + reverse) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="two or more"):
        correlation_loss([f0], [g0])


def test_loss_is_float32_and_differentiable_in_half_precision() -> None:
    f = torch.randn(1, 2, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    g = torch.randn(1, 2, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    loss = correlation_loss([f, g], [g, f])
    assert loss.dtype == torch.float32
    loss.backward()
    assert f.grad is not None
    assert torch.isfinite(f.grad.float()).all()
