"""ganfast.sample and the fused population forward (torch.ops.ganfast.mlp_forward_population).

Tolerances, relative to the largest magnitude of the expected tensor (conftest.assert_close_rel):
fused (and the batched torch path) vs the PyTorch reference <= 1e-12 in float64; in float32,
against the reference run in float64 on the same float32 inputs, <= 1e-5 or, where float32 cannot
reach that (sums with cancellation: these tests spread G's weights as N(0, 1)), <= 8x the error of
PyTorch's own float32 reference on the same inputs. Measured over 20 re-seedings of these cases
(400 float32 comparisons): 53 exceeded 1e-5, at most 3.05x PyTorch's float32 error.
A member's samples and the population op's rows are compared bitwise: each member is computed
by the same kernel on the same inputs whatever the population, block or thread count.
"""
from __future__ import annotations

import math

import pytest
import torch

import ganfast
from conftest import assert_close_rel, max_rel_error, requires_ext
from ganfast import functional, reference, sampling
from ganfast.gan import GanSpec, MixtureSpec, NoiseSpec
from ganfast.random import SAMPLE_DROPOUT_SHIFT, derived_seed
from ganfast.spec import MLPSpec

if ganfast.extension_available():
    import ganfast.ops  # noqa: F401  (the fake kernels)


def gan(g: MLPSpec, noise=None, dtype=torch.float64) -> GanSpec:
    data_dim = g.out_features
    noise = noise or NoiseSpec("uniform", g.in_features, -1.0, 1.0)
    return GanSpec(g=g, d=MLPSpec((data_dim, 8, 1), "relu", "sigmoid"), noise=noise,
                   data=MixtureSpec(((0.0,) * data_dim,), (1.0,) * data_dim), dtype=dtype)


def population(spec: GanSpec, P: int, seed: int = 0) -> ganfast.GanState:
    """A state with P members whose G weights are spread wider than the init (more signal)."""
    state = ganfast.init_state(spec, population=P, seed=seed)
    g = torch.Generator().manual_seed(1000 + seed)
    state.g_params.copy_(torch.randn(state.g_params.shape, generator=g, dtype=torch.float64))
    return state


G_SPECS = [
    MLPSpec((1, 5, 5, 1), "tanh"),
    MLPSpec((2, 16, 16, 2), "relu", dropout=0.3),
    MLPSpec((3, 32, 8, 32, 2), "leaky_relu", "tanh", dropout=0.5, activation_param=0.2),
    MLPSpec((4, 64, 1), "elu", "sigmoid"),
    MLPSpec((2, 256, 2), "sigmoid", dropout=0.1),
]
G_IDS = ["1x5x5x1-tanh", "2x16x16x2-relu-p.3", "3x32x8x32x2-lrelu-p.5", "4x64x1-elu-sig", "2x256x2-sig-p.1"]


# --- the fused op against the reference ---------------------------------------------------------

@requires_ext
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("g", G_SPECS, ids=G_IDS)
def test_fused_matches_the_reference(g, dtype):
    spec = gan(g, dtype=dtype)
    state = population(spec, 5).to(torch.device("cpu"))
    state.g_params = state.g_params.to(dtype)
    for dropout in (True, False):
        fused = ganfast.sample(spec, state, 300, noise_seed=3, dropout=dropout, backend="fused")
        assert fused.dtype == dtype and fused.shape == (5, 300, g.out_features)
        z = functional.noise(spec.noise, 300, 3, dtype=dtype)
        train = dropout and g.dropout > 0
        seed = derived_seed(3, SAMPLE_DROPOUT_SHIFT)
        expected = torch.stack([reference.mlp_forward(z.double(), p.double(), g, train=train, seed=seed)
                                for p in state.g_params])
        tol = 1e-12
        if dtype == torch.float32:
            own = torch.stack([reference.mlp_forward(z, p, g, train=train, seed=seed) for p in state.g_params])
            tol = max(1e-5, 8 * max_rel_error(own, expected))
        assert_close_rel(fused, expected, tol, what=f"dropout={dropout}")
        torch_path = ganfast.sample(spec, state, 300, noise_seed=3, dropout=dropout, backend="torch")
        assert_close_rel(torch_path, expected, tol, what="torch backend")


