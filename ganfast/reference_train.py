"""The toy GAN loop in plain PyTorch, written the way the seed projects write it: nn modules,
torch.optim, nn.BCELoss, loss.backward(). It is the oracle the fused engine is tested against
and the `--backend torch` path of the CLI. Its D and G updates are ganfast.steps.GanSteps.

It draws every random number from the member's Philox stream in the order the engine does
(docs/design.md, "Training loop"), so the two agree to rounding.
"""
from __future__ import annotations

import math

import torch

from ganfast.gan import as_gan_spec
from ganfast.modules import Discriminator, Generator
from ganfast.random import PhiloxStream
from ganfast.state import GanState, check_epochs
from ganfast.steps import GanSteps, make_optimizer, set_epoch_lr


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

    def __init__(self, spec, stream: PhiloxStream, dtype, device):
        self.spec, self.stream, self.dtype, self.device = as_gan_spec(spec), stream, dtype, device
        data = self.spec.data
        centers, std, weights = data.centers, data.std, data.weights
        self.centers = torch.tensor(centers, dtype=torch.float64, device=device)
        self.std = torch.tensor(std, dtype=torch.float64, device=device)
        cum = torch.cumsum(torch.tensor(weights, dtype=torch.float64), 0)
        self.cum = cum.to(device)

    def noise(self) -> torch.Tensor:
        n, z = self.spec.batch_size, self.spec.noise
        if z.kind == "uniform":
            x = self.stream.uniform(n * z.dim, z.low, z.high, self.dtype, self.device)
        else:
            x = self.stream.normal(n * z.dim, z.mean, z.std, self.dtype, self.device)
        return x.view(n, z.dim)

    def data(self) -> torch.Tensor:
        n, dim = self.spec.batch_size, self.spec.data.dim
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


class MemberTrainer:
    """One member of the population: G, D, optimizers and a shared stream, seed-style."""

    def __init__(self, spec, state: GanState, k: int):
        spec = as_gan_spec(spec)
        self.spec, self.state, self.k = spec, state, k
        dtype, device = state.g_params.dtype, state.g_params.device
        self.stream = PhiloxStream(int(state.seeds[k]), int(state.offsets[k]))
        # The weights come from the state; a private generator keeps torch's global RNG untouched.
        unused = torch.Generator(device=device)
        self.G = Generator.from_spec(spec.g, backend="torch", stream=self.stream, dtype=dtype, device=device,
                                     generator=unused)
        self.D = Discriminator.from_spec(spec.d, backend="torch", stream=self.stream, dtype=dtype, device=device,
                                         generator=unused)
        with torch.no_grad():
            self.G.params.copy_(state.g_params[k])
            self.D.params.copy_(state.d_params[k])
        self.epoch = int(state.epochs[k])
        self.diverged = int(state.diverged[k])
        self.lr_d, self.lr_g = (float(v) for v in state.lrs[k])
        self.d_opt = make_optimizer(spec.optimizer_d, self.D.parameters(), self.lr_d)
        self.g_opt = make_optimizer(spec.optimizer_g, self.G.parameters(), self.lr_g)
        _load_opt_state(self.d_opt, spec.optimizer_d, self.D.params, state.d_opt[k], self.epoch * spec.d_steps)
        _load_opt_state(self.g_opt, spec.optimizer_g, self.G.params, state.g_opt[k], self.epoch * spec.g_steps)
        self._set_lrs()
        self.sampler = Sampler(spec, self.stream, dtype, device)
        features = (lambda x: moments(x.t())) if spec.d_input == "moments" else None
        self.steps = GanSteps(self.G, self.D, self.d_opt, self.g_opt, spec.g_loss, features, nonfinite_ok=True)
        self.metrics = [math.nan] * 5

    def _set_lrs(self):
        """The learning rates of the current epoch (StepLR, closed form)."""
        set_epoch_lr(self.d_opt, self.spec.optimizer_d, self.lr_d, self.epoch)
        set_epoch_lr(self.g_opt, self.spec.optimizer_g, self.lr_g, self.epoch)

    def d_step(self):
        d_real_error, d_fake_error, _, _ = self.steps.d_step(self.sampler.data, self.sampler.noise)
        self.metrics[0], self.metrics[1] = d_real_error.item(), d_fake_error.item()

    def g_step(self):
        g_error, fake, _ = self.steps.g_step(self.sampler.noise)
        f = fake.double()
        self.metrics[2:] = [g_error.item(), f.mean().item(), f.std(unbiased=False).item()]

    def train(self, epochs: int):
        """As the engine: a diverged member is frozen (its epoch count still advances); the check
        ends every epoch, and looks at the losses in the call's last epoch (the engine computes
        them there only)."""
        for e in range(epochs):
            if self.diverged >= 0:
                self.epoch += 1
                continue
            for _ in range(self.spec.d_steps):
                self.d_step()
            for _ in range(self.spec.g_steps):
                self.g_step()
            self.epoch += 1
            self._set_lrs()
            if self._nonfinite(losses=e + 1 == epochs):
                self.diverged = self.epoch
        if self.diverged >= 0:
            self.metrics = [math.nan] * 5
        self.write_back()

    def _nonfinite(self, losses: bool) -> bool:
        """A NaN or infinite parameter of G or D, or (losses) loss of the last D / G step."""
        if not (bool(torch.isfinite(self.G.params).all()) and bool(torch.isfinite(self.D.params).all())):
            return True
        reported = (self.metrics[:2] if self.spec.d_steps else []) + (self.metrics[2:3] if self.spec.g_steps else [])
        return losses and not all(math.isfinite(v) for v in reported)

    def write_back(self):
        s, k, spec = self.state, self.k, self.spec
        with torch.no_grad():
            s.g_params[k] = self.G.params
            s.d_params[k] = self.D.params
            _save_opt_state(self.d_opt, spec.optimizer_d, self.D.params, s.d_opt[k])
            _save_opt_state(self.g_opt, spec.optimizer_g, self.G.params, s.g_opt[k])
        s.offsets[k] = self.stream.offset
        s.epochs[k] = self.epoch
        s.diverged[k] = self.diverged


def train_reference(spec, state: GanState, epochs: int) -> torch.Tensor:
    """Train every member for `epochs` epochs in place, one after another; returns the (P, 5)
    metrics of the last epoch (the columns of ganfast.engine.METRIC_NAMES; NaN for a diverged
    member). `spec`: a GanSpec, or a config with `.gan_spec`."""
    spec = as_gan_spec(spec)
    epochs = check_epochs(epochs)
    rows = []
    for k in range(state.population):
        member = MemberTrainer(spec, state, k)
        member.train(epochs)
        rows.append(member.metrics)
    return torch.tensor(rows, dtype=torch.float64)
