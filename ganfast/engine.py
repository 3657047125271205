"""The fused training engine's Python front: one call of torch.ops.ganfast.gan_train_ trains
every member of a population for a number of epochs, in place on a GanState.

The GAN's description (a GanSpec) reaches C++ as one float64 tensor, packed here once per spec
(`description`, cached) and checked by the C++ reader when it is packed; its layout is in
csrc/engine_args.h. A new field is one entry in `description_fields` and one read there.
"""
from __future__ import annotations

import functools
import itertools

import torch

from ganfast import _ext
from ganfast.gan import D_INPUTS, G_LOSSES, NOISE_KINDS, OPTIMIZERS, GanSpec, OptimizerSpec, as_gan_spec
from ganfast.state import GanState, check_epochs

#: Columns of the metrics a training call returns, one row per member.
METRIC_NAMES = ("d_loss_real", "d_loss_fake", "g_loss", "fake_mean", "fake_std")

DESC_MAGIC = 0x6A4E5  # csrc/engine_args.h: kDescMagic, kDescVersion
DESC_VERSION = 1


def _optimizer(prefix: str, o: OptimizerSpec) -> dict:
    step = o.step_lr
    return {f"{prefix}_kind": OPTIMIZERS.index(o.kind), f"{prefix}_momentum": o.momentum,
            f"{prefix}_beta1": o.betas[0], f"{prefix}_beta2": o.betas[1], f"{prefix}_eps": o.eps,
            f"{prefix}_step_size": step.step_size if step else 0, f"{prefix}_gamma": step.gamma if step else 1.0}


def description_fields(spec: GanSpec) -> dict:
    """The fields of the engine's description, in the layout's order (csrc/engine_args.h): a
    number is one value, a list is written as its length and its values."""
    g, d, noise, data = spec.g, spec.d, spec.noise, spec.data
    return {
        "g_widths": list(g.widths), "g_acts": g.layer_act_codes, "g_act_params": g.layer_act_params,
        "g_dropout": g.dropout,
        "d_widths": list(d.widths), "d_acts": d.layer_act_codes, "d_act_params": d.layer_act_params,
        "d_dropout": d.dropout,
        "d_input": D_INPUTS.index(spec.d_input),
        "noise_kind": NOISE_KINDS.index(noise.kind), "noise_dim": noise.dim,
        "noise_a": noise.params[0], "noise_b": noise.params[1],
        "data_dim": data.dim, "data_centers": [v for c in data.centers for v in c],
        "data_cum_weights": list(itertools.accumulate(data.weights)), "data_std": list(data.std),
        "batch": spec.batch_size, "d_steps": spec.d_steps, "g_steps": spec.g_steps,
        "g_loss": G_LOSSES.index(spec.g_loss),
        **_optimizer("opt_d", spec.optimizer_d), **_optimizer("opt_g", spec.optimizer_g),
    }


def pack(fields: dict) -> torch.Tensor:
    """The description tensor of `fields` (description_fields' form): header, then the values."""
    values = [DESC_MAGIC, DESC_VERSION, 0]
    for v in fields.values():
        values += [len(v), *v] if isinstance(v, (list, tuple)) else [v]
    values[2] = len(values)
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


@functools.lru_cache(maxsize=64)
def description(spec: GanSpec) -> torch.Tensor:
    """The engine's description of `spec` (cached per spec; do not modify it). With the extension
    loaded, its C++ reader checks it here, so a description the engine cannot read fails now."""
    desc = pack(description_fields(spec))
    if _ext.AVAILABLE:
        torch.ops.ganfast.gan_check_description(desc)
    return desc


def train_fused(spec, state: GanState, epochs: int) -> torch.Tensor:
    """Train every member for `epochs` epochs in place; returns the (P, 5) metrics (float64)
    of the last epoch, columns METRIC_NAMES, on the state's device. `spec`: a GanSpec, or a
    config with `.gan_spec`. A member whose parameters become NaN or infinite is frozen and
    marked in `state.diverged` (its metrics are NaN); the others train on.

    The engine runs where the state lives: on the CPU, or on a CUDA device when the extension
    was built with CUDA (`init_state(spec, device="cuda")` or `state.to("cuda")`). Every tensor
    of the state, the int64 counters (offsets, epochs, seeds) and the lrs included, must be on
    that one device: the CUDA kernel reads and advances the counters on the device, so a whole
    call never synchronises with the host except for one check of the seeds."""
    _ext.require("the fused training engine")
    epochs = check_epochs(epochs)
    desc = description(as_gan_spec(spec))
    s = state
    devices = {t.device for t in s.tensors().values()}
    if len(devices) != 1:
        raise ValueError(f"ganfast: every GanState tensor must be on one device, got {sorted(map(str, devices))};"
                         " move the whole state with state.to(device)")
    device = s.g_params.device
    if device.type == "cuda" and not _ext.WITH_CUDA:
        raise RuntimeError("ganfast: the state is on a CUDA device but the extension was built without CUDA "
                           "kernels; rebuild with a CUDA build of torch and nvcc, or use state.to('cpu')")
    return torch.ops.ganfast.gan_train_(s.g_params, s.d_params, s.g_opt, s.d_opt, s.offsets, s.epochs, s.diverged,
                                        s.seeds, s.lrs, desc, epochs)
