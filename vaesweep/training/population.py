"""A population: several trials trained at once as one batched network, each member exactly the
training `train.train` gives it alone (its seed, batches, noise, β schedule, learning rate and
ReduceLROnPlateau, early stopping with its best weights), up to float rounding.

The members' parameters are stacked with a leading population dimension (`torch.func`'s
`stack_module_state`); `vmap` runs every member's forward and loss in one batched call, and one
Adam step (written out below with `torch._foreach_*` ops: torch's own takes one learning rate)
updates them all. A stopped member leaves the network, so no step computes it. A step reads
nothing back from the device (learning rates and β are device tensors, set once an epoch), so
on a GPU it queues without waiting. Validation, callbacks and the results are per member, on a
plain `VAE` holding that member's weights, so everything downstream treats a member as a trial
trained alone.

Knows nothing of Optuna: callers observe (and may stop) each member through `on_epoch`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from vaesweep.errors import VaesweepError
from vaesweep.interrupts import stop_if_requested
from vaesweep.spec.config import TrainConfig
from vaesweep.training import precision
from vaesweep.training.data import Splits
from vaesweep.training.device import Compute, prepare_training, steps_per_second
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import IMAGE_SHAPE, VAE, build_model
from vaesweep.training.train import (
    KERAS_ADAM_EPSILON,
    Member,
    TrainResult,
    beta_at,
    epoch_record,
)

# What members must share to be trained as one network: the shapes, the data and the loss.
SHARED = ("arch", "latent_dim", "likelihood", "batch_size", "val_size", "train_subset", "binarize")
ADAM_BETAS = (0.9, 0.999)  # torch's defaults, as `train.make_optimizer` uses
AUTO_SIZES = (1, 2, 4, 8, 16, 32)  # the populations `auto` measures on a GPU
AUTO_SHARE = 0.9  # auto: the smallest population within 10% of the best measured throughput
MEASURE_SECONDS = 0.3  # per population size (at least 3 steps after 3 to settle)


def decide_population(setting: int | str, compute: Compute, arch: str, batch_size: int):
    """The run's population size and, for 'auto', how it was chosen: on a CPU one trial at a
    time (populations of 2 to 8 trained 0.5-0.7x as many samples/s in all there, BENCHMARKS.md),
    on a GPU the measured size (`choose_population`) for the study's network. A population of
    1 is the solo path a lone trial takes (`train.train`), measured as such."""
    if setting != "auto":
        return setting, ""
    if compute.device.type != "cuda":
        return 1, "auto: 1, as populations train slower than single trials on a CPU"
    rates = _measured_sizes(arch, compute, batch_size)
    if not rates:
        raise VaesweepError(
            f"one {arch} trial at batch size {batch_size} does not fit in {compute.device}'s "
            "memory; use a smaller batch_size"
        )
    size = choose_population(rates)
    return size, (
        f"auto: {size}; {size} {arch} trials at once train {rates[size] / rates[1]:.1f}x as many "
        f"samples/s as one on {compute.device} (measured {', '.join(map(str, rates))})"
    )


def _measured_sizes(arch: str, compute: Compute, batch_size: int) -> dict[int, float]:
    """Samples/s of each size in AUTO_SIZES up to the first that runs out of memory."""
    channels_last = build_model(arch, 2).channels_last

    def measured(size: int) -> float:
        if size == 1:  # a lone trial's own path
            return precision.training_throughput(
                arch, compute.precision, channels_last, compute.device, MEASURE_SECONDS, batch_size
            )
        return training_throughput(arch, size, compute, MEASURE_SECONDS, batch_size)

    rates: dict[int, float] = {}
    for size in AUTO_SIZES:
        try:
            rates[size] = measured(size)
        except torch.cuda.OutOfMemoryError:
            break  # and larger ones would not fit either
        finally:
            torch.cuda.empty_cache()
    return rates


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
    """One member: its own state as `train.train` keeps it for one run (`member`), and what a
    population adds: its plain network, its random streams, and whether it still trains."""

    member: Member
    model: VAE  # a plain network holding this member's weights whenever it is shown
    order: torch.Generator
    noise: torch.Generator
    binarizer: torch.Generator | None
    active: bool = True
    error: BaseException | None = None

    @property
    def config(self) -> TrainConfig:
        return self.member.config


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
    prepare_training(compute.device)
    members = [_member(config, compute) for config in configs]
    network = _Batched([m.model for m in members], configs[0].likelihood, compute)
    train_x = splits.train_x.to(compute.device)
    val_x = splits.val_x.to(compute.device)
    for epoch in range(max(c.epochs for c in configs)):
        for m in members:
            m.active &= epoch < m.config.epochs
        network.keep([i for i, m in enumerate(members) if m.active])
        if not network.members:
            break
        started = time.perf_counter()
        training = [members[i] for i in network.members]
        betas = [beta_at(epoch, m.config.warmup_epochs) for m in training]
        lrs = [m.member.lr for m in training]
        sums = _train_epoch(training, network, train_x, betas, lrs, compute)
        train_seconds = time.perf_counter() - started
        for row, index in enumerate(network.members):
            total, recon, kl = sums[row]
            losses = {"loss": total, "recon": recon, "kl": kl, "beta_kl": betas[row] * kl}
            # train_seconds: the population's, shared by its members.
            record = epoch_record(epoch, betas[row], lrs[row], losses, train_seconds)
            _end_epoch(
                index, row, members[index], record, network, val_x, compute, started, on_epoch
            )
    results: list[TrainResult | BaseException] = []
    for m in members:  # each member's network holds its last weights (`_end_epoch` shows them)
        if m.error is not None:
            results.append(m.error)
            continue
        results.append(m.member.result(m.model))
    return results


def _member(config: TrainConfig, compute: Compute) -> _Member:
    model = build_model(config.arch, config.latent_dim, seed=config.seed).to(compute.device)
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    binarizer = None
    if config.binarize:
        binarizer = torch.Generator(device=compute.device).manual_seed(config.seed + 1)
    return _Member(
        member=Member.start(config, stand_in),
        model=model,
        order=torch.Generator().manual_seed(config.seed),
        # `train.train` seeds the global generator with the seed: the same stream, per member.
        noise=torch.Generator(device=compute.device).manual_seed(config.seed),
        binarizer=binarizer,
    )


def _train_epoch(members, network, train_x, betas, lrs, compute) -> list[list[float]]:
    """One pass over the training images for every member still training, each in its own
    order; per member its mean (total, recon, kl), read back once at the end."""
    n, batch = len(train_x), members[0].config.batch_size
    latent = members[0].config.latent_dim
    device = compute.device
    network.set_schedule(betas, lrs)
    orders = torch.stack([torch.randperm(n, generator=m.order) for m in members]).to(device)
    sums = torch.zeros(len(members), 3, device=device)
    for start in range(0, n, batch):
        stop_if_requested()
        xs = train_x[orders[:, start : start + batch]]  # every member's batch in one gather
        if members[0].binarizer is not None:  # all or none: `binarize` is shared
            xs = torch.stack(
                [
                    torch.bernoulli(x, generator=m.binarizer)
                    for x, m in zip(xs, members, strict=True)
                ]
            )
        # The noise `VAE.reparameterize` would draw alone, from each member's own stream.
        noises = torch.empty(len(members), xs.shape[1], latent, device=device)
        for eps, m in zip(noises, members, strict=True):
            eps.normal_(generator=m.noise)
        sums += network.step(xs, noises) * xs.shape[1]
    return (sums / n).tolist()


def _end_epoch(
    index: int,
    row: int,
    m: _Member,
    record: dict[str, float],
    network: _Batched,
    val_x: Tensor,
    compute: Compute,
    started: float,
    on_epoch: Callable[[int, dict[str, float], VAE], None] | None,
) -> None:
    """The epoch's end for one member (`Member.end_epoch`, as `train.train` ends it), on its
    plain network holding its current weights; an error stops this member alone."""
    _show(m, network.params, row)
    try:
        callback = None if on_epoch is None else functools.partial(on_epoch, index)
        m.active = m.member.end_epoch(record, m.model, val_x, compute, started, callback)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # this member stops; the others go on
        m.active, m.error = False, err


def _show(m: _Member, params: dict[str, Tensor], row: int) -> None:
    """Put the member's current weights (row `row` of the network) into its plain network."""
    with torch.no_grad():
        for name, value in m.model.named_parameters():
            value.copy_(params[name][row])


