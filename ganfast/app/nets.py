"""The networks of a training config, for the image presets: which module runs each net.

An MLP without BatchNorm is a ganfast `Generator` / `Discriminator` on one flat parameter, so
`backend="auto"` runs the fused op when its widths fit (ganfast.MAX_WIDTH) and PyTorch when they
do not. BatchNorm MLPs (VirtuoGAN) and how-to-gan's conv nets are plain nn.Sequential models:
the fused op has neither. Every net takes and returns flat rows, (N, C*H*W) images, so the
training step is the same for all of them; the conv nets reshape inside.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ganfast import functional
from ganfast.app.config import NetConfig, TrainConfig
from ganfast.modules import MLP, Discriminator, Generator
from ganfast.random import PhiloxStream
from ganfast.reference import activation_module


def _mlp_layers(net: NetConfig, widths: tuple) -> list:
    """Linear (+ BatchNorm1d) + activation (+ Dropout) per hidden layer, then the output layer."""
    spec = net.spec(widths[0], widths[-1])
    hidden_act, out_act = spec.layer_act_params[0], spec.layer_act_params[-1]
    layers = []
    for i, o in zip(widths[:-2], widths[1:-1]):
        layers.append(nn.Linear(i, o))
        if net.batchnorm:
            layers.append(nn.BatchNorm1d(o))
        layers.append(activation_module(spec.activation, hidden_act))
        if net.dropout:
            layers.append(nn.Dropout(net.dropout))
    layers += [nn.Linear(widths[-2], widths[-1]), activation_module(spec.output_activation, out_act)]
    return layers


def _cifar_conv(role: str, z_dim: int, shape: tuple) -> list:
    """how-to-gan's gan_cifar10_conv.py nets (32x32 images)."""
    c = shape[0]
    if role == "generator":  # two 8000-wide layers, then one transposed conv 10x10 -> 32x32
        return [nn.Linear(z_dim, 8000), nn.ReLU(), nn.Linear(8000, 8000), nn.ReLU(),
                nn.Unflatten(1, (80, 10, 10)), nn.ConvTranspose2d(80, c, 5, stride=3), nn.Sigmoid()]
    return [nn.Unflatten(1, shape),
            nn.Conv2d(c, 32, 8, stride=2, padding=3), nn.ReLU(), nn.Dropout(),
            nn.Conv2d(32, 32, 8, stride=2, padding=3), nn.ReLU(), nn.Dropout(),
            nn.Conv2d(32, 192, 5, stride=2, padding=2), nn.ReLU(), nn.Dropout(),
            nn.Flatten(), nn.Linear(4 * 4 * 192, 500), nn.ReLU(), nn.Dropout(),
            nn.Linear(500, 1), nn.Sigmoid()]


