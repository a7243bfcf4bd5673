"""A population: several trials trained at once as one batched network, each member exactly the
training `train.train` gives it alone (its seed, batches, noise, β schedule, learning rate and
ReduceLROnPlateau, early stopping with its best weights), up to float rounding.

The members' parameters are stacked with a leading population dimension (`torch.func`'s
`stack_module_state`); `vmap` runs every member's forward and loss in one batched call, and one
Adam step (written out below: torch's own takes one learning rate) updates them all. A stopped
member stops changing. Validation, callbacks and the results are per member, on a plain `VAE`
holding that member's weights, so everything downstream treats a member as a trial trained alone.

Knows nothing of Optuna: callers observe (and may stop) each member through `on_epoch`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from vaesweep.interrupts import stop_if_requested
from vaesweep.spec.config import TrainConfig
from vaesweep.training.data import Splits
from vaesweep.training.device import Compute, steps_per_second
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import IMAGE_SHAPE, VAE, build_model
from vaesweep.training.train import (
    KERAS_ADAM_EPSILON,
    EarlyStopping,
    TrainingDiverged,
    TrainResult,
    _lr_scheduler,
    beta_at,
)
from vaesweep.training.validation import validate

# What members must share to be trained as one network: the shapes, the data and the loss.
SHARED = ("arch", "latent_dim", "likelihood", "batch_size", "val_size", "train_subset", "binarize")
ADAM_BETAS = (0.9, 0.999)  # torch's defaults, as `train.make_optimizer` uses
AUTO_SIZES = (1, 2, 4, 8, 16, 32)  # the populations `auto` measures on a GPU
AUTO_SHARE = 0.9  # auto: the smallest population within 10% of the best measured throughput
MEASURE_SECONDS = 0.3  # per population size (at least 3 steps after 3 to settle)


def decide_population(setting: int | str, compute: Compute, arch: str, batch_size: int):
    """The run's population size and, for 'auto', how it was chosen: on a CPU one trial at a
    time (populations of 2 to 8 trained 0.5-0.7x as many samples/s in all there, BENCHMARKS.md),
    on a GPU the measured size (`choose_population`) for the study's network."""
    if setting != "auto":
        return setting, ""
    if compute.device.type != "cuda":
        return 1, "auto: 1, as populations train slower than single trials on a CPU"
    rates: dict[int, float] = {}
    for size in AUTO_SIZES:
        try:
            rates[size] = training_throughput(arch, size, compute, MEASURE_SECONDS, batch_size)
        except torch.cuda.OutOfMemoryError:
            break  # and larger ones would not fit either
        finally:
            torch.cuda.empty_cache()
    size = choose_population(rates)
    return size, (
        f"auto: {size}; {size} {arch} trials at once train {rates[size] / rates[1]:.1f}x as many "
        f"samples/s as one on {compute.device} (measured {', '.join(map(str, rates))})"
    )


def choose_population(rates: dict[int, float]) -> int:
    """The smallest population whose total samples/s is within AUTO_SHARE of the best: a bigger
    one would hold more trials in flight (each finishing later) for little more throughput."""
    best = max(rates.values())
    return min(size for size, rate in rates.items() if rate >= AUTO_SHARE * best)


def population_key(config: TrainConfig) -> tuple:
    """Members with one key can share a population."""
    return tuple(getattr(config, name) for name in SHARED)


@dataclass
class _Member:
    """One member's own state: everything `train.train` keeps for one run."""

    config: TrainConfig
    model: VAE  # a plain network holding this member's weights whenever it is shown
    order: torch.Generator
    noise: torch.Generator
    binarizer: torch.Generator | None
    schedule: torch.optim.lr_scheduler.ReduceLROnPlateau  # on a one-number stand-in optimiser
    early_stopping: EarlyStopping
    history: list[dict[str, float]]
    active: bool = True
    stop_reason: str = "max_epochs"
    error: BaseException | None = None

    @property
    def lr(self) -> float:
        return self.schedule.optimizer.param_groups[0]["lr"]


