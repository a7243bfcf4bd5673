"""The final evaluation's memory is bounded by the network's activations, not by how many images
or importance samples it is asked for: measured as the peak resident memory of a fresh process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from vaesweep.training.model import PASS_BYTES, build_model, images_per_pass

# What a pass may add on top of PASS_BYTES (allocator slack, the evaluation's own arrays).
SLACK_BYTES = 400 * 2**20

PEAK = textwrap.dedent(
    """
    import resource, sys
    import torch
    from vaesweep.spec.config import TrainConfig
    from vaesweep.training.data import Splits
    from vaesweep.training.device import Compute
    from vaesweep.training.metrics import evaluate
    from vaesweep.training.model import build_model

    torch.set_num_threads(2)
    arch = sys.argv[1]
    # Enough images and samples that one pass of them all would hold gigabytes (the likelihood
    # once decoded 20,000 samples at once: 8 GB for one conv activation).
    config = TrainConfig(
        arch=arch, iwae_samples=50, nll_val_images=40, nll_test_images=40, ssim_images=50
    )
    g = torch.Generator().manual_seed(0)
    images = lambda n: torch.rand(n, 1, 28, 28, generator=g)
    labels = lambda n: torch.arange(n) % 10
    splits = Splits(images(200), labels(200), images(300), labels(300), images(300), labels(300))
    model = build_model(arch, config.latent_dim, seed=0)
    model.decode(model.encode(images(2))[0])  # the first pass's one-off allocations
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = peak()
    evaluate(model, splits, config, Compute(torch.device("cpu"), "fp32"))
    print(before, peak())
    """
)


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_the_evaluation_s_peak_memory_is_bounded_by_its_passes(arch):
    run = subprocess.run(
        [sys.executable, "-c", PEAK, arch], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    before, after = map(int, run.stdout.split())
    assert after - before < PASS_BYTES + SLACK_BYTES, f"{(after - before) / 2**20:.0f} MB more"
    assert after < 2 * 2**30  # the whole process, data and model included


def test_a_wide_network_takes_fewer_images_a_pass():
    x = torch.rand(1, 1, 28, 28)
    conv, mlp = (images_per_pass(build_model(arch, 2), x) for arch in ("conv", "mlp"))
    assert conv < 100 < mlp  # the conv net's 128-channel maps: about 3 MB an image
