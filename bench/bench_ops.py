"""Fused ops vs the pure-PyTorch reference, on the seed projects' networks and digits-mlp's.

    cd /work/main && python -m pytest bench -q        # ~30 s; ratio table at the end

Each benchmark is one call as a training step makes it: MLP forward then backward (autograd
gradients wrt x and params of a fixed upstream gradient), and the Philox fills of the noise and
data batches. Both sides go through ganfast.functional with backend="fused" / "torch", so they
pay the same Python argument checks; "reference" is ganfast.reference.mlp_forward + autograd.
float32, one thread (see conftest.py).
"""
from __future__ import annotations

import pytest
import torch

from ganfast import functional
from ganfast.reference import init_params
from ganfast.spec import MLPSpec

#: The seed networks (docs: ganfast/presets/devnag.yaml, vanilla.yaml).
NETS = {
    "devnag_G": MLPSpec((1, 5, 5, 1), activation="tanh", output_activation="identity"),
    "devnag_D": MLPSpec((4, 10, 10, 1), activation="sigmoid", output_activation="sigmoid"),
    "vanilla_G": MLPSpec((1, 16, 32, 16, 1), activation="relu", output_activation="identity", dropout=0.5),
    "vanilla_D": MLPSpec((1, 16, 16, 8, 1), activation="tanh", output_activation="sigmoid", dropout=0.5),
}
BATCHES = (500, 2048)
#: digits-mlp's nets (ganfast/presets/digits-mlp.yaml) at its batch of 64: wide layers, where the
#: time is in the matrix products rather than in per-call overhead.
IMAGE_NETS = {
    "digits_G": MLPSpec((32, 256, 256, 64), activation="leaky_relu", output_activation="tanh",
                        activation_param=0.2),
    "digits_D": MLPSpec((64, 256, 256, 1), activation="leaky_relu", output_activation="sigmoid",
                        dropout=0.3, activation_param=0.2),
}
CASES = [(net, batch) for net in NETS for batch in BATCHES] + [(net, 64) for net in IMAGE_NETS]
SPECS = {**NETS, **IMAGE_NETS}
# pytest-benchmark names -> functional backend.
BACKENDS = {"fused": "fused", "reference": "torch"}
DTYPE = torch.float32
SEED, OFFSET = 1234, 0


def _mlp_step(spec: MLPSpec, batch: int, backend: str):
    """A closure doing forward + backward once, and its inputs."""
    gen = torch.Generator().manual_seed(0)
    params = init_params(spec, dtype=DTYPE, generator=gen).requires_grad_()
    x = torch.rand(batch, spec.in_features, generator=gen, dtype=DTYPE).requires_grad_()
    grad_out = torch.randn(batch, spec.out_features, generator=gen, dtype=DTYPE)
    train = spec.dropout > 0.0  # the vanilla nets train with dropout: masks from Philox

    def step():
        out = functional.mlp(x, params, spec, train=train, seed=SEED, offset=OFFSET, backend=backend)
        return torch.autograd.grad(out, (x, params), grad_outputs=grad_out)

    return step


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("net, batch", CASES)
def bench_mlp_forward_backward(benchmark, request, net, batch, backend):
    if backend == "fused":
        request.getfixturevalue("require_fused")
    spec = SPECS[net]
    step = _mlp_step(spec, batch, BACKENDS[backend])
    for _ in range(3):  # warm-up: allocator, dispatcher caches
        step()
    benchmark.group = f"mlp fwd+bwd {net} N={batch}"
    benchmark.extra_info.update(backend=backend, net=net, batch=batch, widths=list(spec.widths))
    benchmark(step)


@pytest.mark.parametrize("net, batch", CASES)
def bench_mlp_kernels_only(benchmark, require_fused, net, batch):
    """Diagnostic third row of each group: torch.ops.ganfast.mlp_forward + mlp_backward called
    directly (no autograd, no Python wrappers): what the fused path costs beyond its kernels."""
    spec = SPECS[net]
    gen = torch.Generator().manual_seed(0)
    params = init_params(spec, dtype=DTYPE, generator=gen)
    x = torch.rand(batch, spec.in_features, generator=gen, dtype=DTYPE)
    grad_out = torch.randn(batch, spec.out_features, generator=gen, dtype=DTYPE)
    args = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, spec.dropout, SEED, OFFSET)
    ops = torch.ops.ganfast

    def step():
        out, saved = ops.mlp_forward(x, params, *args)
        return ops.mlp_backward(grad_out, x, params, saved, *args)

    for _ in range(3):
        step()
    benchmark.group = f"mlp fwd+bwd {net} N={batch}"
    benchmark.extra_info.update(backend="kernels_only", net=net, batch=batch, widths=list(spec.widths))
    benchmark(step)


def test_fused_matches_reference():
    """Guard: the timed pair computes the same gradients (else the ratio means nothing)."""
    import ganfast

    if not ganfast.extension_available():
        pytest.skip("ganfast extension unavailable")
    for net, batch in CASES:
        fused = _mlp_step(SPECS[net], batch, "fused")()
        ref = _mlp_step(SPECS[net], batch, "torch")()
        for name, a, b in zip(("grad x", "grad params"), fused, ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{net} N={batch} {name}")


RANDOM = {
    "normal": (functional.normal, 500),
    "uniform": (functional.uniform, 1500),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("kind", list(RANDOM))
def bench_philox(benchmark, request, kind, backend):
    if backend == "fused":
        request.getfixturevalue("require_fused")
    fn, n = RANDOM[kind]
    be = BACKENDS[backend]

    def draw():
        return fn(n, SEED, OFFSET, dtype=DTYPE, backend=be)

    for _ in range(3):
        draw()
    benchmark.group = f"philox {kind}({n})"
    benchmark.extra_info.update(backend=backend, kind=kind, n=n)
    benchmark(draw)
