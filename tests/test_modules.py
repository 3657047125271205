"""Generator / Discriminator (ganfast/modules.py): construction, nn.Linear-compatible init,
backends that agree (float64 to 1e-12 relative to the max magnitude), a state_dict shared by
every backend, nn.Sequential export/import, the dropout stream position, optimizer steps."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import ganfast
from conftest import DEVICES, assert_close_rel, requires_ext
from ganfast import reference
from ganfast.random import PhiloxStream
from ganfast.spec import MLPSpec

F64 = torch.float64


def _x(n, d, seed=0, dtype=F64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _pair(cls, widths, **kwargs):
    """The same network under backend='fused' and backend='torch' (same parameters and stream)."""
    fused = cls(widths, backend="fused", **kwargs)
    torch_ = cls(widths, backend="torch", **kwargs)
    torch_.load_state_dict(fused.state_dict())
    return fused, torch_


# --- construction --------------------------------------------------------------------------

def test_generator_and_discriminator_defaults():
    G = ganfast.Generator([1, 5, 5, 1])
    D = ganfast.Discriminator([4, 10, 10, 1])
    assert G.spec == MLPSpec((1, 5, 5, 1), "relu", "identity")
    assert D.spec == MLPSpec((4, 10, 10, 1), "relu", "sigmoid")
    for m, n_params in ((G, 5 * 2 + 5 * 6 + 1 * 6), (D, 10 * 5 + 10 * 11 + 1 * 11)):
        assert isinstance(m.params, nn.Parameter) and m.params.requires_grad
        assert m.params.shape == (n_params,) and m.params.dtype == torch.float32
        assert [name for name, _ in m.named_parameters()] == ["params"]
        assert m.backend == "auto" and m.seed == 0 and m.rng_offset == 0 and m.training
    y = D(torch.randn(6, 4))
    assert y.shape == (6, 1) and bool(((y > 0) & (y < 1)).all())
    assert G(torch.randn(6, 1)).shape == (6, 1)


def test_construction_options():
    G = ganfast.Generator([2, 8, 3], "leaky_relu", "tanh", 0.25, activation_param=0.2, seed=2**40 + 1,
                          dtype=F64, backend="torch")
    assert G.spec == MLPSpec((2, 8, 3), "leaky_relu", "tanh", 0.25, 0.2)
    assert G.params.dtype == F64 and G.seed == 2**40 + 1 and G.backend == "torch"
    D = ganfast.Discriminator([3, 4, 1], output_activation="identity")
    assert D.spec.output_activation == "identity"
    assert "widths=[2, 8, 3]" in repr(G) and "dropout=0.25" in repr(G)
    clone = ganfast.Generator.from_spec(G.spec, dtype=F64)
    # the same network (from_spec passes the resolved parameters, so the stored
    # activation_param fields may read 0.0 where the original has None)
    for attr in ("widths", "activation", "output_activation", "dropout", "layer_act_params"):
        assert getattr(clone.spec, attr) == getattr(G.spec, attr), attr


def test_unknown_backend_raises_at_construction():
    with pytest.raises(ValueError, match=r"backend must be one of auto, fused, torch, got 'cuda'"):
        ganfast.Generator([1, 5, 1], backend="cuda")


@pytest.mark.parametrize("kwargs", [dict(activation="swish"), dict(output_activation="Softmax")])
def test_unknown_activation_raises_naming_the_choices(kwargs):
    with pytest.raises(ValueError, match=r"unknown activation '(swish|Softmax)'; choose one of "
                                         r"elu, identity, leaky_relu, relu, sigmoid, tanh"):
        ganfast.Discriminator([2, 4, 1], **kwargs)


def test_bad_network_raises_at_construction():
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        ganfast.Generator([1, 4, 1], dropout=1.0)
    with pytest.raises(ValueError, match=r"leaky_relu needs a parameter > 0"):
        ganfast.Generator([1, 4, 1], "leaky_relu", activation_param=0.0)
    with pytest.raises(ValueError, match=r"every width must be an integer >= 1"):
        ganfast.Generator([1, 0, 1])
    # float16 would build and then fail at every forward call (issue 13): refused here
    with pytest.raises(TypeError, match=r"dtype must be torch.float32 or torch.float64, got torch.float16"):
        ganfast.Generator([1, 4, 1], dtype=torch.float16)
    with pytest.raises(ValueError, match=r"activation_param: activation 'tanh' takes no parameter"):
        ganfast.Discriminator([2, 4, 1], "tanh", activation_param=0.3)


# --- initialisation --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("cls,widths", [(ganfast.Generator, (1, 5, 5, 1)), (ganfast.Discriminator, (4, 10, 10, 1)),
                                        (ganfast.Generator, (3, 7, 2)), (ganfast.Discriminator, (5, 1))])
def test_init_is_bitwise_nn_linear_under_the_same_seed(cls, widths, dtype):
    torch.manual_seed(321)
    module = cls(widths, dtype=dtype)
    torch.manual_seed(321)
    linears = [nn.Linear(i, o, dtype=dtype) for i, o in zip(widths[:-1], widths[1:])]
    exported = [m for m in module.to_sequential() if isinstance(m, nn.Linear)]
    assert len(exported) == len(linears)
    for got, want in zip(exported, linears):
        assert torch.equal(got.weight, want.weight) and torch.equal(got.bias, want.bias)
    assert torch.equal(module.params.detach(), reference.flat_from_sequential(nn.Sequential(*linears), module.spec))


# --- backends agree ------------------------------------------------------------------------

@requires_ext
def test_backend_in_use():
    assert ganfast.Generator([1, 5, 5, 1]).backend_in_use == "fused"
    assert ganfast.Generator([1, 5, 5, 1], dtype=F64).backend_in_use == "fused"
    assert ganfast.Generator([1, 5, 5, 1], backend="torch").backend_in_use == "torch"
    assert ganfast.Generator([1, 256, 1]).backend_in_use == "fused"
    assert ganfast.Generator([1, 300, 1]).backend_in_use == "torch"
    assert ganfast.Generator([1] + [2] * 16 + [1]).backend_in_use == "torch"  # 17 layers > 16


@requires_ext
def test_fused_backend_on_a_too_wide_net_raises_at_forward():
    G = ganfast.Generator([2, 300, 1], backend="fused")  # construction only checks the name
    with pytest.raises(RuntimeError, match=r"backend='fused' cannot run here: a layer is wider than "
                                           r"the fused kernels' limit of 256"):
        G(torch.randn(4, 2))
    auto = ganfast.Generator([2, 300, 1])
    auto.load_state_dict(G.state_dict())
    x = torch.randn(4, 2)
    torch.testing.assert_close(auto(x), auto.to_sequential()(x))  # auto runs it on PyTorch


@requires_ext
@pytest.mark.parametrize("cls,widths,kwargs", [
    (ganfast.Generator, (1, 5, 5, 1), dict(activation="tanh")),
    (ganfast.Discriminator, (4, 10, 10, 1), dict(activation="leaky_relu", activation_param=0.2, dropout=0.3)),
    (ganfast.Generator, (2, 16, 32, 2), dict(activation="elu", activation_param=0.5, dropout=0.5)),
    (ganfast.Discriminator, (3, 1), dict()),
], ids=["G-tanh", "D-lrelu-drop", "G-elu-drop", "D-single"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_forward_and_backward_agree_across_backends(cls, widths, kwargs, train):
    fused, torch_ = _pair(cls, widths, dtype=F64, seed=2**33 + 5, **kwargs)
    fused.train(train)
    torch_.train(train)
    for step in range(2):  # the second pass uses the advanced stream in train mode
        x = _x(50, widths[0], seed=step)
        outs = []
        for m in (fused, torch_):
            m.zero_grad()
            xi = x.clone().requires_grad_()
            y = m(xi)
            y.backward(torch.cos(torch.arange(y.numel(), dtype=F64)).reshape(y.shape))
            outs.append((y.detach(), xi.grad, m.params.grad))
        for a, b, name in zip(*outs, ("output", "grad wrt x", "grad wrt params")):
            assert_close_rel(a, b, 1e-12, what=f"step {step}, {name}")
        assert fused.rng_offset == torch_.rng_offset
    if train and fused.spec.dropout:
        assert fused.rng_offset == 2 * 50 * sum(widths[1:-1])


# --- state_dict --------------------------------------------------------------------------------

@requires_ext
def test_state_dict_is_the_same_under_every_backend():
    sds = []
    for backend in ("fused", "torch", "auto"):
        torch.manual_seed(9)
        sds.append(ganfast.Discriminator([4, 10, 10, 1], dropout=0.5, seed=3, backend=backend).state_dict())
    for sd in sds:
        assert list(sd) == ["params", "_extra_state"]
        assert torch.equal(sd["params"], sds[0]["params"])
        assert sd["_extra_state"] == {"seed": 3, "rng_offset": 0}


@requires_ext
@pytest.mark.parametrize("src,dst", [("fused", "torch"), ("torch", "fused")])
def test_state_dict_loads_across_backends_and_the_dropout_stream_continues(src, dst):
    widths = (2, 12, 12, 1)
    a = ganfast.Discriminator(widths, "tanh", dropout=0.4, seed=77, backend=src, dtype=F64)
    a.train()
    for step in range(3):
        a(_x(20, 2, seed=step))
    assert a.rng_offset == 3 * 20 * 24
    b = ganfast.Discriminator(widths, "tanh", dropout=0.4, seed=0, backend=dst, dtype=F64)
    b.load_state_dict(a.state_dict())
    assert b.seed == 77 and b.rng_offset == a.rng_offset
    assert torch.equal(b.params, a.params)
    b.train()
    x = _x(20, 2, seed=10)
    offset = a.rng_offset
    ya, yb = a(x), b(x)
    assert_close_rel(yb, ya, 1e-12)
    want = reference.mlp_forward(x, a.params.detach(), a.spec, train=True, seed=77, offset=offset)
    assert_close_rel(yb, want, 1e-12)
    assert a.rng_offset == b.rng_offset == offset + 20 * 24
    # and the state saved after that pass differs only in the stream position
    assert b.state_dict()["_extra_state"] == {"seed": 77, "rng_offset": offset + 20 * 24}


def test_state_dict_round_trip_through_torch_save(tmp_path):
    G = ganfast.Generator([1, 5, 5, 1], dropout=0.2, seed=5)
    G.train()
    G(torch.randn(8, 1))
    torch.save(G.state_dict(), tmp_path / "g.pt")
    H = ganfast.Generator([1, 5, 5, 1], dropout=0.2)
    H.load_state_dict(torch.load(tmp_path / "g.pt"))
    assert torch.equal(H.params, G.params) and (H.seed, H.rng_offset) == (5, 8 * (5 + 5))


# --- nn.Sequential export / import ------------------------------------------------------------

@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_to_sequential_matches_module_in_eval_mode(backend, dtype):
    D = ganfast.Discriminator([4, 10, 10, 1], "elu", dropout=0.5, activation_param=0.7, backend=backend, dtype=dtype)
    D.eval()
    seq = D.to_sequential().eval()
    assert any(isinstance(m, nn.Dropout) for m in seq) and isinstance(seq[-1], nn.Sigmoid)
    x = _x(64, 4, dtype=dtype)
    assert_close_rel(D(x), seq(x), 1e-12 if dtype == F64 else 1e-5)
    assert D.rng_offset == 0  # eval mode draws nothing


def test_to_sequential_is_a_copy():
    G = ganfast.Generator([1, 5, 1])
    seq = G.to_sequential()
    with torch.no_grad():
        seq[0].weight.fill_(3.0)
    assert not bool((G.params == 3.0).any())


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_load_sequential_round_trip(backend):
    torch.manual_seed(4)
    seq = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    G = ganfast.Generator([3, 8, 8, 2], "tanh", backend=backend, dtype=F64)
    G.load_sequential(seq)
    back = G.to_sequential()
    for (k1, v1), (k2, v2) in zip(seq.state_dict().items(), back.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    G.eval()
    x = _x(30, 3)
    assert_close_rel(G(x), seq(x), 1e-12)
    assert G.params.requires_grad  # still the module's parameter, written in place
    with pytest.raises(ValueError, match=r"layer 1 must be nn.Linear\(8, 8\)"):
        G.load_sequential(nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 7), nn.Linear(7, 2)))


# --- the dropout stream ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_dropout_advances_the_stream_in_train_mode_only(backend):
    G = ganfast.Generator([2, 5, 7, 3], dropout=0.2, seed=1, backend=backend)
    x = torch.randn(11, 2)
    G.train()
    G(x)
    assert G.rng_offset == 11 * (5 + 7)
    G(x[:4])
    assert G.rng_offset == 11 * 12 + 4 * 12
    G.eval()
    G(x)
    assert G.rng_offset == 15 * 12
    G.train()
    with pytest.raises(ValueError, match="x has 3 features but the network expects 2"):
        G(torch.randn(11, 3))
    assert G.rng_offset == 15 * 12  # a rejected call draws nothing
    no_dropout = ganfast.Generator([2, 5, 7, 3], backend=backend)
    no_dropout.train()
    no_dropout(x)
    assert no_dropout.rng_offset == 0


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_train_mode_dropout_masks_differ_between_passes(backend):
    D = ganfast.Discriminator([3, 16, 16, 1], dropout=0.5, backend=backend, dtype=F64)
    x = _x(8, 3)
    D.train()
    a, b = D(x), D(x)
    assert not torch.equal(a, b)
    D.eval()
    assert torch.equal(D(x), D(x))


def test_shared_stream_interleaves_draws():
    stream = PhiloxStream(seed=12)
    G = ganfast.Generator([1, 4, 1], dropout=0.5, stream=stream, dtype=F64)
    D = ganfast.Discriminator([1, 6, 1], dropout=0.5, stream=stream, dtype=F64)
    G.train()
    D.train()
    z = _x(10, 1)
    y = D(G(z))
    assert stream.offset == G.rng_offset == D.rng_offset == 10 * 4 + 10 * 6
    h = reference.mlp_forward(z, G.params.detach(), G.spec, train=True, seed=12, offset=0)
    want = reference.mlp_forward(h, D.params.detach(), D.spec, train=True, seed=12, offset=40)
    assert_close_rel(y, want, 1e-12)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_module_accepts_non_contiguous_input(backend):
    G = ganfast.Generator([3, 6, 2], "tanh", backend=backend, dtype=F64)
    x = _x(3, 9).t()
    assert not x.is_contiguous()
    assert_close_rel(G(x), G(x.contiguous()), 1e-15)


# --- optimizer steps ---------------------------------------------------------------------------

@requires_ext
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_sgd_steps_agree_across_backends(dropout):
    fused, torch_ = _pair(ganfast.Generator, (2, 16, 16, 2), activation="tanh", dropout=dropout,
                          seed=8, dtype=F64)
    start = fused.params.detach().clone()
    target = _x(32, 2, seed=99)
    for m in (fused, torch_):
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        for step in range(5):
            opt.zero_grad()
            loss = (m(_x(32, 2, seed=step)) - target).square().mean()
            loss.backward()
            opt.step()
    assert not torch.equal(fused.params.detach(), start)  # the steps did something
    assert_close_rel(fused.params.detach(), torch_.params.detach(), 1e-12)
    assert fused.rng_offset == torch_.rng_offset == (5 * 32 * 32 if dropout else 0)


def test_optimizer_step_on_flat_params_updates_the_exported_layers():
    D = ganfast.Discriminator([2, 4, 1])
    opt = torch.optim.SGD([D.params], lr=0.5)
    before = D.to_sequential()
    D(torch.randn(16, 2)).mean().backward()
    opt.step()
    after = D.to_sequential()
    assert not torch.equal(before[0].weight, after[0].weight)
    x = torch.randn(5, 2)
    torch.testing.assert_close(D.eval()(x), after.eval()(x))


@requires_ext
@pytest.mark.parametrize("device", DEVICES)
def test_modules_run_fused_on_every_device(device):
    G = ganfast.Generator([1, 5, 5, 1], activation="tanh").to(device)
    z = torch.rand(64, 1, device=device)
    assert G.backend_in_use == "fused"
    out = G(z)
    out.sum().backward()
    assert out.device.type == device and G.params.grad is not None and G.params.grad.device.type == device
    ref = ganfast.Generator([1, 5, 5, 1], activation="tanh", backend="torch")
    ref.load_state_dict(G.state_dict())
    want = ref(z.cpu())
    want.sum().backward()
    assert_close_rel(out.detach().cpu(), want.detach(), 1e-5)
    assert_close_rel(G.params.grad.cpu(), ref.params.grad, 1e-4)
