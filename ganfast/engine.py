"""The fused training engine's Python front: one call of torch.ops.ganfast.gan_train_ trains
every member of a population for a number of epochs, in place on a GanState.
"""
from __future__ import annotations

import itertools

import torch

from ganfast import _ext, functional
from ganfast.config import TrainConfig
from ganfast.state import GanState

#: Columns of the metrics a training call returns, one row per member.
METRIC_NAMES = ("d_loss_real", "d_loss_fake", "g_loss", "fake_mean", "fake_std")

_NOISE_KINDS = {"uniform": 0, "normal": 1}
_D_INPUTS = {"raw": 0, "moments": 1}
_G_LOSSES = {"non_saturating": 0, "minimax": 1}
_OPTIMIZERS = {"sgd": 0, "adam": 1}


def _optimizer_args(o) -> list:
    step = o.step_lr
    return [float(o.momentum), float(o.betas[0]), float(o.betas[1]), float(o.eps),
            float(step.step_size if step else 0), float(step.gamma if step else 1.0)]


def op_arguments(cfg: TrainConfig) -> list:
    """The scalar arguments of gan_train_ for a config, in schema order (csrc/ops.cpp)."""
    g, d = cfg.g_spec, cfg.d_spec
    noise = cfg.noise
    centers, std, weights = cfg.data.components()
    cum = list(itertools.accumulate(float(w) for w in weights))
    noise_a, noise_b = (noise.low, noise.high) if noise.kind == "uniform" else (noise.mean, noise.std)
    return [
        list(g.widths), g.layer_act_codes, g.layer_act_params, g.dropout,
        list(d.widths), d.layer_act_codes, d.layer_act_params, d.dropout,
        _D_INPUTS[cfg.discriminator.input],
        _NOISE_KINDS[noise.kind], noise.dim, float(noise_a), float(noise_b),
        cfg.data.dim, [float(v) for c in centers for v in c], cum, [float(s) for s in std],
        cfg.batch_size, cfg.d_steps, cfg.g_steps, _G_LOSSES[cfg.loss.generator],
        [_OPTIMIZERS[cfg.optimizer_d.kind], _OPTIMIZERS[cfg.optimizer_g.kind]],
        _optimizer_args(cfg.optimizer_d), _optimizer_args(cfg.optimizer_g),
    ]


def fused_unavailable_reason(cfg: TrainConfig, device) -> str | None:
    """Why the fused engine cannot train this config here, or None."""
    for spec in (cfg.g_spec, cfg.d_spec):
        reason = functional.fused_unavailable_reason(spec, device, cfg.torch_dtype)
        if reason is not None:
            return reason
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        return f"the fused engine has kernels for CPU and CUDA devices, not {kind}"
    if kind == "cuda" and not _ext.WITH_CUDA:  # (functional's check says so first; kept explicit)
        return "ganfast was built without its CUDA kernels (rebuild with a CUDA torch and nvcc)"
    return None


def train_fused(cfg: TrainConfig, state: GanState, epochs: int) -> torch.Tensor:
    """Train every member for `epochs` epochs in place; returns the (P, 5) metrics (float64)
    of the last epoch, columns METRIC_NAMES, on the state's device.

    The engine runs where the state lives: on the CPU, or on a CUDA device when the extension
    was built with CUDA (`init_state(cfg, device="cuda")` or `state.to("cuda")`). Every tensor
    of the state, the int64 counters (offsets, epochs, seeds) and the lrs included, must be on
    that one device: the CUDA kernel reads and advances the counters on the device, so a whole
    call never synchronises with the host except for one check of the seeds."""
    _ext.require("the fused training engine")
    s = state
    devices = {t.device for t in s.tensors().values()}
    if len(devices) != 1:
        raise ValueError(f"ganfast: every GanState tensor must be on one device, got {sorted(map(str, devices))};"
                         " move the whole state with state.to(device)")
    device = s.g_params.device
    if device.type == "cuda" and not _ext.WITH_CUDA:
        raise RuntimeError("ganfast: the state is on a CUDA device but the extension was built without CUDA "
                           "kernels; rebuild with a CUDA build of torch and nvcc, or use state.to('cpu')")
    return torch.ops.ganfast.gan_train_(
        s.g_params, s.d_params, s.g_opt, s.d_opt, s.offsets, s.epochs, s.seeds, s.lrs,
        *op_arguments(cfg), int(epochs),
    )