class _Batched:
    """The members still training as one network: stacked parameters, one vmapped loss, one
    Adam step. `members[row]`: the index (among all the population's) of the member in `row`."""

    def __init__(self, models: list[VAE], likelihood: str, compute: Compute):
        params, buffers = stack_module_state(models)
        self.params = {n: v.detach().to(compute.device).requires_grad_() for n, v in params.items()}
        self.buffers = {n: v.to(compute.device) for n, v in buffers.items()}
        # vmap batches PyTorch's own operators only, so members train in its default kernels
        self.compute = dataclasses.replace(compute, linear="aten")
        self.members = list(range(len(models)))
        template = copy.deepcopy(models[0]).to("meta")

        def member_loss(p, b, x, eps, beta):
            logits, mu, logvar = functional_call(template, (p, b), (x,), {"eps": eps})
            loss = vae_loss(logits, x, mu, logvar, likelihood, beta)
            return torch.stack([loss.total, loss.recon, loss.kl])

        self.losses = vmap(member_loss)
        self.adam = _BatchedAdam(list(self.params.values()), len(models))
        self.betas = torch.ones(len(models), device=compute.device)

    def keep(self, members: list[int]) -> None:
        """Go on with these members only (a subset of `self.members`, in order): the others'
        rows leave every stacked tensor, so no later step computes them."""
        if members == self.members or not members:  # none left: the training ends
            self.members = members
            return
        kept = [self.members.index(i) for i in members]
        rows = torch.tensor(kept, dtype=torch.long, device=self.compute.device)
        self.params = {n: v.detach()[rows].requires_grad_() for n, v in self.params.items()}
        self.buffers = {n: v[rows] for n, v in self.buffers.items()}
        self.adam.keep(list(self.params.values()), rows)
        self.members = members

    def set_schedule(self, betas: list[float], lrs: list[float]) -> None:
        """This epoch's β and learning rate per member, copied to the device once."""
        self.betas = torch.tensor(betas, device=self.compute.device)
        self.adam.lrs = torch.tensor(lrs, dtype=torch.float64, device=self.compute.device)

    def step(self, xs: Tensor, noises: Tensor) -> Tensor:
        """One training step of every member on its batch and noise; each member's (total,
        recon, kl), detached."""
        with self.compute.autocast():
            terms = self.losses(self.params, self.buffers, xs, noises, self.betas)
        self.adam.zero_grad()
        terms[:, 0].sum().backward()
        self.adam.step()
        return terms.detach()


