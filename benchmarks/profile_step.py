"""A profiler table of training steps, per network: where a step's time goes on the device
(benchmarks/gpu_check.sh runs it). Run: python benchmarks/profile_step.py [cuda|cpu] [aten|onednn]
(the second: the library of fp32 Linear layers on a CPU, `vaesweep.training.linear`)."""

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from vaesweep.training import linear
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import build_model
from vaesweep.training.train import make_optimizer

WARMUP, PROFILED, BATCH = 5, 20, 128


def profile_steps(arch: str, device: torch.device, kernel: str = "aten") -> str:
    model = build_model(arch, 2).to(device)
    optimizer = make_optimizer(model, 1e-3)
    x = torch.rand(BATCH, 1, 28, 28, device=device)

    def step() -> None:
        with linear.kernel(kernel):
            logits, mu, logvar = model(x)
        vae_loss(logits, x, mu, logvar, "bce", 1.0).total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(WARMUP):
        step()
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
        torch.cuda.synchronize()
    with profile(activities=activities) as profiler:
        for _ in range(PROFILED):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=key, row_limit=15)


if __name__ == "__main__":
    device = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cuda")
    kernel = sys.argv[2] if len(sys.argv) > 2 else "aten"
    for arch in ("mlp", "conv"):
        print(f"== {arch}: {PROFILED} steps of batch {BATCH} on {device}, Linear in {kernel}")
        print(profile_steps(arch, device, kernel))
