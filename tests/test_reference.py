"""Tests of the pure-PyTorch MLP on flat parameters (ganfast/reference.py)."""
import math

import pytest
import torch
from torch import nn

from ganfast.random import dropout_mask
from ganfast.reference import (
    activation_fn,
    flat_from_sequential,
    init_params,
    mlp_forward,
    to_sequential,
    unflatten,
)
from ganfast.spec import MLPSpec

SPECS = [
    MLPSpec((3, 5, 2)),
    MLPSpec((4, 8, 8, 3), activation="leaky_relu", activation_param=0.2, output_activation="tanh"),
    MLPSpec((6, 7, 5, 4, 1), activation="elu", activation_param=0.5, output_activation="sigmoid"),
    MLPSpec((2, 9, 3), activation="tanh", output_activation="leaky_relu", dropout=0.25),
    MLPSpec((5, 4, 4), activation="sigmoid", output_activation="elu", output_activation_param=2.0),
    MLPSpec((3, 6, 2), activation="identity", dropout=0.5),
    MLPSpec((6, 1), output_activation="relu"),
]


def random_params(spec, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(spec.num_params, generator=gen, dtype=dtype)


def random_input(spec, batch=11, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, spec.in_features, generator=gen, dtype=dtype)


# --- activations -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name,param,formula",
    [
        ("identity", 0.0, lambda z: z),
        ("relu", 0.0, lambda z: max(z, 0.0)),
        ("leaky_relu", 0.1, lambda z: z if z > 0 else 0.1 * z),
        ("elu", 0.7, lambda z: z if z > 0 else 0.7 * math.expm1(z)),
        ("tanh", 0.0, math.tanh),
        ("sigmoid", 0.0, lambda z: 1.0 / (1.0 + math.exp(-z))),
    ],
)
def test_activation_matches_design_table(name, param, formula):
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    got = activation_fn(name, param)(z)
    expected = torch.tensor([formula(v) for v in z.tolist()], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-14)


def test_activation_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation_fn("swish", 0.0)


# --- layout, export, import ------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS)
def test_unflatten_views_follow_the_flat_layout(spec):
    params = random_params(spec)
    layers = unflatten(params, spec)
    assert len(layers) == spec.num_layers
    pieces = []
    for i, (w, b) in enumerate(layers):
        assert w.shape == (spec.widths[i + 1], spec.widths[i]) and b.shape == (spec.widths[i + 1],)
        assert w.data_ptr() >= params.data_ptr()  # a view, not a copy
        pieces += [w.reshape(-1), b]
    assert torch.equal(torch.cat(pieces), params)
    layers[0][1].fill_(123.0)
    assert bool((params[spec.layer_slices()[0][2]] == 123.0).all())


@pytest.mark.parametrize("spec", SPECS)
def test_forward_matches_sequential(spec):
    params, x = random_params(spec), random_input(spec)
    seq = to_sequential(params, spec).eval()
    torch.testing.assert_close(mlp_forward(x, params, spec), seq(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_sequential_round_trip(spec):
    params = random_params(spec)
    seq = to_sequential(params, spec)
    assert torch.equal(flat_from_sequential(seq, spec), params)
    # state_dict order is the flat layout, so export is a concatenation of its values.
    flat = torch.cat([v.reshape(-1) for v in seq.state_dict().values()])
    assert torch.equal(flat, params)


def test_sequential_structure():
    spec = MLPSpec((3, 4, 4, 2), activation="tanh", output_activation="sigmoid", dropout=0.1)
    seq = to_sequential(random_params(spec), spec)
    kinds = [type(m) for m in seq]
    assert kinds == [nn.Linear, nn.Tanh, nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout, nn.Linear, nn.Sigmoid]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"]
    no_dropout = to_sequential(random_params(spec), spec, train_dropout=False)
    assert not any(isinstance(m, nn.Dropout) for m in no_dropout)
    identity_out = MLPSpec((3, 4, 2))
    assert [type(m) for m in to_sequential(random_params(identity_out), identity_out)] == [
        nn.Linear, nn.ReLU, nn.Linear,
    ]


def test_flat_from_sequential_checks_shapes():
    spec = MLPSpec((3, 4, 2))
    with pytest.raises(ValueError, match="expected 2 nn.Linear layers, found 1"):
        flat_from_sequential(nn.Sequential(nn.Linear(3, 2)), spec)
    with pytest.raises(ValueError, match=r"layer 1 must be nn.Linear\(4, 2\)"):
        flat_from_sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3)), spec)


# --- initialisation --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("widths", [(3, 5, 2), (7, 16, 16, 1), (1, 1)])
def test_init_params_is_bitwise_nn_linear(dtype, widths):
    spec = MLPSpec(widths)
    torch.manual_seed(1234)
    linears = [nn.Linear(i, o, dtype=dtype) for i, o in zip(widths[:-1], widths[1:])]
    expected = flat_from_sequential(nn.Sequential(*linears), spec)
    torch.manual_seed(1234)
    got = init_params(spec, dtype=dtype)
    assert got.dtype == dtype
    assert torch.equal(got, expected)
    assert torch.equal(init_params(spec, dtype=dtype, generator=torch.Generator().manual_seed(1234)), expected)


