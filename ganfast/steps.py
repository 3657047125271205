"""The D and G updates of a GAN, the seeds' way, for any pair of nn.Modules: nn.BCELoss, D trained
on real -> 1 and fake -> 0, G on the non-saturating target 1 (or the minimax -log(1 - D(G(z)))),
each a torch.optim step. The toy reference trainer (ganfast.reference_train) and the image
trainer (ganfast.app.image_train) both train with these; they differ in where batches come from.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ganfast.gan import OptimizerSpec


class GanSteps:
    """One D update and one G update.

    `real` and `noise` are called for each batch, in the order the step needs them, so a
    shared random stream is consumed in the same order as the fused engine's."""

    def __init__(self, G: nn.Module, D: nn.Module, d_opt, g_opt, generator_loss: str, features=None,
                 nonfinite_ok: bool = False):
        self.G, self.D, self.d_opt, self.g_opt = G, D, d_opt, g_opt
        self.minimax = generator_loss == "minimax"
        self.features = features if features is not None else (lambda x: x)
        # nn.BCELoss raises on a NaN input; nonfinite_ok (the toy oracle, which must follow a
        # diverging member as the engine does) lets NaN flow through instead (bce_with_nan).
        self.criterion = bce_with_nan if nonfinite_ok else nn.BCELoss()

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
        with frozen(self.D):
            d_fake = self.D(self.features(fake))
        if self.minimax:  # minimise log(1 - D(G(z)))
            g_error = -self.criterion(d_fake, torch.zeros_like(d_fake))
        else:  # non-saturating: maximise log D(G(z)), as every seed does
            g_error = self.criterion(d_fake, torch.ones_like(d_fake))
        g_error.backward()
        self.g_opt.step()
        return g_error.detach(), fake.detach(), d_fake.detach()


class _BCEWithNaN(torch.autograd.Function):
    """nn.BCELoss's mean loss and gradient (logs clamped at -100, the gradient's denominator at
    1e-12), written so that a NaN input gives a NaN loss and NaN gradients instead of an error:
    the formulas of the engine's bce_term / bce_grad (csrc/core/gan_step.h)."""

    @staticmethod
    def forward(ctx, p, y):
        ctx.save_for_backward(p, y)
        lp, l1p = torch.log(p).clamp(min=-100), torch.log(1 - p).clamp(min=-100)
        return ((y - 1) * l1p - y * lp).mean()

    @staticmethod
    def backward(ctx, grad):
        p, y = ctx.saved_tensors
        return grad * (p - y) / ((1 - p) * p).clamp(min=1e-12) / p.numel(), None


def bce_with_nan(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """nn.BCELoss()(p, y) for a finite p (the same call); the NaN-propagating formula otherwise."""
    if bool(torch.isfinite(p).all()):
        return nn.functional.binary_cross_entropy(p, y)
    return _BCEWithNaN.apply(p, y)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """requires_grad off for the module's parameters that had it, for the forward passes inside."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def make_optimizer(o: OptimizerSpec, params, lr: float, fused: bool = False):
    """torch.optim optimizer of an OptimizerSpec. fused=True takes torch's single-kernel
    implementation (same update, rounded differently; about 2x faster on a 100k-value
    parameter): the image trainer's choice. The toy oracle keeps torch's default."""
    kw = {"fused": True} if fused else {}
    if o.kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=o.momentum, **kw)
    return torch.optim.Adam(params, lr=lr, betas=tuple(o.betas), eps=o.eps, **kw)


def set_epoch_lr(opt, o: OptimizerSpec, base: float, epoch: int) -> None:
    """Set the optimizer's learning rate to that of `epoch` under o's StepLR schedule (closed
    form, OptimizerSpec.lr_at: the values torch's StepLR steps to, without replaying it)."""
    lr = o.lr_at(base, epoch)
    for group in opt.param_groups:
        group["lr"] = lr
