"""Tests of the engine's fast path (csrc/core/fast_step.h: the toy presets' shapes with their
widths fixed at compile time) against the generic loop (csrc/core/gan_step.h) and the reference
trainer, and of the CPU builds (GANFAST_CPU_ISA).

GANFAST_ENGINE_PATH (auto | generic | fast) is read at every training call, so these tests switch
it with monkeypatch; "fast" raises where the fast path has no kernels, so a test that asks for it
knows it ran.

Tolerances, per tensor: max|fast - generic| / max(max|generic|, 1e-30) (conftest.assert_close_rel,
the scale is the tensor's own largest value, so Adam's tiny second moments are judged against
their own size):
* float64, 10 epochs: 1e-12.
* float32, 10 epochs: TOL32 below (the largest error measured over these configurations and 20
  seeds, by tensor kind, times about 10; see docs/design.md "The engine's fast path").
Per sample the fast path computes what the generic path computes, bitwise; only the order of
the batch sums (weight and bias gradients, the moments) differs. The G forward pass is checked
bitwise (through the fake mean/std metrics with frozen weights).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import assert_close_rel, requires_ext
from ganfast import _ext
from ganfast.app.config import load_preset
from ganfast.engine import train_fused
from ganfast.reference_train import train_reference
from ganfast.state import init_state

pytestmark = requires_ext

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOAT_FIELDS = ("g_params", "d_params", "g_opt", "d_opt")
INT_FIELDS = ("offsets", "epochs", "seeds", "lrs")
TINY = 1e-30
TOL64 = 1e-12
#: float32, 10 epochs, fast vs generic: parameters, and the optimizer buffers (momentum = recent
#: gradients, Adam moments), whose sums differ most.
TOL32 = {"g_params": 2e-6, "d_params": 2e-6, "g_opt": 1e-4, "d_opt": 1e-4, "metrics": 2e-6}

#: Configurations with fast-path kernels: name -> (preset, overrides). Odd batches leave a
#: partial vector and a partial chunk; the variants cover the loss, the noise, the data and
#: the optimizers on the fast path.
FAST = {
    "devnag": ("devnag", {"batch_size": 77, "d_steps": 5, "g_steps": 5}),
    "devnag-elu": ("devnag-elu", {"batch_size": 64, "d_steps": 4, "g_steps": 3}),
    "devnag-minimax-normal": ("devnag", {"loss.generator": "minimax", "noise": {"kind": "normal", "dim": 1},
                                         "batch_size": 33, "d_steps": 3, "g_steps": 3}),
    "devnag-adam-steplr": ("devnag", {"batch_size": 50, "d_steps": 2, "g_steps": 2,
                                      "optimizer_d": {"kind": "adam", "lr": 2e-3, "betas": [0.5, 0.999],
                                                      "step_lr": {"step_size": 3, "gamma": 0.5}},
                                      "optimizer_g": {"kind": "adam", "lr": 1e-3}}),
    "vanilla": ("vanilla", {"batch_size": 45}),
    "vanilla-mixture-minimax": ("vanilla", {"batch_size": 70, "loss.generator": "minimax",
                                            "data": {"kind": "mixture", "centers": [[-2.0], [0.5], [3.0]],
                                                     "std": 0.4, "weights": [0.15, 0.6, 0.25]}}),
    "vanilla-sgd-population": ("vanilla", {"batch_size": 32, "population": 2, "seed": 9,
                                           "optimizer_d": {"kind": "sgd", "lr": 0.05, "momentum": 0.5},
                                           "optimizer_g": {"kind": "sgd", "lr": 0.02, "momentum": 0.0}}),
}


def cfg_of(name: str, dtype: str = "float64", **more):
    preset, overrides = FAST[name]
    return load_preset(preset).replace({"dtype": dtype, **overrides, **more})


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train(monkeypatch, path: str, cfg, state, epochs: int):
    """Train `state` in place on the given engine path; returns the metrics."""
    monkeypatch.setenv("GANFAST_ENGINE_PATH", path)
    try:
        return train_fused(cfg, state, epochs)
    finally:
        monkeypatch.delenv("GANFAST_ENGINE_PATH")


def both_paths(monkeypatch, cfg, epochs: int, state=None):
    start = init_state(cfg) if state is None else state
    fast, generic = start.clone(), start.clone()
    m_fast = train(monkeypatch, "fast", cfg, fast, epochs)
    m_generic = train(monkeypatch, "generic", cfg, generic, epochs)
    return start, fast, generic, m_fast, m_generic


def assert_states_equal(a, b):
    for name, t in a.tensors().items():
        assert torch.equal(t, getattr(b, name)), f"{name} differs"


def assert_close_states(fast, generic, m_fast, m_generic, tol):
    for name in FLOAT_FIELDS:
        assert_close_rel(getattr(fast, name), getattr(generic, name), tol[name] if isinstance(tol, dict) else tol,
                         tiny=TINY, what=name)
    for name in INT_FIELDS:
        assert torch.equal(getattr(fast, name), getattr(generic, name)), name
    assert torch.equal(m_fast.isnan(), m_generic.isnan())
    assert_close_rel(m_fast.nan_to_num(0.0), m_generic.nan_to_num(0.0),
                     tol["metrics"] if isinstance(tol, dict) else tol, tiny=TINY, what="metrics")


# --- fast == generic -----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FAST))
def test_fast_matches_generic_float64(monkeypatch, name):
    cfg = cfg_of(name)
    start, fast, generic, m_fast, m_generic = both_paths(monkeypatch, cfg, 10)
    assert_close_states(fast, generic, m_fast, m_generic, TOL64)
    assert not torch.equal(fast.g_params, start.g_params) and not torch.equal(fast.d_params, start.d_params)


@pytest.mark.parametrize("name", list(FAST))
def test_fast_matches_generic_float32(monkeypatch, name):
    cfg = cfg_of(name, "float32")
    _, fast, generic, m_fast, m_generic = both_paths(monkeypatch, cfg, 10)
    assert_close_states(fast, generic, m_fast, m_generic, TOL32)


def test_full_size_presets_float32(monkeypatch):
    """The unshrunk devnag and vanilla presets (batches 500 and 2048), 2 epochs each."""
    for preset in ("devnag", "vanilla"):
        cfg = load_preset(preset)
        _, fast, generic, m_fast, m_generic = both_paths(monkeypatch, cfg, 2)
        assert_close_states(fast, generic, m_fast, m_generic, TOL32)


@pytest.mark.parametrize("name", ["devnag", "devnag-elu", "vanilla"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_g_forward_is_bitwise_the_generic_one(monkeypatch, name, dtype):
    """One G step from the initial weights: its fake mean/std metrics (of the batch G generated
    before its update) are bitwise equal, so the fast forward pass (layer products, tanh, ELU,
    ReLU, dropout) gives the generic path's bits."""
    cfg = cfg_of(name, dtype, d_steps=0, g_steps=1)
    _, fast, generic, m_fast, m_generic = both_paths(monkeypatch, cfg, 1)
    assert torch.equal(m_fast[:, 3:], m_generic[:, 3:])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_raw_d_forward_is_bitwise_the_generic_one(monkeypatch, dtype):
    """vanilla's D (raw input, tanh, dropout), one D step from the initial weights: its losses
    on the real and the generated batch (computed before the update) are bitwise equal."""
    cfg = cfg_of("vanilla", dtype, d_steps=1, g_steps=0)
    _, fast, generic, m_fast, m_generic = both_paths(monkeypatch, cfg, 1)
    assert torch.equal(m_fast[:, :2], m_generic[:, :2])


