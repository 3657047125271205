"""Tests of ganfast.app.nets: which module runs each net of a config, shapes, inits, messages."""
import pytest
import torch
from torch import nn

import ganfast
from conftest import requires_ext
from ganfast.app import nets
from ganfast.app.config import load_preset


def build(cfg, role, seed=0, **kw):
    return nets.build_net(cfg, role, generator=torch.Generator().manual_seed(seed), **kw)


def test_digits_nets_are_flat_mlps():
    cfg = load_preset("digits-mlp")
    G, D = build(cfg, "generator"), build(cfg, "discriminator")
    assert isinstance(G, ganfast.Generator) and isinstance(D, ganfast.Discriminator)
    assert G.spec.widths == (32, 256, 256, 64) and D.spec.widths == (64, 256, 256, 1)
    assert D.spec.dropout == 0.3 and D.spec.layer_act_params[0] == 0.2


@requires_ext
def test_auto_picks_fused_where_it_fits():
    cfg = load_preset("digits-mlp")
    assert nets.backend_of(build(cfg, "generator")) == "fused"
    assert nets.describe(build(cfg, "generator")) == "fused MLP 32-256-256-64"
    assert nets.describe(build(cfg, "generator", backend="torch")) == (
        "PyTorch MLP 32-256-256-64 (requested backend 'torch')")
    assert nets.why_not_fused(cfg, "generator", "cpu") is None


def test_wide_mlp_runs_in_pytorch_and_says_why():
    cfg = load_preset("mnist-mlp")
    D = build(cfg, "discriminator")
    assert isinstance(D, ganfast.Discriminator) and nets.backend_of(D) == "torch"
    assert "wider than the fused kernels' limit of 256" in nets.describe(D)
    assert "wider than" in nets.why_not_fused(cfg, "discriminator", "cpu")
    x = torch.rand(3, 784)
    assert D(x).shape == (3, 1)


def test_virtuo_generator_has_batchnorm():
    cfg = load_preset("virtuo")
    G = build(cfg, "generator")
    kinds = [type(m) for m in G]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU] * 3 + [nn.Linear, nn.Tanh]
    assert [m.out_features for m in G if isinstance(m, nn.Linear)] == [256, 512, 1024, 784]
    assert G[2].negative_slope == 0.2
    assert "BatchNorm1d" in nets.describe(G) and nets.backend_of(G) == "torch"
    assert "BatchNorm" in nets.why_not_fused(cfg, "generator", "cpu")
    out = G(torch.randn(4, 784))
    assert out.shape == (4, 784) and bool((out.abs() <= 1).all())


def test_dcgan_shapes_and_init():
    cfg = load_preset("dcgan")
    G, D = build(cfg, "generator"), build(cfg, "discriminator")
    x = G(torch.randn(2, 100))
    assert x.shape == (2, 3072) and bool((x.abs() <= 1).all())
    p = D(x)
    assert p.shape == (2, 1) and bool(((p > 0) & (p < 1)).all())
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 3]
    w = torch.cat([c.weight.detach().flatten() for c in convs])
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    assert "conv net" in nets.why_not_fused(cfg, "discriminator", "cpu")


def test_cifar_conv_discriminator_shapes():
    cfg = load_preset("cifar-conv")
    D = build(cfg, "discriminator")
    assert [m.out_channels for m in D if isinstance(m, nn.Conv2d)] == [32, 32, 192]
    assert D(torch.rand(2, 3072)).shape == (2, 1)


def test_init_is_seeded_and_leaves_global_rng_alone():
    cfg = load_preset("virtuo")
    before = torch.get_rng_state()
    a, b, c = build(cfg, "generator", 1), build(cfg, "generator", 1), build(cfg, "generator", 2)
    assert torch.equal(torch.get_rng_state(), before)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_dcgan_init_on_flat_mlp():
    cfg = load_preset("digits-mlp").replace({"generator.init": "dcgan"})
    G = build(cfg, "generator")
    w = torch.cat([G.params.detach()[ws] for ws, _, _ in G.spec.layer_slices()])
    assert abs(float(w.std()) - 0.02) < 0.002


def test_bad_role():
    with pytest.raises(ValueError, match="role must be 'generator' or 'discriminator'"):
        nets.build_net(load_preset("digits-mlp"), "critic")
