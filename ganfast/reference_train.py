"""The toy GAN loop in plain PyTorch, written the way the seed projects write it: nn modules,
torch.optim, nn.BCELoss, loss.backward(). It is the oracle the fused engine is tested against
and the `--backend torch` path of the CLI.

It draws every random number from the member's Philox stream in the order the engine does
(docs/design.md, "Training loop"), so the two agree to rounding.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from ganfast.config import TrainConfig
from ganfast.modules import Discriminator, Generator
from ganfast.random import PhiloxStream
from ganfast.state import GanState


def moments(d: torch.Tensor) -> torch.Tensor:
    """devnag's D input: mean, std, skewness, excess kurtosis of a 1-D batch, shape (1, 4)."""
    mean = torch.mean(d)
    diffs = d - mean
    var = torch.mean(torch.pow(diffs, 2.0))
    std = torch.pow(var, 0.5)
    zscores = diffs / std
    skews = torch.mean(torch.pow(zscores, 3.0))
    kurtoses = torch.mean(torch.pow(zscores, 4.0)) - 3.0
    return torch.cat((mean.reshape(1), std.reshape(1), skews.reshape(1), kurtoses.reshape(1))).reshape(1, 4)


class Sampler:
    """Noise and real data from a PhiloxStream, row-major (N, dim)."""

    def __init__(self, cfg: TrainConfig, stream: PhiloxStream, dtype, device):
        self.cfg, self.stream, self.dtype, self.device = cfg, stream, dtype, device
        centers, std, weights = cfg.data.components()
        self.centers = torch.tensor(centers, dtype=torch.float64, device=device)
        self.std = torch.tensor(std, dtype=torch.float64, device=device)
        cum = torch.cumsum(torch.tensor(weights, dtype=torch.float64), 0)
        self.cum = cum.to(device)

    def noise(self) -> torch.Tensor:
        n, z = self.cfg.batch_size, self.cfg.noise
        if z.kind == "uniform":
            x = self.stream.uniform(n * z.dim, z.low, z.high, self.dtype, self.device)
        else:
            x = self.stream.normal(n * z.dim, z.mean, z.std, self.dtype, self.device)
        return x.view(n, z.dim)

    def data(self) -> torch.Tensor:
        n, dim = self.cfg.batch_size, self.cfg.data.dim
        comp = torch.zeros(n, dtype=torch.int64, device=self.device)
        if len(self.cum) > 1:
            u = (self.stream.words(n, self.device) >> 8).to(torch.float64) * 2.0 ** -24
            comp = torch.searchsorted(self.cum, u, right=True).clamp_(max=len(self.cum) - 1)
        z = self.stream.normal(n * dim, 0.0, 1.0, torch.float64, self.device).view(n, dim)
        return (self.centers[comp] + self.std * z).to(self.dtype)


def _load_opt_state(opt, o, param, buf, steps_done):
    """Put GanState's optimizer buffer into a torch.optim optimizer (and back: _save_opt_state)."""
    if steps_done == 0:
        return
    n = param.numel()
    if o.kind == "sgd":
        if o.momentum:
            opt.state[param]["momentum_buffer"] = buf[:n].clone()
    else:
        opt.state[param].update(step=torch.tensor(float(steps_done)), exp_avg=buf[:n].clone(),
                                exp_avg_sq=buf[n:].clone())


def _save_opt_state(opt, o, param, buf):
    st = opt.state.get(param, {})
    n = param.numel()
    if o.kind == "sgd" and "momentum_buffer" in st:
        buf[:n] = st["momentum_buffer"]
    elif o.kind == "adam" and "exp_avg" in st:
        buf[:n], buf[n:] = st["exp_avg"], st["exp_avg_sq"]


class GanSteps:
    """One D update and one G update, the seeds' way: nn.BCELoss, D trained on real -> 1 and
    fake -> 0 (fake detached from G), G on the non-saturating target 1 (or the minimax
    -log(1 - D(G(z)))), each an optimizer step. The toy trainer below and the image trainer
    (ganfast.image_train) both train with this; they differ only in where batches come from.

    `real` and `noise` are called for each batch, in the order the step needs them, so a
    shared random stream is consumed in the same order as the fused engine's."""

    def __init__(self, G: nn.Module, D: nn.Module, d_opt, g_opt, generator_loss: str, features=None):
        self.G, self.D, self.d_opt, self.g_opt = G, D, d_opt, g_opt
        self.minimax = generator_loss == "minimax"
        self.features = features if features is not None else (lambda x: x)
        self.criterion = nn.BCELoss()

    def d_step(self, real, noise) -> tuple:
        """(loss on real, loss on fake, D(real), D(fake)), all detached."""
        self.D.zero_grad()
        d_real = self.D(self.features(real()))
        d_real_error = self.criterion(d_real, torch.ones_like(d_real))
        d_real_error.backward()
        fake = self.G(noise()).detach()
        d_fake = self.D(self.features(fake))
        d_fake_error = self.criterion(d_fake, torch.zeros_like(d_fake))
        d_fake_error.backward()
        self.d_opt.step()
        return d_real_error.detach(), d_fake_error.detach(), d_real.detach(), d_fake.detach()

    def g_step(self, noise) -> tuple:
        """(G's loss, the fake batch, D(fake)), all detached. D's parameters are frozen while D
        judges the fakes: G's update needs the gradient through D, not D's own (which the seeds
        compute and then zero), and a frozen D makes autograd skip it."""
        self.G.zero_grad()
        fake = self.G(noise())
        with _frozen(self.D):
            d_fake = self.D(self.features(fake))
        if self.minimax:  # minimise log(1 - D(G(z)))
            g_error = -self.criterion(d_fake, torch.zeros_like(d_fake))
        else:  # non-saturating: maximise log D(G(z)), as every seed does
            g_error = self.criterion(d_fake, torch.ones_like(d_fake))
        g_error.backward()
        self.g_opt.step()
        return g_error.detach(), fake.detach(), d_fake.detach()


