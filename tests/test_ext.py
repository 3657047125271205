"""The extension-missing path (ganfast/_ext.py), each case in a fresh interpreter:

(a) GANFAST_DISABLE_EXTENSION=1;
(b) the import of ganfast._C itself fails: a sys.meta_path finder installed before
    `import ganfast` raises ImportError for that one module (no sitecustomize, no file changes),
    and no other build can be had (an empty GANFAST_CACHE and GANFAST_JIT=0, so nothing
    compiles);
(c) GANFAST_DISABLE_EXTENSION=0 does not disable anything.

In (a) and (b) `import ganfast` must succeed with exactly one ganfast._ext.FallbackWarning that
says why and names the fix, everything must run on the PyTorch path, backend='fused' must fail
with a RuntimeError that names the extension, and the samplers must give the numbers the fused
kernels give in this (parent) process. The build paths (compile on first use, stamps, a missing
compiler) are tested in test_build.py.

And the test command itself fails when the kernels did not load (test_the_kernels_loaded):
`python -m pytest tests` must not pass on the slow fallback unless asked to.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganfast
from ganfast import random as philox

REPO = Path(__file__).resolve().parents[1]
BLOCK_MESSAGE = "ganfast._C blocked by the test (a library that fails to import)"

# Draws compared with the parent: (kind, n, seed, offset, a, b, dtype name).
DRAWS = [
    ("uniform", 1001, 2**33 + 7, 5, -1.5, 2.0, "float32"),
    ("uniform", 1001, 2**33 + 7, 5, -1.5, 2.0, "float64"),
    ("normal", 999, 42, 3, 0.5, 2.0, "float32"),
    ("normal", 999, 42, 3, 0.5, 2.0, "float64"),
]

CHILD = r"""
import json, sys, warnings

mode, block_message, draws = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if mode == "blocked":  # ganfast._C's lookup fails as a library with a missing symbol would
    import importlib.machinery

    path_finder = importlib.machinery.PathFinder.find_spec

    def find_spec(name, path=None, target=None):
        if name == "ganfast._C":
            raise ImportError(block_message)
        return path_finder(name, path, target)

    importlib.machinery.PathFinder.find_spec = staticmethod(find_spec)

out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import ganfast
    import ganfast  # noqa: F811  (a second import must not warn again)
    import ganfast._ext
    import ganfast.functional
    import torch
    from ganfast import _ext

    out["available"] = ganfast.extension_available()
    out["reason"] = _ext.UNAVAILABLE_REASON
    out["has_op"] = hasattr(torch.ops.ganfast, "mlp_forward")

    torch.manual_seed(0)
    G = ganfast.Generator([1, 5, 5, 1], "tanh", dtype=torch.float64)
    x = torch.linspace(-2, 2, 16, dtype=torch.float64).reshape(16, 1)
    out["backend_in_use"] = G.backend_in_use
    y = G(x)
    y.sum().backward()
    out["forward_ok"] = bool(torch.allclose(y, G.to_sequential()(x), rtol=1e-12, atol=1e-12))
    out["grad_ok"] = G.params.grad is not None and bool(torch.isfinite(G.params.grad).all())
    D = ganfast.Discriminator([1, 4, 1], dropout=0.5, seed=3)
    D.train()
    D(torch.zeros(6, 1))
    out["d_offset"] = D.rng_offset

    errors = {}
    for name, call in [
        ("module", lambda: ganfast.Generator([1, 5, 1], backend="fused")),
        ("mlp", lambda: ganfast.mlp(x, G.params.detach(), G.spec, backend="fused")),
        ("uniform", lambda: ganfast.uniform(4, 0, backend="fused")),
        ("ops", lambda: __import__("ganfast.ops")),
    ]:
        try:
            call()
            errors[name] = None
        except Exception as exc:
            errors[name] = [type(exc).__name__, str(exc)]
    out["errors"] = errors

    values = []
    for kind, n, seed, offset, a, b, dtype in draws:
        t = getattr(ganfast, kind)(n, seed, offset, a, b, dtype=getattr(torch, dtype))
        values.append([float(v).hex() for v in t.tolist()])
    out["values"] = values

out["warnings"] = [
    [w.category.__name__, issubclass(w.category, _ext.FallbackWarning), str(w.message)] for w in caught
]
print("RESULT " + json.dumps(out))
"""


def _spawn(mode, empty_cache):
    env = dict(os.environ)
    env.pop("GANFAST_DISABLE_EXTENSION", None)
    if mode == "disabled":
        env["GANFAST_DISABLE_EXTENSION"] = "1"
    elif mode == "blocked":
        env.update(GANFAST_JIT="0", GANFAST_CACHE=str(empty_cache))
    elif mode == "enabled0":
        env["GANFAST_DISABLE_EXTENSION"] = "0"
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, BLOCK_MESSAGE, json.dumps(DRAWS)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """Run the three children at once (each spends most of its time importing torch)."""
    empty = tmp_path_factory.mktemp("empty-cache")
    procs = {mode: _spawn(mode, empty) for mode in ("disabled", "blocked", "enabled0")}
    results = {}
    for mode, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, f"{mode} child failed:\n{stdout}\n{stderr}"
        results[mode] = json.loads(lines[-1][len("RESULT "):])
    return results


def _expected_draws():
    """The samplers' values in this process: the fused kernels when they are here."""
    backend = "fused" if ganfast.extension_available() else "torch"
    return [getattr(ganfast, kind)(n, seed, offset, a, b, dtype=getattr(torch, dtype), backend=backend)
            for kind, n, seed, offset, a, b, dtype in DRAWS]


