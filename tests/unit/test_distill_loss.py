"""The fused head loss's distilled rows against plain autograd (pure torch, tiny sizes)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from seal_agent.training.head_loss import HeadLoss  # noqa: E402


def _reference(hidden, weight, targets, teacher, soft):
    """Mean over rows: token cross-entropy, or KL(base || model) on the soft rows."""
    logq = torch.log_softmax(hidden @ weight.T, dim=1)
    logp = torch.log_softmax(teacher @ weight.T, dim=1)
    hard = -logq.gather(1, targets[:, None]).squeeze(1)
    kl = (logp.exp() * (logp - logq)).sum(1)
    return torch.where(soft, kl, hard).mean()


@pytest.mark.parametrize("n", [5, 300])  # one chunk, and several (HEAD_CHUNK = 128)
def test_distilled_rows_match_autograd(n):
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(50, 8, generator=gen)
    hidden = torch.randn(n, 8, generator=gen, requires_grad=True)
    teacher = torch.randn(n, 8, generator=gen)
    targets = torch.randint(0, 50, (n,), generator=gen)
    soft = torch.rand(n, generator=gen) < 0.5

    fused = HeadLoss.apply(hidden, weight, targets, torch.float32, None, teacher, soft)
    (grad_fused,) = torch.autograd.grad(fused, hidden)
    ref = _reference(hidden, weight, targets, teacher, soft)
    (grad_ref,) = torch.autograd.grad(ref, hidden)
    assert torch.allclose(fused, ref, atol=1e-5)
    assert torch.allclose(grad_fused, grad_ref, atol=1e-5)


def test_a_row_that_matches_the_base_costs_nothing():
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(50, 8, generator=gen)
    hidden = torch.randn(4, 8, generator=gen, requires_grad=True)
    soft = torch.ones(4, dtype=torch.bool)
    loss = HeadLoss.apply(hidden, weight, torch.zeros(4, dtype=torch.long), torch.float32, None,
                               hidden.detach().clone(), soft)
    (grad,) = torch.autograd.grad(loss, hidden)
    assert abs(float(loss.detach())) < 1e-5 and float(grad.abs().max()) < 1e-6


def test_without_soft_rows_the_loss_is_unchanged():
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(50, 8, generator=gen)
    hidden = torch.randn(6, 8, generator=gen)
    targets = torch.randint(0, 50, (6,), generator=gen)
    plain = HeadLoss.apply(hidden, weight, targets, torch.float32, None)
    none_soft = HeadLoss.apply(hidden, weight, targets, torch.float32, None, torch.zeros(6, 8),
                                    torch.zeros(6, dtype=torch.bool))
    assert torch.equal(plain, none_soft)