# --- the reference trainer on both paths ---------------------------------------------------

@pytest.mark.parametrize("path", ["fast", "generic"])
@pytest.mark.parametrize("name", ["devnag", "vanilla-mixture-minimax", "devnag-adam-steplr"])
def test_both_paths_match_the_reference_float64(monkeypatch, path, name):
    cfg = cfg_of(name, d_steps=2, g_steps=2) if name.startswith("devnag") else cfg_of(name)
    start = init_state(cfg)
    fused, ref = start.clone(), start.clone()
    m = train(monkeypatch, path, cfg, fused, 4)
    m_ref = train_reference(cfg, ref, 4)
    for name_ in FLOAT_FIELDS:
        assert_close_rel(getattr(fused, name_), getattr(ref, name_), 1e-10, tiny=TINY, what=name_)
    assert torch.equal(fused.offsets, ref.offsets)
    assert_close_rel(m, m_ref, 1e-10, tiny=TINY, what="metrics")


# --- population, chunks, threads on the fast path (bitwise) --------------------------------

@pytest.mark.parametrize("name", ["devnag", "vanilla"])
def test_population_member_equals_solo_run_fast(monkeypatch, name):
    cfg = cfg_of(name, "float32", population=3, seed=5)
    lrs = [[1e-3, 2e-3], [5e-4, 1e-3], [3e-3, 4e-4]]
    pop = init_state(cfg, lrs=lrs)
    m_pop = train(monkeypatch, "fast", cfg, pop, 4)
    for k in range(3):
        one_cfg = cfg.replace(seed=cfg.seed + k, population=1)
        one = init_state(one_cfg, lrs=[lrs[k]])
        m_one = train(monkeypatch, "fast", one_cfg, one, 4)
        assert_states_equal(pop.member(k), one)
        assert torch.equal(m_pop[k:k + 1], m_one)


