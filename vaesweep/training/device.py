"""Where and in what precision torch computes: a `Compute`, decided once per run
(`precision.decide`) from the `--device` option and the study's `precision` setting, then passed
along to training, validation and evaluation."""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from vaesweep.errors import VaesweepError, shown
from vaesweep.training.linear import kernel
from vaesweep.training.model import VAE


@dataclass(frozen=True)
class Compute:
    """The run's decision: its device, the precision of training's forward passes, and the
    library of their fp32 `Linear` layers on a CPU."""

    device: torch.device
    precision: str  # "fp32" or "bf16" (bf16 autocast)
    why: str = ""  # how 'auto' was decided, for the run to say
    linear: str = "aten"  # `linear.KERNELS`: measured per run (`precision.decide`)

    @contextmanager
    def autocast(self) -> Iterator[None]:
        """Training's forward passes: bf16 autocast in bf16, and the run's `Linear` kernel."""
        enabled = self.precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled):
            with kernel(self.linear):
                yield

    @property
    def for_evaluation(self) -> Compute:
        """Evaluation is fp32 whatever training used, so the same weights give the same metrics
        on every machine."""
        return dataclasses.replace(
            self, precision="fp32", linear="aten", why="evaluation is always fp32"
        )


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaesweepError("--device cuda: no CUDA device is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise VaesweepError(f"--device must be auto, cpu or cuda; got {shown(name)}")
    return torch.device(name)


def visible_gpus(device: torch.device) -> int:
    """GPUs a CUDA run spreads its workers over: those CUDA_VISIBLE_DEVICES leaves (torch numbers
    only those); none for a CPU run."""
    return torch.cuda.device_count() if device.type == "cuda" else 0


def placed(compute: Compute, worker: int, gpus: int) -> Compute:
    """Worker `worker`'s Compute: on CUDA, GPU `worker mod gpus` of the visible ones, so a run's
    workers fill every GPU in turn; elsewhere the run's own."""
    if compute.device.type != "cuda" or gpus < 1:
        return compute
    return dataclasses.replace(compute, device=torch.device("cuda", worker % gpus))


CPU_AUTO_JOBS = 4  # the fastest split measured on this project's CPU machines (BENCHMARKS.md)


def auto_jobs(gpus: int, cores: int) -> int:
    """`--jobs auto`: one worker per visible GPU; on the CPU one single-threaded worker per core,
    at most CPU_AUTO_JOBS."""
    return max(1, min(gpus, cores)) if gpus else max(1, min(cores, CPU_AUTO_JOBS))


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bf16 natively (AVX-512 BF16 / AMX on CPU, Ampere+ on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a timing measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_per_second(step: Callable[[], None], device: torch.device, seconds: float) -> float:
    """How often `step` runs per second on `device`: for `seconds` and at least 3 times, after
    3 untimed runs (the allocator and kernel selection settle first)."""
    for _ in range(3):
        step()
    synchronize(device)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or steps < 3:
        step()
        steps += 1
    synchronize(device)
    return steps / (time.perf_counter() - started)


def prepare_training(device: torch.device) -> None:
    """Process-wide settings for training, set by each trainer before its first step."""
    # Adam's second moments and late-training gradients reach denormal floats, which CPUs
    # compute up to 100x slower: an mlp epoch grew from 2.3 s to 4.8 s by its third epoch here,
    # and stays at 2.4 s with them flushed to zero (no effect on GPUs or on the results' scale).
    torch.set_flush_denormal(True)
    if device.type == "cpu":
        keep_freed_memory()


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Have glibc's malloc reuse freed memory rather than hand it back to the system. A training
    step allocates and frees tensors of tens of MB (the conv net's activations: 51 MB a layer at
    batch 128), and glibc maps every allocation over 32 MB afresh, so each step paid the page
    faults of touching new memory again: the conv net trained 1.16x as fast with this (about 195
    to 224 samples/s on 2 threads, BENCHMARKS.md). The process keeps its peak memory, which
    training reaches every step anyway. False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def memory_format(model: VAE) -> torch.memory_format:
    return torch.channels_last if model.channels_last else torch.contiguous_format


def environment(device: torch.device) -> dict[str, str]:
    """What a trial's numbers also depend on (floating-point rounding differs between machines
    and library versions), recorded in its trial.json: the versions and the processor."""
    import platform
    from importlib.metadata import version

    from vaesweep import __version__

    if device.type == "cuda":
        processor = torch.cuda.get_device_name(device)
    else:
        processor = _cpu_model() or platform.processor() or platform.machine()
    return {
        "vaesweep": __version__,
        "torch": torch.__version__,
        "optuna": version("optuna"),  # its metadata: the trainer never imports Optuna
        "python": platform.python_version(),
        "processor": processor,
    }


def _cpu_model() -> str:
    """The CPU's model name, where Linux says it."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