@contextlib.contextmanager
def _frozen(module: nn.Module):
    """requires_grad off for the module's parameters that had it, for the forward passes inside."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def make_optimizer(o, params, lr, fused: bool = False):
    """torch.optim optimizer of an OptimizerConfig. fused=True takes torch's single-kernel
    implementation (same update, rounded differently; about 2x faster on a 100k-value
    parameter): the image trainer's choice. The toy oracle keeps torch's default."""
    kw = {"fused": True} if fused else {}
    if o.kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=o.momentum, **kw)
    return torch.optim.Adam(params, lr=lr, betas=tuple(o.betas), eps=o.eps, **kw)


def make_scheduler(o, opt, last_epoch: int = 0):
    """StepLR of an OptimizerConfig (None without step_lr), advanced by `last_epoch` epochs."""
    if o.step_lr is None:
        return None
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=o.step_lr.step_size, gamma=o.step_lr.gamma)
    for _ in range(last_epoch):  # replay, so a resumed run decays exactly like a fresh one
        opt._opt_called = True  # silence "scheduler.step() before optimizer.step()" on replay
        sched.step()
    return sched


def step_schedulers(*pairs) -> None:
    """End of an epoch: step each (scheduler, optimizer) pair that has a scheduler."""
    for sched, opt in pairs:
        if sched is not None:
            opt._opt_called = True  # d_steps or g_steps may be 0: no "step() order" warning
            sched.step()


class MemberTrainer:
    """One member of the population: G, D, optimizers and a shared stream, seed-style."""

    def __init__(self, cfg: TrainConfig, state: GanState, k: int):
        self.cfg, self.state, self.k = cfg, state, k
        dtype, device = state.g_params.dtype, state.g_params.device
        self.stream = PhiloxStream(int(state.seeds[k]), int(state.offsets[k]))
        # The weights come from the state; a private generator keeps torch's global RNG untouched.
        unused = torch.Generator(device=device)
        self.G = Generator.from_spec(cfg.g_spec, backend="torch", stream=self.stream, dtype=dtype, device=device,
                                     generator=unused)
        self.D = Discriminator.from_spec(cfg.d_spec, backend="torch", stream=self.stream, dtype=dtype, device=device,
                                         generator=unused)
        with torch.no_grad():
            self.G.params.copy_(state.g_params[k])
            self.D.params.copy_(state.d_params[k])
        self.epoch = int(state.epochs[k])
        lr_d, lr_g = (float(v) for v in state.lrs[k])
        self.d_opt = make_optimizer(cfg.optimizer_d, self.D.parameters(), lr_d)
        self.g_opt = make_optimizer(cfg.optimizer_g, self.G.parameters(), lr_g)
        _load_opt_state(self.d_opt, cfg.optimizer_d, self.D.params, state.d_opt[k], self.epoch * cfg.d_steps)
        _load_opt_state(self.g_opt, cfg.optimizer_g, self.G.params, state.g_opt[k], self.epoch * cfg.g_steps)
        self.d_sched = make_scheduler(cfg.optimizer_d, self.d_opt, self.epoch)
        self.g_sched = make_scheduler(cfg.optimizer_g, self.g_opt, self.epoch)
        self.sampler = Sampler(cfg, self.stream, dtype, device)
        features = (lambda x: moments(x.t())) if cfg.discriminator.input == "moments" else None
        self.steps = GanSteps(self.G, self.D, self.d_opt, self.g_opt, cfg.loss.generator, features)
        self.metrics = [math.nan] * 5

    def d_step(self):
        d_real_error, d_fake_error, _, _ = self.steps.d_step(self.sampler.data, self.sampler.noise)
        self.metrics[0], self.metrics[1] = d_real_error.item(), d_fake_error.item()

    def g_step(self):
        g_error, fake, _ = self.steps.g_step(self.sampler.noise)
        f = fake.double()
        self.metrics[2:] = [g_error.item(), f.mean().item(), f.std(unbiased=False).item()]

    def train(self, epochs: int):
        for _ in range(epochs):
            for _ in range(self.cfg.d_steps):
                self.d_step()
            for _ in range(self.cfg.g_steps):
                self.g_step()
            step_schedulers((self.d_sched, self.d_opt), (self.g_sched, self.g_opt))
            self.epoch += 1
        self.write_back()

    def write_back(self):
        s, k = self.state, self.k
        with torch.no_grad():
            s.g_params[k] = self.G.params
            s.d_params[k] = self.D.params
            _save_opt_state(self.d_opt, self.cfg.optimizer_d, self.D.params, s.d_opt[k])
            _save_opt_state(self.g_opt, self.cfg.optimizer_g, self.G.params, s.g_opt[k])
        s.offsets[k] = self.stream.offset
        s.epochs[k] = self.epoch


def train_reference(cfg: TrainConfig, state: GanState, epochs: int) -> torch.Tensor:
    """Train every member for `epochs` epochs in place, one after another; returns the (P, 5)
    metrics of the last epoch (the columns of ganfast.engine.METRIC_NAMES)."""
    rows = []
    for k in range(state.population):
        member = MemberTrainer(cfg, state, k)
        member.train(epochs)
        rows.append(member.metrics)
    return torch.tensor(rows, dtype=torch.float64)