@pytest.mark.parametrize("mode", ["disabled", "blocked"])
def test_import_warns_exactly_once_and_says_why(children, mode):
    res = children[mode]
    fallback = [w for w in res["warnings"] if w[1]]
    assert len(fallback) == 1, res["warnings"]
    category, _, message = fallback[0]
    assert category == "FallbackWarning"
    assert "compiled kernels unavailable" in message and "pure-PyTorch fallback" in message
    if mode == "disabled":
        assert res["reason"] == "disabled by GANFAST_DISABLE_EXTENSION"
        assert "(disabled by GANFAST_DISABLE_EXTENSION)" in message
        assert message.endswith("Fix: unset GANFAST_DISABLE_EXTENSION")
    else:  # the cause: the failed import, then why no other build could be had
        assert res["reason"].startswith(f"ImportError: {BLOCK_MESSAGE}; no build for this torch in ")
        assert res["reason"].endswith("and GANFAST_JIT=0 forbids compiling at import")
        assert f"({res['reason']})" in message
        assert message.endswith("Fix: `python -m ganfast build`")


@pytest.mark.parametrize("mode", ["disabled", "blocked"])
def test_fallback_runs_on_pytorch(children, mode):
    res = children[mode]
    assert res["available"] is False
    assert res["has_op"] is False  # torch.ops.ganfast.* were never registered
    assert res["backend_in_use"] == "torch"
    assert res["forward_ok"] and res["grad_ok"]
    assert res["d_offset"] == 6 * 4  # dropout still draws from the Philox stream


@pytest.mark.parametrize("mode", ["disabled", "blocked"])
def test_fused_backend_raises_naming_the_extension(children, mode):
    errors = children[mode]["errors"]
    for name in ("module", "mlp", "uniform"):
        assert errors[name] is not None, name
        kind, message = errors[name]
        assert kind == "RuntimeError", (name, errors[name])
        assert "backend='fused' cannot run here" in message
        assert "compiled extension is unavailable" in message
    kind, message = errors["ops"]
    assert kind == "RuntimeError" and "ganfast.ops needs the compiled extension" in message


@pytest.mark.parametrize("mode", ["disabled", "blocked", "enabled0"])
def test_samplers_give_the_fused_values(children, mode):
    for (kind, *_, dtype), want, got_hex in zip(DRAWS, _expected_draws(), children[mode]["values"]):
        got = torch.tensor([float.fromhex(v) for v in got_hex], dtype=torch.float64).to(want.dtype)
        assert got.shape == want.shape
        if kind == "uniform" or (mode == "enabled0" and ganfast.extension_available()):
            assert torch.equal(got, want), (kind, dtype)
        elif dtype == "float64":
            assert float((got - want).abs().max()) <= 1e-12
        else:  # float32 normals: both round a float64 value once, so equal or adjacent floats
            up = torch.nextafter(want, torch.full_like(want, math.inf))
            down = torch.nextafter(want, torch.full_like(want, -math.inf))
            assert bool(((got == want) | (got == up) | (got == down)).all())


def test_samplers_fallback_equals_reference_module():
    """The fallback samplers are ganfast.random itself (checked here without a subprocess)."""
    for kind, n, seed, offset, a, b, dtype in DRAWS:
        got = getattr(ganfast, kind)(n, seed, offset, a, b, dtype=getattr(torch, dtype), backend="torch")
        assert torch.equal(got, getattr(philox, kind)(n, seed, offset, a, b, dtype=getattr(torch, dtype)))


def test_disable_flag_zero_keeps_the_extension(children):
    res = children["enabled0"]
    if not ganfast.extension_available():
        pytest.skip("the extension is unavailable in this environment")
    assert res["available"] is True and res["reason"] is None and res["has_op"] is True
    assert res["backend_in_use"] == "fused"
    assert not [w for w in res["warnings"] if w[1]]
    assert all(v is None for k, v in res["errors"].items())


def test_the_kernels_loaded():
    """The README's test command fails when the kernels silently fell back to PyTorch.

    GANFAST_DISABLE_EXTENSION=1 (the fallback on purpose) or GANFAST_TEST_ALLOW_FALLBACK=1 (a
    machine without a compiler) lets the rest of the suite run on the fallback.
    """
    from ganfast import _ext

    for var in ("GANFAST_DISABLE_EXTENSION", "GANFAST_TEST_ALLOW_FALLBACK"):
        if os.environ.get(var, "").strip() not in ("", "0"):
            pytest.skip(f"{var} is set")
    assert ganfast.extension_available(), (
        f"the compiled kernels did not load: {_ext.UNAVAILABLE_REASON}; fix: {_ext.FIX} "
        "(GANFAST_TEST_ALLOW_FALLBACK=1 runs the tests on the fallback anyway)"
    )
