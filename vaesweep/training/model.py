"""The VAE (encode, reparameterize, decode) and its architectures, chosen by name."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from vaesweep.spec.config import ARCHITECTURES
from vaesweep.training.linear import Linear

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]


class VAE(nn.Module):
    """Gaussian encoder q(z|x) = N(mu, diag(exp(logvar))) and a decoder giving per-pixel logits.

    sigmoid(logits) is the Bernoulli mean (BCE) or the Gaussian mean (MSE), as the notebook's
    final sigmoid layer.
    """

    def __init__(
        self,
        encoder: nn.Module,
        features: int,
        decoder: nn.Module,
        latent_dim: int,
        channels_last: bool = False,
    ):
        super().__init__()
        # Convolutions run faster on CPU and GPU with channels-last tensors (measured: `bench`).
        self.channels_last = channels_last
        self.encoder = encoder
        self.to_mu = Linear(features, latent_dim)
        self.to_logvar = Linear(features, latent_dim)
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.init_layer: Callable[[nn.Module], None] = _torch_init  # the architecture's scheme

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I), so gradients flow through mu and logvar. With a
        `generator`, eps is drawn on the generator's device (a CPU one draws the same noise for
        every device)."""
        where = generator.device if generator is not None else mu.device
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=where).to(mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor) -> Tensor:
        """Logits of shape (N, 1, 28, 28)."""
        return self.decoder(z)

    def forward(self, x: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Logits, mu and logvar; `eps` is the noise to use, drawn here when not given (a
        population passes each member's own, as `vmap` draws none)."""
        mu, logvar = self.encode(x)
        if eps is None:
            return self.decode(self.reparameterize(mu, logvar)), mu, logvar
        return self.decode(mu + torch.exp(0.5 * logvar) * eps.to(mu.dtype)), mu, logvar

    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction with z = mu, as pixel intensities in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x)[0]))


class KerasStridedConvTranspose2d(nn.ConvTranspose2d):
    """Keras's 'same' transposed convolution with stride 2 and a 3x3 kernel (14 -> 28): the top
    left 28 x 28 of the full 29 x 29 output, where PyTorch's `padding=1, output_padding=1` would
    keep the bottom right. A zero row and column before the input shift the output by 2, so
    `padding=2, output_padding=1` keep exactly Keras's pixels (equal to the cropped full output
    bit for bit), computed at 28 x 28 directly: the layer's step took 43 ms, against 66 ms for
    the full output and its crop (batch 128, 2 threads, BENCHMARKS.md)."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__(channels_in, channels_out, 3, stride=2, padding=2, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]  # no output_size
        return super().forward(nn.functional.pad(x, (1, 0, 1, 0)))


LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def _torch_init(layer: nn.Module) -> None:
    assert isinstance(layer, LAYERS)
    layer.reset_parameters()


def _keras_init(layer: nn.Module) -> None:
    """Keras's initialisation: Glorot-uniform weights, zero biases (fans as Keras computes
    them; for transposed convolutions PyTorch swaps them, which the uniform bound ignores)."""
    assert isinstance(layer, LAYERS) and layer.bias is not None
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)


def initialise(model: VAE, seed: int) -> None:
    """Every layer from its own generator, keyed by the seed and the layer's name, so models of
    one seed start from the same weights in each layer whose shape agrees, even where other
    layers differ (another latent size changes only the layers that touch the latent)."""
    for name, module in model.named_modules():
        if isinstance(module, LAYERS):
            digest = hashlib.sha256(f"{seed}|{name}".encode()).digest()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int.from_bytes(digest[:8], "big") >> 1)
                model.init_layer(module)


def conv_vae(latent_dim: int) -> VAE:
    """The reference notebook's network, layer for layer, initialised as Keras does. Keras's
    'same' padding of a stride-2 convolution pads only the bottom and right (28 + 1 -> 14)."""
    encoder = nn.Sequential(
        nn.Conv2d(1, 128, 5, padding=2),
        nn.ReLU(),
        nn.ZeroPad2d((0, 1, 0, 1)),
        nn.Conv2d(128, 64, 3, stride=2),  # 28 -> 14
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        Linear(64 * 14 * 14, 32),
        nn.ReLU(),
    )
    decoder = nn.Sequential(
        Linear(latent_dim, 64 * 14 * 14),
        nn.ReLU(),
        nn.Unflatten(1, (64, 14, 14)),
        nn.ConvTranspose2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 64, 3, padding=1),
        nn.ReLU(),
        KerasStridedConvTranspose2d(64, 64),  # 14 -> 28
        nn.Identity(),  # keeps the later layers' names, which seed them and key stored weights
        nn.ReLU(),
        nn.ConvTranspose2d(64, 128, 5, padding=2),
        nn.ReLU(),
        nn.ConvTranspose2d(128, 1, 5, padding=2),
    )
    model = VAE(encoder, 32, decoder, latent_dim, channels_last=True)
    model.init_layer = _keras_init
    for module in model.modules():
        if isinstance(module, LAYERS):
            _keras_init(module)
    return model


def mlp_vae(latent_dim: int) -> VAE:
    """A fully connected VAE (784-512-256-z): about 100x fewer FLOPs than `conv`, for CPU sweeps."""
    encoder = nn.Sequential(
        nn.Flatten(),
        Linear(IMAGE_PIXELS, 512),
        nn.ReLU(),
        Linear(512, 256),
        nn.ReLU(),
    )
    decoder = nn.Sequential(
        Linear(latent_dim, 256),
        nn.ReLU(),
        Linear(256, 512),
        nn.ReLU(),
        Linear(512, IMAGE_PIXELS),
        nn.Unflatten(1, IMAGE_SHAPE),
    )
    return VAE(encoder, 256, decoder, latent_dim)


# Activation memory one batched pass without gradients may hold (evaluation, validation): the
# images per pass follow from each network's own activations, so that a wide network's pass
# (the conv net makes about 3 MB of activations an image) stays as small as a narrow one's.
PASS_BYTES = 256 * 2**20


@torch.no_grad()
def activation_bytes(model: VAE, x: Tensor) -> int:
    """Bytes of fp32 activations one image of `x` makes in an encode and a decode: the sum of
    every layer's output, more than a pass without gradients holds at once. Measured once a
    model."""
    if (known := getattr(model, "_activation_bytes", None)) is not None:
        return known
    total = 0

    def count(module: nn.Module, inputs: object, output: Tensor) -> None:
        nonlocal total
        total += output.numel() * 4

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        model.decode(model.encode(x[:1].float())[0])
    finally:
        for hook in hooks:
            hook.remove()
    model._activation_bytes = total  # type: ignore[assignment]
    return total


# At most this many images a pass even where memory allows more: the validation noise is drawn a
# pass at a time, so a narrow network's passes (and stored values) stay as they always were.
MAX_IMAGES_PER_PASS = 1000


def images_per_pass(model: VAE, x: Tensor) -> int:
    """How many images of `x` (or decodes) a batched pass without gradients takes at a time."""
    return max(1, min(MAX_IMAGES_PER_PASS, PASS_BYTES // activation_bytes(model, x)))


BUILDERS: dict[str, Callable[[int], VAE]] = {"conv": conv_vae, "mlp": mlp_vae}
assert tuple(BUILDERS) == ARCHITECTURES, "one builder for each of config.ARCHITECTURES"


def build_model(arch: str, latent_dim: int, seed: int | None = None) -> VAE:
    """An architecture by name; with a `seed`, each layer initialised from it (`initialise`)."""
    model = BUILDERS[arch](latent_dim)
    if seed is not None:
        initialise(model, seed)
    return model