def test_init_params_bounds():
    spec = MLPSpec((16, 64, 4))
    params = init_params(spec, generator=torch.Generator().manual_seed(0))
    for (w, b), fan_in in zip(unflatten(params, spec), spec.widths[:-1]):
        bound = 1 / math.sqrt(fan_in)
        assert float(w.abs().max()) <= bound and float(b.abs().max()) <= bound


# --- dropout ---------------------------------------------------------------------------------

def test_dropout_zeroes_masked_units_and_scales_the_rest():
    """With an identity output layer the output is the dropped-out hidden layer itself."""
    width, batch, p, seed, offset = 6, 9, 0.4, 17, 5
    spec = MLPSpec((3, width, width), activation="tanh", dropout=p)
    params = random_params(spec)
    w1, b1 = unflatten(params, spec)[1]
    w1.copy_(torch.eye(width, dtype=torch.float64))
    b1.zero_()
    x = random_input(spec, batch)
    hidden = mlp_forward(x, params, spec)  # eval mode: no dropout
    out = mlp_forward(x, params, spec, train=True, seed=seed, offset=offset)
    keep = dropout_mask(batch, width, p, seed, offset)
    assert 0 < int(keep.sum()) < keep.numel()
    assert bool((out[~keep] == 0).all())
    torch.testing.assert_close(out[keep], hidden[keep] / (1 - p), rtol=1e-15, atol=0)


def test_dropout_uses_the_documented_word_bases():
    spec = MLPSpec((4, 6, 5, 3), activation="relu", dropout=0.3)
    params, x = random_params(spec), random_input(spec, batch=8)
    seed, offset, batch = 3, 100, 8
    (w0, b0), (w1, b1), (w2, b2) = unflatten(params, spec)
    scale = 1 / (1 - spec.dropout)
    h = torch.relu(x @ w0.T + b0)
    h = torch.where(dropout_mask(batch, 6, 0.3, seed, offset), h * scale, 0.0)
    h = torch.relu(h @ w1.T + b1)
    h = torch.where(dropout_mask(batch, 5, 0.3, seed, offset + batch * 6), h * scale, 0.0)
    expected = h @ w2.T + b2
    got = mlp_forward(x, params, spec, train=True, seed=seed, offset=offset)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert spec.dropout_words(batch) == batch * (6 + 5)


def test_train_mode_replays_and_depends_on_offset():
    spec = MLPSpec((4, 16, 2), dropout=0.5)
    params, x = random_params(spec), random_input(spec)
    a = mlp_forward(x, params, spec, train=True, seed=1, offset=0)
    assert torch.equal(a, mlp_forward(x, params, spec, train=True, seed=1, offset=0))
    assert not torch.equal(a, mlp_forward(x, params, spec, train=True, seed=1, offset=spec.dropout_words(11)))
    assert not torch.equal(a, mlp_forward(x, params, spec, train=True, seed=2, offset=0))


def test_train_mode_without_dropout_is_eval_mode():
    spec = MLPSpec((4, 8, 2))
    params, x = random_params(spec), random_input(spec)
    assert torch.equal(mlp_forward(x, params, spec, train=True, seed=9), mlp_forward(x, params, spec))


# --- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [False, True])
def test_gradcheck(train):
    spec = MLPSpec((3, 4, 4, 2), activation="tanh", output_activation="sigmoid", dropout=0.3)
    params = random_params(spec).requires_grad_()
    x = random_input(spec, batch=5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, p: mlp_forward(x, p, spec, train=train, seed=4, offset=2), (x, params)
    )


def test_gradients_match_sequential():
    spec = MLPSpec((5, 7, 3), activation="elu", activation_param=0.8, output_activation="tanh")
    params = random_params(spec).requires_grad_()
    x = random_input(spec)
    mlp_forward(x, params, spec).square().sum().backward()
    seq = to_sequential(params.detach(), spec)
    seq(x).square().sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in seq.parameters()])
    torch.testing.assert_close(params.grad, grads, rtol=1e-12, atol=1e-12)


# --- argument checks -------------------------------------------------------------------------

def test_forward_rejects_bad_inputs():
    spec = MLPSpec((3, 4, 2))
    params = random_params(spec)
    with pytest.raises(ValueError, match=r"x must be a \(N, 3\) tensor, got \(5, 4\)"):
        mlp_forward(torch.zeros(5, 4, dtype=torch.float64), params, spec)
    with pytest.raises(ValueError, match="params must be 1-D with 26 entries"):
        mlp_forward(torch.zeros(5, 3, dtype=torch.float64), params[:-1], spec)
    with pytest.raises(ValueError, match="x and params must share dtype and device"):
        mlp_forward(torch.zeros(5, 3), params, spec)