@requires_ext
@pytest.mark.parametrize("g", G_SPECS, ids=G_IDS)
def test_population_op_rows_are_mlp_forward_bitwise(g):
    x = torch.rand(77, g.in_features, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    params = torch.randn(6, g.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = ganfast.ops.mlp_forward_population(x, params, g, train=True, seed=5, offset=123)
    for k in range(6):
        one = ganfast.ops.mlp_forward(x, params[k], g, train=True, seed=5, offset=123)
        assert torch.equal(out[k], one), k


# --- a member's samples are its own ---------------------------------------------------------

@requires_ext
@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_a_member_does_not_depend_on_the_population(backend):
    spec = gan(G_SPECS[2], dtype=torch.float32)
    state = population(spec, 7)
    state.g_params = state.g_params.float()
    whole = ganfast.sample(spec, state, 500, noise_seed=11, backend=backend)
    for k in (0, 3, 6):
        alone = ganfast.sample(spec, state, 500, member=k, noise_seed=11, backend=backend)
        own = ganfast.sample(spec, state.member(k), 500, noise_seed=11, backend=backend)[0]
        if backend == "fused":
            assert torch.equal(alone, whole[k]) and torch.equal(own, whole[k])
        else:  # torch's batched products may block differently for other batch counts
            assert_close_rel(alone, whole[k], 1e-6)
            assert_close_rel(own, whole[k], 1e-6)
    # the same parameters give the same samples: the noise and the masks are shared by all members
    state.g_params[4] = state.g_params[1]
    again = ganfast.sample(spec, state, 500, noise_seed=11, backend=backend)
    assert torch.equal(again[4], again[1])


@requires_ext
@pytest.mark.parametrize("P", [1, 3, 7, 64])
def test_samples_do_not_depend_on_the_thread_count(P):
    spec = gan(G_SPECS[1], dtype=torch.float32)
    state = population(spec, P)
    state.g_params = state.g_params.float()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ganfast.sample(spec, state, 257, noise_seed=2)
        torch.set_num_threads(4)
        four = ganfast.sample(spec, state, 257, noise_seed=2)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, four)


# --- dropout as in training, blocks -----------------------------------------------------------

@requires_ext
@pytest.mark.parametrize("g", [G_SPECS[1], G_SPECS[2]], ids=G_IDS[1:3])
def test_dropout_is_the_generators_training_mode_forward(g):
    spec = gan(g, noise=NoiseSpec("normal", g.in_features), dtype=torch.float32)
    state = population(spec, 3)
    state.g_params = state.g_params.float()
    seed = 21
    x = ganfast.sample(spec, state, 1000, member=2, noise_seed=seed)
    G = ganfast.Generator.from_spec(g, seed=derived_seed(seed, SAMPLE_DROPOUT_SHIFT), backend="fused")
    with torch.no_grad():
        G.params.copy_(state.g_params[2])
    z = ganfast.noise(spec.noise, 1000, seed)
    G.train()
    assert torch.equal(x, G(z).detach())
    G.eval()
    assert torch.equal(ganfast.sample(spec, state, 1000, member=2, noise_seed=seed, dropout=False), G(z).detach())
    assert not torch.equal(x, G(z).detach())  # the masks did something


@requires_ext
def test_blocks_take_their_dropout_words_from_their_own_offsets(monkeypatch):
    g = G_SPECS[2]
    spec = gan(g, dtype=torch.float64)
    state = population(spec, 4)
    monkeypatch.setattr(sampling, "MAX_BLOCK", 64)
    block = sampling.block_size(g)
    assert block == 64
    n = 3 * block + 10
    x = ganfast.sample(spec, state, n, noise_seed=4)
    z = functional.noise(spec.noise, n, 4, dtype=torch.float64)
    seed = derived_seed(4, SAMPLE_DROPOUT_SHIFT)
    for b, start in enumerate(range(0, n, block)):
        offset = b * block * sum(g.widths[1:-1])
        for k in range(4):
            expected = functional.mlp(z[start:start + block], state.g_params[k], g, train=True, seed=seed,
                                      offset=offset, backend="fused")
            assert torch.equal(x[k, start:start + block], expected), (b, k)


@requires_ext
@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_without_dropout_the_blocks_do_not_matter(monkeypatch, backend):
    g = G_SPECS[3]
    spec = gan(g, dtype=torch.float64)
    state = population(spec, 3)
    whole = ganfast.sample(spec, state, 1000, noise_seed=6, backend=backend)
    for size in (1, 7, 100):
        monkeypatch.setattr(sampling, "MAX_BLOCK", size)
        blocked = ganfast.sample(spec, state, 1000, noise_seed=6, backend=backend)
        assert_close_rel(blocked, whole, 1e-14, what=f"block {size}")


def test_block_size_depends_on_the_widths_only():
    assert sampling.block_size(MLPSpec((1, 5, 5, 1))) == 4096
    assert sampling.block_size(MLPSpec((1, 100_000, 1))) == 2**22 // 100_001 == 41
    assert sampling.block_size(MLPSpec((1, 2**23, 1))) == 1


def test_a_wide_generator_samples_in_bounded_blocks(monkeypatch):
    """A 100000-wide hidden layer: the reference path (wider than the fused kernels take) in
    blocks of 41 samples and chunks of one member, never a (P, n, 100000) tensor."""
    g = MLPSpec((1, 100_000, 1), "relu", dropout=0.2)
    spec = gan(g, dtype=torch.float32)
    state = ganfast.init_state(spec, population=2)
    calls = []
    real = reference.mlp_forward

    def spy(x, params, spec_, **kw):
        calls.append((x.shape[0], params.shape[0], kw["offset"]))
        return real(x, params, spec_, **kw)

    monkeypatch.setattr(sampling.reference, "mlp_forward", spy)
    x = ganfast.sample(spec, state, 100, noise_seed=1)
    assert x.shape == (2, 100, 1) and bool(torch.isfinite(x).all())
    block = sampling.block_size(g)
    words = block * 100_000  # dropout words of a full block
    # blocks of 41 samples, one member at a time; the last block (18 samples) takes both members
    assert calls == [(41, 1, 0), (41, 1, 0), (41, 1, words), (41, 1, words), (18, 2, 2 * words)]
    assert max(c[0] * c[1] for c in calls) * 100_000 <= sampling.BLOCK_VALUES
    monkeypatch.undo()
    z = functional.noise(spec.noise, 100, 1)
    seed = derived_seed(1, SAMPLE_DROPOUT_SHIFT)
    expected = reference.mlp_forward(z[41:82], state.g_params[1], g, train=True, seed=seed, offset=block * 100_000)
    assert torch.equal(x[1, 41:82], expected)


# --- honest failures ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_non_finite_members_give_non_finite_samples(backend):
    spec = gan(G_SPECS[1], dtype=torch.float32)
    state = population(spec, 3)
    state.g_params = state.g_params.float()
    state.g_params[1, :] = math.nan  # a diverged member (its NaN update reached every parameter)
    state.g_params[2, :] = math.inf
    x = ganfast.sample(spec, state, 50, backend=backend)
    assert bool(torch.isfinite(x[0]).all())
    assert not bool(torch.isfinite(x[1]).any()) and not bool(torch.isfinite(x[2]).any())


def test_bad_arguments_are_one_clear_error():
    spec = gan(G_SPECS[0])
    state = population(spec, 2)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        ganfast.sample(spec, state, 0)
    with pytest.raises(TypeError, match="n must be an integer, got float 2.5"):
        ganfast.sample(spec, state, 2.5)
    with pytest.raises(TypeError, match="n must be an integer, got bool"):
        ganfast.sample(spec, state, True)
    with pytest.raises(ValueError, match=r"member must be in \[0, 2\)"):
        ganfast.sample(spec, state, 5, member=2)
    with pytest.raises(ValueError, match="member must be >= 0"):
        ganfast.sample(spec, state, 5, member=-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        ganfast.sample(spec, state, 5, noise_seed=1.5)
    with pytest.raises(TypeError, match="dropout must be True or False"):
        ganfast.sample(spec, state, 5, dropout=None)
    with pytest.raises(ValueError, match=r"g_params are \(P, 354\) for G's widths \[2, 16, 16, 2\], got \(2, 46\)"):
        ganfast.sample(gan(G_SPECS[1]), state, 5)
    with pytest.raises(TypeError, match="expected a GanSpec"):
        ganfast.sample(G_SPECS[0], state, 5)


def test_numpy_integers_are_integers():
    np = pytest.importorskip("numpy")
    spec = gan(G_SPECS[0])
    state = population(spec, 2)
    x = ganfast.sample(spec, state, np.int64(20), member=np.int32(1), noise_seed=np.uint8(3))
    assert torch.equal(x, ganfast.sample(spec, state, 20, member=1, noise_seed=3))


@requires_ext
def test_fused_refuses_a_net_it_cannot_run():
    spec = gan(MLPSpec((1, 300, 1)))
    state = ganfast.init_state(spec)
    with pytest.raises(RuntimeError, match="wider than the fused kernels' limit"):
        ganfast.sample(spec, state, 5, backend="fused")


@requires_ext
def test_the_population_op_is_registered_properly():
    g = G_SPECS[2]
    x = torch.rand(9, g.in_features, dtype=torch.float64)
    params = torch.randn(3, g.num_params, dtype=torch.float64)
    args = (x, params, *g.op_args, 0.5, 3, 8)
    # test_autograd_registration needs inputs that require grad, which the op refuses (below)
    torch.library.opcheck(torch.ops.ganfast.mlp_forward_population.default, args,
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    with pytest.raises(RuntimeError, match="mlp_forward_population is not differentiable"):
        torch.ops.ganfast.mlp_forward_population(x, params.requires_grad_(), *g.op_args, 0.5, 3, 8)
    with torch.no_grad():
        torch.ops.ganfast.mlp_forward_population(x, params, *g.op_args, 0.5, 3, 8)
    with pytest.raises(RuntimeError, match=r"params must be \(P, "):
        torch.ops.ganfast.mlp_forward_population(x, params.detach()[:, 1:].contiguous(), *g.op_args, 0.5, 3, 8)
    with pytest.raises(RuntimeError, match="x has 2 features but the network expects 3"):
        torch.ops.ganfast.mlp_forward_population(x[:, :2].contiguous(), params.detach(), *g.op_args, 0.5, 3, 8)


@requires_ext
def test_sampling_does_not_touch_gradients_or_the_state():
    spec = gan(G_SPECS[1])
    state = population(spec, 2)
    before = state.clone()
    state.g_params.requires_grad_()
    x = ganfast.sample(spec, state, 10)
    assert not x.requires_grad
    for name, t in state.tensors().items():
        assert torch.equal(t.detach(), getattr(before, name)), name
