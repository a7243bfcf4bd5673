import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal
from torch.distributions import kl_divergence as torch_kl

from vaesweep.training.losses import kl_divergence, reconstruction_loss, vae_loss


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=generator)
    logits = torch.randn(4, 1, 28, 28, generator=generator) * 3
    mu = torch.randn(4, 3, generator=generator)
    logvar = torch.randn(4, 3, generator=generator)
    return x, logits, mu, logvar


def test_mse_is_sum_of_squares_per_sample_then_batch_mean(batch):
    x, logits, _, _ = batch
    expected = sum(((torch.sigmoid(logits[i]) - x[i]) ** 2).sum() for i in range(4)) / 4
    assert reconstruction_loss(logits, x, "mse").item() == pytest.approx(expected.item(), rel=1e-5)


def test_mse_of_a_hand_computed_pair():
    x = torch.zeros(2, 1, 28, 28)
    logits = torch.zeros(2, 1, 28, 28)  # sigmoid(0) = 0.5 everywhere
    assert reconstruction_loss(logits, x, "mse").item() == pytest.approx(784 * 0.25)


def test_bce_equals_bernoulli_negative_log_likelihood(batch):
    x, logits, _, _ = batch
    # Continuous x in [0, 1]: the same formula as for binary x, without the support check.
    nll = -Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1).mean()
    assert reconstruction_loss(logits, x, "bce").item() == pytest.approx(nll.item(), rel=1e-5)


def test_bce_from_logits_stays_finite_where_probabilities_saturate():
    x = torch.tensor([[0.0, 1.0]]).reshape(1, 1, 1, 2)
    logits = torch.tensor([[200.0, -200.0]]).reshape(1, 1, 1, 2)
    loss = reconstruction_loss(logits, x, "bce")
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(400.0)


def test_kl_matches_closed_form_and_torch_distributions(batch):
    _, _, mu, logvar = batch
    sigma = torch.exp(0.5 * logvar)
    reference = torch_kl(Normal(mu, sigma), Normal(0.0, 1.0)).sum(1).mean()
    assert kl_divergence(mu, logvar).item() == pytest.approx(reference.item(), rel=1e-5)


def test_kl_is_zero_for_the_prior_and_known_for_a_shifted_mean():
    assert kl_divergence(torch.zeros(5, 2), torch.zeros(5, 2)).item() == 0.0
    # KL(N(1, 1) || N(0, 1)) = 0.5 per dimension.
    assert kl_divergence(torch.ones(5, 2), torch.zeros(5, 2)).item() == pytest.approx(1.0)


def test_total_weights_kl_by_beta(batch):
    x, logits, mu, logvar = batch
    half = vae_loss(logits, x, mu, logvar, "bce", beta=0.5)
    assert half.total.item() == pytest.approx((half.recon + 0.5 * half.kl).item())
    zero = vae_loss(logits, x, mu, logvar, "bce", beta=0.0)
    assert zero.total.item() == pytest.approx(zero.recon.item())


def test_unknown_likelihood_is_rejected(batch):
    x, logits, _, _ = batch
    with pytest.raises(ValueError):
        reconstruction_loss(logits, x, "poisson")


def test_the_bernoulli_nll_agrees_with_pytorch_s_to_fp32_rounding():
    """`bernoulli_nll` (log where PyTorch has log1p, for speed on a CPU) is as close to the exact
    value as `F.binary_cross_entropy_with_logits`, per pixel and summed per image, with its
    gradient, over ordinary and extreme logits."""
    import torch.nn.functional as F

    from vaesweep.training.losses import bernoulli_nll

    generator = torch.Generator().manual_seed(0)
    for scale in (1.0, 20.0, 100.0):
        logits = (torch.randn(64, 784, generator=generator) * scale).requires_grad_()
        x = torch.rand(64, 784, generator=generator)
        exact = F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="none")
        ours = bernoulli_nll(logits, x)
        theirs = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        assert ours.dtype == torch.float32
        for per in (lambda t: t, lambda t: t.sum(dim=1)):  # per pixel, per image
            error = (per(ours.double()) - per(exact)).abs().max()
            assert error <= 2 * (per(theirs.double()) - per(exact)).abs().max() + 1e-6
        (grad,) = torch.autograd.grad(ours.sum(), logits)
        (grad_theirs,) = torch.autograd.grad(theirs.sum(), logits)
        assert torch.allclose(grad, grad_theirs, atol=1e-6)