@pytest.mark.parametrize("name", ["devnag-adam-steplr", "vanilla"])
def test_chunked_calls_equal_one_call_fast(monkeypatch, name):
    cfg = cfg_of(name, "float32")
    a = init_state(cfg)
    b = a.clone()
    m_a = train(monkeypatch, "fast", cfg, a, 7)
    train(monkeypatch, "fast", cfg, b, 3)
    train(monkeypatch, "fast", cfg, b, 1)
    m_b = train(monkeypatch, "fast", cfg, b, 3)
    assert_states_equal(a, b)
    assert torch.equal(m_a, m_b)


def test_thread_count_does_not_change_results_fast(monkeypatch):
    cfg = cfg_of("vanilla", "float32", population=4, seed=3)
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        s = init_state(cfg)
        results.append((s, train(monkeypatch, "fast", cfg, s, 3)))
    assert_states_equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


# --- the switch ------------------------------------------------------------------------------

def test_auto_takes_the_fast_path_where_it_has_kernels(monkeypatch):
    """auto (the default) == fast on a table shape, == generic elsewhere, bitwise."""
    for name, table in (("devnag", True), ("how-to-gan", False)):
        cfg = cfg_of(name, "float32") if table else load_preset(name).replace(batch_size=40)
        start = init_state(cfg)
        runs = {}
        for path in ("auto", "generic") + (("fast",) if table else ()):
            s = start.clone()
            runs[path] = (s, train(monkeypatch, path, cfg, s, 2))
        same = "fast" if table else "generic"
        assert_states_equal(runs["auto"][0], runs[same][0])
        if table:  # the batch sums' order differs: the two paths do not give the same bits
            assert not torch.equal(runs["fast"][0].g_opt, runs["generic"][0].g_opt)


@pytest.mark.parametrize("name", ["how-to-gan", "ring8"])
def test_fast_path_refuses_shapes_without_kernels(monkeypatch, name):
    cfg = load_preset(name).replace(batch_size=16)
    with pytest.raises(ValueError, match="no kernels for G 1-32-32-1|no kernels for G 2-64-64-2"):
        train(monkeypatch, "fast", cfg, init_state(cfg), 1)


def test_fast_path_refuses_other_activations(monkeypatch):
    """The table fixes activations too: devnag's shapes with a ReLU G take the generic path."""
    cfg = cfg_of("devnag", "float32", **{"generator.activation": "relu"})
    with pytest.raises(ValueError, match="no kernels"):
        train(monkeypatch, "fast", cfg, init_state(cfg), 1)
    s = init_state(cfg)
    train(monkeypatch, "auto", cfg, s, 1)  # and auto trains it (generically)