def train_population(
    configs: Sequence[TrainConfig],
    splits: Splits,
    compute: Compute,
    on_epoch: Callable[[int, dict[str, float], VAE], None] | None = None,
) -> list[TrainResult | BaseException]:
    """Train every config at once; per member its `TrainResult`, or the exception that stopped
    it (`TrainingDiverged`, or whatever its `on_epoch(index, record, model)` raised, such as
    Optuna's TrialPruned). A KeyboardInterrupt stops them all."""
    if len({population_key(c) for c in configs}) != 1:
        raise ValueError(f"a population's members must share {', '.join(SHARED)}")
    torch.set_flush_denormal(True)  # as `train.train`: denormals slow CPUs down 100x
    members = [_member(config, compute) for config in configs]
    network = _Batched([m.model for m in members], configs[0].likelihood, compute)
    train_x = splits.train_x.to(compute.device)
    val_x = splits.val_x.to(compute.device)
    for epoch in range(max(c.epochs for c in configs)):
        for m in members:
            m.active &= epoch < m.config.epochs
        if not any(m.active for m in members):
            break
        started = time.perf_counter()
        betas = torch.tensor(
            [beta_at(epoch, m.config.warmup_epochs) for m in members], device=compute.device
        )
        lrs = [m.lr for m in members]
        sums = _train_epoch(members, network, train_x, betas, compute)
        train_seconds = time.perf_counter() - started
        for index, m in enumerate(members):
            if not m.active:
                continue
            beta = beta_at(epoch, m.config.warmup_epochs)
            total, recon, kl = (sums[index] / len(train_x)).tolist()
            record = {"epoch": epoch, "beta": beta, "lr": lrs[index], "train_loss": total}
            record |= {"train_recon": recon, "train_kl": kl, "train_beta_kl": beta * kl}
            record["train_seconds"] = train_seconds  # the population's, shared by its members
            _end_epoch(index, m, record, network, val_x, compute, started, on_epoch)
    results: list[TrainResult | BaseException] = []
    for index, m in enumerate(members):
        if m.error is not None:
            results.append(m.error)
            continue
        _show(m, network.params, index)
        m.early_stopping.restore_best(m.model)
        results.append(
            TrainResult(m.model.eval(), m.history, m.early_stopping.best_epoch, m.stop_reason)
        )
    return results


def _member(config: TrainConfig, compute: Compute) -> _Member:
    model = build_model(config.arch, config.latent_dim, seed=config.seed).to(compute.device)
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    binarizer = None
    if config.binarize:
        binarizer = torch.Generator(device=compute.device).manual_seed(config.seed + 1)
    return _Member(
        config=config,
        model=model,
        order=torch.Generator().manual_seed(config.seed),
        # `train.train` seeds the global generator with the seed: the same stream, per member.
        noise=torch.Generator(device=compute.device).manual_seed(config.seed),
        binarizer=binarizer,
        schedule=_lr_scheduler(stand_in, config),
        early_stopping=EarlyStopping(config.early_stop_start_epoch, config.early_stop_patience),
        history=[],
    )


def _train_epoch(members, network, train_x, betas, compute) -> Tensor:
    """One pass over the training images for every active member, each in its own order; the
    summed (total, recon, kl) per member, weighted by batch size."""
    n, batch = len(train_x), members[0].config.batch_size
    latent = members[0].config.latent_dim
    device = compute.device
    active = torch.tensor([m.active for m in members], device=device)
    # A stopped member draws nothing (its streams end where its solo run's would); it gets
    # placeholder batches, computed and not applied.
    idle = torch.zeros(n, dtype=torch.long, device=device)
    orders = [
        torch.randperm(n, generator=m.order).to(device) if m.active else idle for m in members
    ]
    sums = torch.zeros(len(members), 3, device=device)
    for start in range(0, n, batch):
        stop_if_requested()
        xs, noises = [], []
        for m, order in zip(members, orders, strict=True):
            x = train_x[order[start : start + batch]]
            if m.active and m.binarizer is not None:
                x = torch.bernoulli(x, generator=m.binarizer)
            eps = torch.zeros(len(x), latent, device=device)
            if m.active:  # the noise `VAE.reparameterize` would draw alone, from its stream
                eps = torch.randn(len(x), latent, generator=m.noise, device=device)
            xs.append(x)
            noises.append(eps)
        terms = network.step(
            torch.stack(xs), torch.stack(noises), betas, [m.lr for m in members], active
        )
        sums += terms * len(xs[0])
    return sums


