"""Training on image data sets (digits, MNIST, CIFAR-10): the seeds' image GANs.

The updates are the toy reference trainer's (ganfast.steps.GanSteps: BCE losses, the D/G
alternation, torch.optim SGD/Adam; here torch's fused optimizer kernels) and so is the StepLR
schedule (OptimizerSpec.lr_at, set once per epoch); only the batches differ. An epoch is one pass
over the data set in a shuffled order; an iteration is `d_steps` D updates, each on the next
`batch_size` real images (a last partial batch is dropped, as BatchNorm needs whole batches),
then `g_steps` G updates.

Random numbers: noise comes from the Philox stream of `cfg.seed` (shared with the flat MLPs'
dropout, as in the toy trainer); the order of epoch e is the argsort of Philox words of seed
`cfg.seed + DATA_ORDER_SHIFT`, offset e * N, so it depends on the epoch alone. PyTorch layers
(nn.Dropout in a conv net) draw from a private copy of torch's RNG state, saved with the
checkpoint. So a resumed run ends bit-identical to one that was never interrupted (on the CPU).
"""
from __future__ import annotations

import math

import torch

from ganfast import functional
from ganfast.app import nets
from ganfast.app.config import TrainConfig
from ganfast.app.datasets import ImageSet
from ganfast.app.run import fixed_noise
from ganfast.random import DATA_ORDER_SHIFT, FIXED_NOISE_SHIFT, PhiloxStream, derived_seed, philox_words
from ganfast.steps import GanSteps, make_optimizer, set_epoch_lr

#: Columns of an image run's metrics, one row per logged iteration.
METRIC_NAMES = ("d_loss_real", "d_loss_fake", "g_loss", "d_real", "d_fake")


def prepare_images(data: ImageSet, cfg: TrainConfig, device=None) -> torch.Tensor:
    """(N, C*H*W) rows scaled to the config's pixel range, in its dtype, on `device`."""
    if data.kind != cfg.data.kind:
        raise ValueError(f"the data set is {data.kind!r} but the config's data.kind is {cfg.data.kind!r}")
    low, high = cfg.data.pixel_range
    x = data.images.reshape(len(data), -1).to(device=device, dtype=cfg.torch_dtype)
    return x * (high - low) + low if (low, high) != (0.0, 1.0) else x.contiguous()


def grid_noise(cfg: TrainConfig, n: int, device=None) -> torch.Tensor:
    """The fixed noise batch every sample grid of a run is drawn from."""
    return fixed_noise(cfg, n, FIXED_NOISE_SHIFT, device)


