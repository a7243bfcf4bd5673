"""Which precision a run trains in, decided once per run (`decide`) and passed along as a
`Compute`: the study's setting, or for 'auto' the faster of fp32 and bf16 autocast on this device
for the study's network, measured in a few training steps; and for fp32 on a CPU, the library of
its `Linear` layers (`linear`), timed on those layers alone.

Measured, not assumed: bf16 autocast's speed depends on the device, the PyTorch build and the
threads a worker has. On the project's 2-core CPU with AVX-512 BF16 the mlp trained 1.8x faster
in bf16 with PyTorch 2.15.0 and 1.7x slower with 2.14.1 on another machine of its kind; with
2.14.1 here 1.36-1.40x faster on the one thread a worker of a 2-worker run has, but only
1.10-1.21x on two threads. On an H200 with PyTorch 2.11, 1.2-1.3x slower for both networks.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch

from vaesweep.training import linear
from vaesweep.training.device import (
    Compute,
    native_bf16,
    prepare_training,
    resolve_device,
    steps_per_second,
)
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import IMAGE_SHAPE, build_model
from vaesweep.training.train import make_optimizer

BF16_MARGIN = 1.1  # bf16 must be 10% faster to be chosen: fp32 is the exact one
LINEAR_MARGIN = 1.05  # oneDNN's Linear must be 5% faster: PyTorch's default is the reference
MEASURE_SECONDS = 0.25  # per round and precision (at least 3 steps after 3 to settle)
LINEAR_SECONDS = 0.05  # per round and Linear kernel: only the layers it changes are timed
MEASURE_ROUNDS = 3  # alternated, the best of each kept: a shared machine only ever slows a round


def decide(
    device: str,
    precision: str,
    arch: str = "mlp",
    batch_size: int = 128,
    kept: str | None = None,
    threads: int | None = None,
) -> Compute:
    """The run's device ('auto': CUDA when present), training precision and, for fp32 on a CPU,
    the faster library for its `Linear` layers (`linear.KERNELS`). `kept`: the precision 'auto'
    chose at the study's first run, which every later run keeps: one study compares trials of
    one precision. `threads`: the torch threads each worker will train with, at which 'auto' and
    the kernels are measured (None: as now)."""
    chosen = resolve_device(device)
    precisions, why = _precisions(chosen, precision, kept)
    kernel, kernel_why = "aten", ""
    if "fp32" in precisions:
        kernel, kernel_why = _fp32_kernel(arch, chosen, batch_size, threads)
    if len(precisions) > 1:
        rates = _measured_rates(arch, chosen, batch_size, threads, kernel)
        faster = "bf16" if rates["bf16"] >= BF16_MARGIN * rates["fp32"] else "fp32"
        why = (
            f"auto: {faster}; {arch} trains {rates['bf16'] / rates['fp32']:.2f}x as fast in "
            f"bf16 autocast as in fp32 {_where(chosen, threads)} (bf16 is chosen from "
            f"{BF16_MARGIN:.1f}x)"
        )
        precisions = [faster]
    if precisions[0] == "bf16":
        return Compute(chosen, "bf16", why=why)
    if kernel_why:
        why = f"{why}; {kernel_why}" if why else f"fp32: {kernel_why}"
    return Compute(chosen, "fp32", why=why, linear=kernel)


def _precisions(device: torch.device, precision: str, kept: str | None) -> tuple[list[str], str]:
    """The precisions to choose from, and why, where that is already decided."""
    if precision != "auto":
        return [precision], ""
    if kept is not None:
        why = f"auto: {kept}, as this study's first run chose (a study keeps one precision)"
        return [kept], why
    if not native_bf16(device):
        return ["fp32"], "auto: fp32, as this device has no native bf16"
    return ["fp32", "bf16"], ""


def _where(device: torch.device, threads: int | None) -> str:
    on = threads or torch.get_num_threads()
    return "here" if device.type == "cuda" else f"on {on} thread{'s' if on > 1 else ''}"


@functools.cache  # once a process: the processor does not change
def _fp32_kernel(
    arch: str, device: torch.device, batch_size: int, threads: int | None
) -> tuple[str, str]:
    """The faster library for the network's fp32 Linear layers, and why (empty where there is
    no choice), from their own forward and backward passes: the rest of a step is the same."""
    if linear.kernels_for(device, "fp32") == ["aten"]:
        return "aten", ""
    model = build_model(arch, 2)
    rates = dict.fromkeys(linear.KERNELS, 0.0)
    with _torch_threads(threads):
        for _ in range(MEASURE_ROUNDS):
            for name in rates:
                rate = _layers_per_second(model, batch_size, name, LINEAR_SECONDS)
                rates[name] = max(rates[name], rate)
    ratio = rates["onednn"] / rates["aten"]
    chosen = "onednn" if ratio >= LINEAR_MARGIN else "aten"
    name = {"onednn": "oneDNN", "aten": "PyTorch's default"}[chosen]
    return chosen, (
        f"Linear layers in {name}, whose forward and backward passes run {ratio:.2f}x as fast "
        f"in oneDNN as in PyTorch's default {_where(device, threads)} (oneDNN is chosen from "
        f"{LINEAR_MARGIN:.2f}x)"
    )


def _layers_per_second(model: torch.nn.Module, batch_size: int, name: str, seconds: float) -> float:
    """How often a forward and backward pass of every `Linear` layer of `model`, each on a
    random batch of its input size, runs per second in kernel `name` (on a CPU, fp32)."""
    layers = [m for m in model.modules() if isinstance(m, linear.Linear)]
    inputs = [torch.randn(batch_size, m.in_features, requires_grad=True) for m in layers]
    grads = [torch.randn(batch_size, m.out_features) for m in layers]

    def step() -> None:
        with linear.kernel(name):
            for layer, x, grad in zip(layers, inputs, grads, strict=True):
                layer(x).backward(grad)

    return steps_per_second(step, torch.device("cpu"), seconds)


def _measured_rates(
    arch: str, device: torch.device, batch_size: int, threads: int | None, kernel: str
) -> dict[str, float]:
    """Each precision's best samples/s over MEASURE_ROUNDS alternated rounds, on `threads`
    (fp32 with its Linear `kernel`)."""
    channels_last = build_model(arch, 2).channels_last
    rates = {"fp32": 0.0, "bf16": 0.0}
    with _torch_threads(threads):
        for _ in range(MEASURE_ROUNDS):
            for name in rates:
                rate = training_throughput(
                    arch, name, channels_last, device, MEASURE_SECONDS, batch_size, kernel
                )
                rates[name] = max(rates[name], rate)
    return rates


@contextmanager
def _torch_threads(threads: int | None):
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def training_throughput(
    arch: str,
    precision: str,
    channels_last: bool,
    device: torch.device,
    seconds: float,
    batch_size: int = 128,
    kernel: str = "aten",
) -> float:
    """Samples per second of full training steps (forward, loss, backward, Adam), in the
    process settings training has, with `kernel`'s fp32 Linear layers."""
    prepare_training(device)
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(arch, 2).to(device, memory_format=layout)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    optimizer = make_optimizer(model, lr=1e-3)
    x = torch.rand(batch_size, *IMAGE_SHAPE, device=device).contiguous(memory_format=layout)
    compute = Compute(device, precision, linear=kernel)

    def step() -> None:
        with compute.autocast():
            logits, mu, logvar = model(x)
        loss = vae_loss(logits, x, mu, logvar, "bce", beta=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()

    return steps_per_second(step, device, seconds) * batch_size