def test_bad_engine_path_value_raises(monkeypatch):
    cfg = cfg_of("devnag", "float32")
    with pytest.raises(ValueError, match="GANFAST_ENGINE_PATH must be auto, generic or fast"):
        train(monkeypatch, "fastest", cfg, init_state(cfg), 1)


# --- the CPU builds ---------------------------------------------------------------------------

def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return False


HAS_AVX2 = _cpu_has("avx2") and _cpu_has("fma")
HAS_AVX512 = all(_cpu_has(f) for f in ("avx512f", "avx512dq", "avx512bw", "avx512vl"))

#: Every build this CPU can run, and the test-only 16-lane build (the AVX-512 build's logic).
ISAS = ["baseline"] + (["avx2", "avx2x16"] if HAS_AVX2 else []) + (["avx512"] if HAS_AVX512 else [])
#: The builds in the loaded library: avx2x16 only where it was built with GANFAST_AVX2X16=1
#: (ganfast/_build.py; the developers' check of the 16-lane build), so its tests skip, saying so,
#: elsewhere. CI runs the 16-lane core logic natively instead (ctest: ganfast_core_tests_x16).
BUILT = (_ext.info()["cpu_isas_built"] or []) if _ext.AVAILABLE else []


def _require_built(isa: str):
    if isa not in BUILT:
        pytest.skip(f"the loaded library has no {isa} build (built: {BUILT}); GANFAST_AVX2X16=1 python -m ganfast build")

CHILD = r"""
import json, sys, torch
import ganfast
from ganfast import _ext
print("RESULT " + json.dumps({"isa": _ext._C.CPU_ISA}))
"""


def _run_child(isa: str, code: str = CHILD, args=()):
    env = dict(os.environ, GANFAST_CPU_ISA=isa)
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"GANFAST_CPU_ISA={isa} child failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT "):]), proc.stderr


@pytest.mark.parametrize("isa", ISAS)
def test_forced_isa_is_used(isa):
    _require_built(isa)
    out, err = _run_child(isa)
    assert out["isa"] == isa, err


def test_forcing_an_isa_the_cpu_lacks_falls_back_with_a_message():
    if HAS_AVX512:
        pytest.skip("this CPU runs the AVX-512 build")
    out, err = _run_child("avx512")
    assert out["isa"] == ("avx2" if HAS_AVX2 else "baseline")
    assert "GANFAST_CPU_ISA=avx512, but this CPU cannot run that build" in err


def test_forcing_avx2x16_without_it_built_falls_back_with_a_message():
    if "avx2x16" in BUILT:
        pytest.skip("this library has the avx2x16 build")
    out, err = _run_child("avx2x16")
    assert out["isa"] in ("baseline", "avx2", "avx512")
    assert "built without the test-only avx2x16 build (GANFAST_AVX2X16=1" in err


def test_unknown_isa_falls_back_with_a_message():
    out, err = _run_child("sse9")
    assert out["isa"] in ("baseline", "avx2", "avx512")
    assert "unknown GANFAST_CPU_ISA=sse9" in err


#: The engine and op tests, and this file's in-process tests, run again under every other build.
ISA_SUITE = ["tests/test_fastpath.py", "tests/test_engine.py", "tests/test_ops.py"]


@pytest.mark.slow
@pytest.mark.parametrize("isa", [i for i in ISAS if i != _ext._C.CPU_ISA] if _ext.AVAILABLE else [])
def test_engine_and_op_tests_pass_under_every_build(isa):
    """pytest on the engine, op and fast-path tests in a child process with GANFAST_CPU_ISA set
    (the child's own subprocess tests are left out: they run here)."""
    _require_built(isa)
    env = dict(os.environ, GANFAST_CPU_ISA=isa)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *ISA_SUITE,
         "-k", "not under_every_build and not forced_isa and not falls_back"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(proc.stdout.splitlines()[-30:])
    assert proc.returncode == 0, f"GANFAST_CPU_ISA={isa}:\n{tail}\n{proc.stderr[-3000:]}"
    assert " passed" in tail