class ImageTrainer:
    """G, D, their optimizers and the data set of one image GAN; `train_epoch` runs a pass."""

    def __init__(self, cfg: TrainConfig, data: ImageSet, *, backend: str = "auto", device=None):
        if not cfg.is_image:
            raise ValueError(f"ImageTrainer needs an image config, got data.kind {cfg.data.kind!r}")
        self.cfg, self.device = cfg, torch.device(device or "cpu")
        self.x = prepare_images(data, cfg, self.device)
        self.n_images, self.source = self.x.shape[0], data.source
        need = cfg.batch_size * cfg.d_steps
        if self.n_images < need:
            raise ValueError(f"the {data.kind} data set has {self.n_images} images, fewer than one "
                             f"iteration takes (batch_size {cfg.batch_size} x d_steps {cfg.d_steps} = {need})")
        self.iterations_per_epoch = self.n_images // need
        self.stream = PhiloxStream(cfg.seed)
        init = torch.Generator().manual_seed(cfg.seed)
        kw = dict(backend=backend, stream=self.stream, dtype=cfg.torch_dtype, device=self.device, generator=init)
        self.G = nets.build_net(cfg, "generator", **kw)
        self.D = nets.build_net(cfg, "discriminator", **kw)
        self.rng_state = init.get_state()  # continues where the init left off: nn.Dropout's draws
        self.d_opt = make_optimizer(cfg.optimizer_d, self.D.parameters(), cfg.optimizer_d.lr, fused=True)
        self.g_opt = make_optimizer(cfg.optimizer_g, self.G.parameters(), cfg.optimizer_g.lr, fused=True)
        # nonfinite_ok: a NaN must reach the divergence check at the next row (train_epoch), not
        # make nn.BCELoss raise on the PyTorch nets (bce_with_nan is nn.BCELoss on finite input).
        self.steps = GanSteps(self.G, self.D, self.d_opt, self.g_opt, cfg.loss.generator, nonfinite_ok=True)
        self.epoch = 0
        self.iteration = 0
        self.diverged = -1  # the epoch in which a parameter or loss became NaN or infinite

    # --- batches -------------------------------------------------------------------------
    def _order(self, epoch: int) -> torch.Tensor:
        words = philox_words(derived_seed(self.cfg.seed, DATA_ORDER_SHIFT), epoch * self.n_images, self.n_images)
        return torch.argsort(words, stable=True).to(self.device)

    def _noise(self) -> torch.Tensor:
        n, z = self.cfg.batch_size, self.cfg.noise
        offset = self.stream.take(functional.noise_words(z, n))
        return functional.noise(z, n, self.stream.seed, offset, dtype=self.cfg.torch_dtype, device=self.device)

    # --- training ------------------------------------------------------------------------
    def train_epoch(self, on_iteration=None) -> list:
        """One pass over the data set; returns a metrics row (dict) for every `log_every`-th
        iteration and the epoch's last. `on_iteration(done, total)` is called after each.

        At every row the losses and the parameters are checked: a NaN or infinite one sets
        `diverged` to the epoch and ends the pass there (the row is the last), so a diverged run
        stops within `log_every` iterations instead of training on NaNs (or on saturated losses
        that look finite: an infinite weight gives D(x) = 1 and a loss of 100)."""
        cfg, b = self.cfg, self.cfg.batch_size
        order = self._order(self.epoch)
        rows, pos = [], 0
        self.G.train()
        self.D.train()
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state)

            def real():
                nonlocal pos
                idx = order[pos:pos + b]
                pos += b
                return self.x[idx]

            for i in range(self.iterations_per_epoch):
                for _ in range(cfg.d_steps):
                    loss_real, loss_fake, d_real, _ = self.steps.d_step(real, self._noise)
                g_loss = d_fake = None
                for _ in range(cfg.g_steps):
                    g_loss, _, d_fake = self.steps.g_step(self._noise)
                self.iteration += 1
                if self.iteration % cfg.log_every == 0 or i == self.iterations_per_epoch - 1:
                    rows.append(self._row(loss_real, loss_fake, g_loss, d_real, d_fake))
                    if not self._finite((loss_real, loss_fake, g_loss)):
                        self.diverged = self.epoch + 1
                if on_iteration is not None:
                    on_iteration(i + 1, self.iterations_per_epoch)
                if self.diverged >= 0:
                    break
            self.rng_state = torch.get_rng_state()
        self.epoch += 1
        for opt, o in ((self.d_opt, cfg.optimizer_d), (self.g_opt, cfg.optimizer_g)):
            set_epoch_lr(opt, o, o.lr, self.epoch)  # StepLR: the next epoch's learning rate
        return rows

    def _row(self, loss_real, loss_fake, g_loss, d_real, d_fake) -> dict:
        def num(t):
            return math.nan if t is None else float(t.double().mean())
        values = (loss_real, loss_fake, g_loss, d_real, d_fake)
        return {"epoch": self.epoch + 1, "iteration": self.iteration,
                **{k: num(v) for k, v in zip(METRIC_NAMES, values)}}

    @torch.no_grad()
    def _finite(self, losses) -> bool:
        """The losses computed (None: not this iteration, g_steps 0) and every parameter of G
        and D are finite (one reduction per tensor, at the rows only: a few per epoch)."""
        tensors = [t for t in losses if t is not None] + [p for net in (self.G, self.D) for p in net.parameters()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    @torch.no_grad()
    def generate(self, noise: torch.Tensor) -> torch.Tensor:
        """G in eval mode on `noise`: images (n, C, H, W) with pixels mapped back to [0, 1]."""
        was = self.G.training
        self.G.eval()
        try:
            x = self.G(noise.to(self.device, self.cfg.torch_dtype))
        finally:
            self.G.train(was)
        low, high = self.cfg.data.pixel_range
        return ((x - low) / (high - low)).reshape(-1, *self.cfg.data.image_shape)

    # --- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything training goes on from (references to the live tensors: copy to keep)."""
        return {"generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
                "optimizer_d": self.d_opt.state_dict(), "optimizer_g": self.g_opt.state_dict(),
                "stream": [self.stream.seed, self.stream.offset], "rng_state": self.rng_state.clone(),
                "epoch": self.epoch, "iteration": self.iteration, "diverged": self.diverged}

    def load_state_dict(self, state: dict) -> None:
        try:
            self.G.load_state_dict(state["generator"])
            self.D.load_state_dict(state["discriminator"])
            self.d_opt.load_state_dict(state["optimizer_d"])
            self.g_opt.load_state_dict(state["optimizer_g"])
            self.stream.seed, self.stream.offset = (int(v) for v in state["stream"])
            self.rng_state = state["rng_state"].clone()
            self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
            self.diverged = int(state.get("diverged", -1))  # absent in checkpoints from before it
        except (KeyError, TypeError) as e:
            raise ValueError(f"not the state of an image trainer ({type(e).__name__}: {e})") from None