def _dcgan(role: str, z_dim: int, shape: tuple, base: int = 128) -> list:
    """how-to-gan's dcgan_cifar10.py nets (32x32 images; activation before BatchNorm, as there)."""
    c = shape[0]
    if role == "generator":
        def up(i, o):
            return [nn.ConvTranspose2d(i, o, 3, stride=2, padding=1, output_padding=1)]
        return [nn.Unflatten(1, (z_dim, 1, 1)),
                nn.ConvTranspose2d(z_dim, 4 * base, 4), nn.ReLU(), nn.BatchNorm2d(4 * base),   # 4x4
                *up(4 * base, 2 * base), nn.ReLU(), nn.BatchNorm2d(2 * base),                  # 8x8
                *up(2 * base, base), nn.ReLU(), nn.BatchNorm2d(base),                          # 16x16
                *up(base, c), nn.Tanh()]                                                       # 32x32
    return [nn.Unflatten(1, shape),
            nn.Conv2d(c, base, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.BatchNorm2d(base),
            nn.Conv2d(base, 2 * base, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.BatchNorm2d(2 * base),
            nn.Conv2d(2 * base, 4 * base, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.BatchNorm2d(4 * base),
            nn.Conv2d(4 * base, 1, 4), nn.Flatten(), nn.Sigmoid()]


def _dcgan_init(module: nn.Module, generator: torch.Generator) -> None:
    """DCGAN's init, as how-to-gan applies it: conv (and linear) weights ~ N(0, 0.02)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.normal_(0.0, 0.02, generator=generator)


def build_net(cfg: TrainConfig, role: str, *, backend: str = "auto", stream: PhiloxStream | None = None,
              dtype=torch.float32, device=None, generator: torch.Generator | None = None) -> nn.Module:
    """G (noise.dim -> data.dim) or D (data.dim -> 1) of `cfg`, initialised from `generator`.

    `backend` ("auto" | "fused" | "torch") applies to the flat-parameter MLPs; the others are
    PyTorch whatever it says ("fused" for them is an error, see `why_not_fused`).
    `stream` feeds the flat MLPs' dropout masks (Philox)."""
    if role not in ("generator", "discriminator"):
        raise ValueError(f"role must be 'generator' or 'discriminator', got {role!r}")
    net: NetConfig = getattr(cfg, role)
    z_dim, dim = cfg.noise.dim, cfg.data.dim
    if net.is_fused_mlp:
        cls, spec = (Generator, cfg.g_spec) if role == "generator" else (Discriminator, cfg.d_spec)
        module: nn.Module = cls.from_spec(spec, backend=backend, stream=stream or PhiloxStream(cfg.seed),
                                          dtype=dtype, device=device, generator=generator)
        if net.init == "dcgan":
            with torch.no_grad():
                for w, shape, _ in spec.layer_slices():
                    module.params[w].normal_(0.0, 0.02, generator=generator)
        return module
    shape = cfg.data.image_shape
    # nn layers draw their default init from torch's global RNG while they are constructed:
    # construct them on `generator`'s state, leaving the caller's global RNG as it was
    fork = torch.random.fork_rng(devices=[]) if generator is not None else contextlib.nullcontext()
    with fork:
        if generator is not None:
            torch.set_rng_state(generator.get_state())
        if net.arch == "mlp":
            widths = (z_dim, *net.hidden, dim) if role == "generator" else (dim, *net.hidden, 1)
            layers = _mlp_layers(net, widths)
        else:
            layers = (_cifar_conv if net.arch == "cifar_conv" else _dcgan)(role, z_dim, shape)
        if generator is not None:
            generator.set_state(torch.get_rng_state())
    if role == "generator" and net.arch != "mlp":
        layers.append(nn.Flatten())
    module = nn.Sequential(*layers)
    if net.init == "dcgan":
        _dcgan_init(module, generator)
    return module.to(device=device, dtype=dtype)


def backend_of(module: nn.Module) -> str:
    """What runs a net: 'fused' or 'torch'."""
    return module.backend_in_use if isinstance(module, MLP) else "torch"


def describe(module: nn.Module) -> str:
    """One line on what runs a net and why, for the CLI."""
    if isinstance(module, MLP):
        widths = "-".join(map(str, module.spec.widths))
        used = module.backend_in_use
        if used == "fused":
            return f"fused MLP {widths}"
        reason = functional.fused_unavailable_reason(module.spec, module.params.device, module.params.dtype)
        why = f"requested backend {module.backend!r}" if module.backend == "torch" else reason
        return f"PyTorch MLP {widths} ({why})"
    kinds = sorted({type(m).__name__ for m in module.modules()
                    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Conv2d, nn.ConvTranspose2d))})
    n = sum(p.numel() for p in module.parameters())
    return f"PyTorch nn.Sequential, {n:,} parameters ({', '.join(kinds)}: no fused kernel for these)"


def why_not_fused(cfg: TrainConfig, role: str, device) -> str | None:
    """Why `--backend fused` cannot run this net of the config, or None: conv nets and BatchNorm
    here, the rest in ganfast.functional.fused_unavailable_reason."""
    net: NetConfig = getattr(cfg, role)
    if net.arch != "mlp":
        return f"the {role} is a conv net (arch {net.arch!r}); the fused op runs MLPs"
    if net.batchnorm:
        return f"the {role} uses BatchNorm, which the fused op does not have"
    spec = cfg.g_spec if role == "generator" else cfg.d_spec
    return functional.fused_unavailable_reason(spec, device, cfg.torch_dtype)