def training_throughput(
    arch: str, members: int, compute: Compute, seconds: float, batch_size: int = 128
) -> float:
    """Training samples per second of a population of `members`, all members counted (at least
    3 steps after 3 to settle), on random images; compare with `precision.training_throughput`."""
    prepare_training(compute.device)
    models = [build_model(arch, 2, seed=seed).to(compute.device) for seed in range(members)]
    network = _Batched(models, "bce", compute)
    device = compute.device
    xs = torch.rand(members, batch_size, *IMAGE_SHAPE, device=device)
    noises = torch.randn(members, batch_size, 2, device=device)
    network.set_schedule([1.0] * members, [1e-3] * members)

    def step() -> None:
        network.step(xs, noises)

    return steps_per_second(step, device, seconds) * batch_size * members


class _BatchedAdam:
    """Adam over stacked parameters, with each member's own learning rate (`lrs`) and step
    count: torch's Adam update, as a few `torch._foreach_*` launches over all the parameters
    rather than a dozen per parameter."""

    def __init__(self, params: list[Tensor], members: int):
        self.params = params
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        device = params[0].device
        self.steps = torch.zeros(members, dtype=torch.float64, device=device)
        self.lrs = torch.zeros(members, dtype=torch.float64, device=device)

    def keep(self, params: list[Tensor], rows: Tensor) -> None:
        self.params = params
        self.exp_avg = [m[rows] for m in self.exp_avg]
        self.exp_avg_sq = [v[rows] for v in self.exp_avg_sq]
        self.steps, self.lrs = self.steps[rows], self.lrs[rows]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        step_size = (self.lrs / (1 - beta1**self.steps)).float()
        bias2_sqrt = (1 - beta2**self.steps).sqrt().float()
        shapes = [(-1,) + (1,) * (p.dim() - 1) for p in self.params]
        grads = [p.grad for p in self.params if p.grad is not None]
        assert len(grads) == len(self.params)  # every parameter takes part in the loss
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, [bias2_sqrt.view(shape) for shape in shapes])
        torch._foreach_add_(denom, KERAS_ADAM_EPSILON)
        update = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(update, [step_size.view(shape) for shape in shapes])
        torch._foreach_sub_(self.params, update)
