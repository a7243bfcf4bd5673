import pytest
import torch

from vaesweep.spec.config import ARCHITECTURES
from vaesweep.training.model import VAE, build_model

# Parameter count of the notebook's Keras model, worked out layer by layer: encoder
# 3328 + 73792 + 36928 + 36928 + 401440 + 66 + 66; decoder 37632 + 3 * 36928 + 204928 + 3201.
KERAS_SEED_PARAMETERS = 552_548 + 356_545


def test_conv_architecture_has_the_notebooks_parameter_count():
    model = build_model("conv", latent_dim=2)
    assert sum(p.numel() for p in model.parameters()) == KERAS_SEED_PARAMETERS


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("latent_dim", [2, 7])
def test_shapes(arch, latent_dim):
    model = build_model(arch, latent_dim)
    x = torch.rand(3, 1, 28, 28)
    logits, mu, logvar = model(x)
    assert logits.shape == x.shape
    assert mu.shape == logvar.shape == (3, latent_dim)
    recon = model.reconstruct(x)
    assert recon.shape == x.shape and recon.min() >= 0 and recon.max() <= 1


def test_reconstruction_with_z_equal_mu_is_deterministic():
    model = build_model("mlp", 2).eval()
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(model.reconstruct(x), model.reconstruct(x))
    mu, _ = model.encode(x)
    assert torch.allclose(model.reconstruct(x), torch.sigmoid(model.decode(mu)))


def test_reparameterize_has_the_posterior_mean_and_variance():
    mu = torch.full((200_000, 1), 2.0)
    logvar = torch.full((200_000, 1), torch.log(torch.tensor(0.25)).item())
    z = VAE.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(2.0, abs=0.01)
    assert z.var().item() == pytest.approx(0.25, rel=0.02)


def test_gradients_flow_through_the_sample_to_mu_and_logvar():
    mu = torch.zeros(4, 2, requires_grad=True)
    logvar = torch.zeros(4, 2, requires_grad=True)
    VAE.reparameterize(mu, logvar).square().sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0