def _end_epoch(
    index: int,
    m: _Member,
    record: dict[str, float],
    network: _Batched,
    val_x: Tensor,
    compute: Compute,
    started: float,
    on_epoch: Callable[[int, dict[str, float], VAE], None] | None,
) -> None:
    """What `train.train` does after each epoch, for one member: validate, record, call back,
    schedule, and stop early or on divergence."""
    _show(m, network.params, index)
    val_stats = validate(m.model, val_x, m.config, record["beta"], compute).stats
    record |= {f"val_{key}": value for key, value in val_stats.items()}
    record["seconds"] = time.perf_counter() - started  # with validation
    m.history.append(record)
    try:
        if not all(math.isfinite(value) for value in record.values()):
            raise TrainingDiverged(f"loss became NaN or infinite in epoch {record['epoch'] + 1}")
        if on_epoch is not None:
            on_epoch(index, record, m.model)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # this member stops; the others go on
        m.active, m.error = False, err
        return
    monitor = record[f"val_{m.config.monitor}"]
    m.schedule.step(monitor)
    if m.early_stopping.should_stop(int(record["epoch"]), monitor, m.model):
        m.active, m.stop_reason = False, "early_stopping"


def _show(m: _Member, params: dict[str, Tensor], index: int) -> None:
    """Put the member's current weights into its plain network."""
    with torch.no_grad():
        for name, value in m.model.named_parameters():
            value.copy_(params[name][index])


class _Batched:
    """The members as one network: stacked parameters, one vmapped loss, one Adam step."""

    def __init__(self, models: list[VAE], likelihood: str, compute: Compute):
        params, buffers = stack_module_state(models)
        self.params = {n: v.detach().to(compute.device).requires_grad_() for n, v in params.items()}
        self.buffers = {n: v.to(compute.device) for n, v in buffers.items()}
        self.compute = compute
        template = copy.deepcopy(models[0]).to("meta")

        def member_loss(p, b, x, eps, beta):
            logits, mu, logvar = functional_call(template, (p, b), (x,), {"eps": eps})
            loss = vae_loss(logits, x, mu, logvar, likelihood, beta)
            return torch.stack([loss.total, loss.recon, loss.kl])

        self.losses = vmap(member_loss)
        self.adam = _BatchedAdam(self.params, len(models))

    def step(self, xs: Tensor, noises: Tensor, betas: Tensor, lrs: list[float], active: Tensor):
        """One training step of every member on its batch and noise; each member's (total,
        recon, kl), detached. Members not `active` are computed but keep their weights."""
        with self.compute.autocast():
            terms = self.losses(self.params, self.buffers, xs, noises, betas)
        self.adam.zero_grad()
        (terms[:, 0] * active).sum().backward()
        self.adam.step(lrs, active)
        return terms.detach()


def training_throughput(
    arch: str, members: int, compute: Compute, seconds: float, batch_size: int = 128
) -> float:
    """Training samples per second of a population of `members`, all members counted (at least
    3 steps after 3 to settle), on random images; compare with `precision.training_throughput`."""
    models = [build_model(arch, 2, seed=seed).to(compute.device) for seed in range(members)]
    network = _Batched(models, "bce", compute)
    device = compute.device
    xs = torch.rand(members, batch_size, *IMAGE_SHAPE, device=device)
    noises = torch.randn(members, batch_size, 2, device=device)
    betas = torch.ones(members, device=device)
    active = torch.ones(members, dtype=torch.bool, device=device)

    def step() -> None:
        network.step(xs, noises, betas, [1e-3] * members, active)

    return steps_per_second(step, device, seconds) * batch_size * members


class _BatchedAdam:
    """Adam over stacked parameters, with each member's own learning rate and step count; a
    member not active this step keeps its weights and moments. The update is torch's Adam."""

    def __init__(self, params: dict[str, Tensor], members: int):
        self.params = list(params.values())
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(members, dtype=torch.float64, device=self.params[0].device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lrs: list[float], active: Tensor) -> None:
        beta1, beta2 = ADAM_BETAS
        self.steps += active
        steps = self.steps.clamp(min=1)
        lr = torch.tensor(lrs, dtype=torch.float64, device=active.device)
        step_size = (lr / (1 - beta1**steps)).float()
        bias2_sqrt = (1 - beta2**steps).sqrt().float()
        everyone = bool(active.all())  # the usual case: no member's update to hold back
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            assert g is not None  # every member's parameters take part in the loss
            if not everyone:  # a stopped member's gradient moves nothing, its moments included
                on = active.view(shape)
                g = torch.where(on, g, 0.0)
                kept = (m.clone(), v.clone())
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias2_sqrt.view(shape)).add_(KERAS_ADAM_EPSILON)
            update = m / denom * step_size.view(shape)
            if not everyone:
                update = torch.where(on, update, 0.0)
                m.copy_(torch.where(on, m, kept[0]))
                v.copy_(torch.where(on, v, kept[1]))
            p.sub_(update)
