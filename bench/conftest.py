"""Fixtures and the summary of the fused-vs-reference benchmarks (bench/bench_ops.py).

Every benchmark records `extra_info["backend"]` ("fused", "reference", or the diagnostic
"kernels_only") and shares its pytest-benchmark group with its counterparts, so they sit side by
side in the timing table; the session-end hook below adds one line per group: reference median /
fused median (and the kernels-only median where measured).

All timings are single-threaded (torch.set_num_threads(1), set for the whole session below):
the fused CPU ops split work with at::parallel_for, which follows torch's intra-op thread
count, so both sides run on one core and the ratio measures the kernels, not the core count.
"""
from __future__ import annotations

# torch before ganfast: ganfast._C links libc10/libtorch without an rpath and only loads once
# torch's libraries are in the process (see the report on ganfast/_ext.py).
import torch  # noqa: I001

import os
import platform
import sys

import pytest

import ganfast

sys.path.insert(0, os.path.dirname(__file__))  # bench/seed_devnag.py

#: The headline target: fused fwd+bwd of devnag's G at batch 500 at least this much faster.
TARGET_GROUP = "mlp fwd+bwd devnag_G N=500"
TARGET_SPEEDUP = 3.0


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """One intra-op thread for the whole session (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def engine_path(monkeypatch):
    """engine_path("generic" | "auto" | "fast"): GANFAST_ENGINE_PATH for the rest of the
    benchmark (the engine reads it at every call; restored afterwards)."""
    def set_path(path: str):
        monkeypatch.setenv("GANFAST_ENGINE_PATH", path)
    return set_path


def machine_line() -> str:
    """CPU model, the ganfast CPU build in use, threads: recorded with every figure."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from ganfast import _ext
    isa = getattr(_ext._C, "CPU_ISA", "?") if _ext.AVAILABLE else "no extension"
    return (f"machine: {model}, {os.cpu_count()} logical CPUs; ganfast CPU build {isa}"
            f" (GANFAST_CPU_ISA={os.environ.get('GANFAST_CPU_ISA', 'unset')}); torch {torch.__version__}")


@pytest.fixture
def require_fused():
    """Skip fused benchmarks when the extension did not load (the fallback is the reference)."""
    if not ganfast.extension_available():
        from ganfast import _ext

        pytest.skip(f"ganfast extension unavailable: {_ext.UNAVAILABLE_REASON}")


#: Epochs per call of bench_train.bench_population (its GAN-epochs/s in the summary).
POPULATION_EPOCHS = 20


def _fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.3f} ms"
    return f"{seconds * 1e6:8.1f} us"


def _medians(config):
    """{group: {backend: median seconds}} from this session's benchmarks."""
    session = getattr(config, "_benchmarksession", None)
    out: dict = {}
    if session is None or getattr(session, "disabled", False):
        return out
    for bench in session.benchmarks:
        backend = (bench.extra_info or {}).get("backend")
        if backend is None or bench.has_error or not bench.stats or not bench.stats.rounds:
            continue
        out.setdefault(bench.group, {})[backend] = bench.stats.median
    return out


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    groups = _medians(config)
    session = getattr(config, "_benchmarksession", None)
    scaling = [b.extra_info for b in getattr(session, "benchmarks", None) or []
               if "median_ratio" in (b.extra_info or {})]  # bench_train.bench_thread_scaling
    if not groups and not scaling:
        return
    tr = terminalreporter
    tr.write_sep("-", "fused vs reference: ratio of medians (single-threaded torch)")
    tr.write_line(machine_line())
    for info in scaling:
        tr.write_line(f"population thread scaling (interleaved) P{info['population']}: 2 threads / 1 thread = "
                      f"{info['median_ratio']:4.2f}x (median of {len(info['ratios'])} rounds; range "
                      f"{min(info['ratios']):.2f}-{max(info['ratios']):.2f})")
    width = max((len(g) for g in groups), default=0)
    for group in sorted(groups):
        times = groups[group]
        ref, fused = times.get("reference"), times.get("fused")
        generic = times.get("generic")
        if generic is not None and fused is not None:  # the engine before / after the fast path
            tr.write_line(f"{group:<{width}}: generic median / auto median = {generic / fused:5.2f}x"
                          f"   (generic {_fmt_time(generic)}, auto {_fmt_time(fused)})")
            continue
        if ref is None or fused is None:
            for backend, t in sorted(times.items()):  # single-sided groups: absolute times
                line = f"{group:<{width}}: {backend} median {_fmt_time(t)}"
                if backend == "jax" and fused is not None:
                    line += f"   [fused {_fmt_time(fused)}: {t / fused:.1f}x faster than jax]"
                tr.write_line(line)
            continue
        ratio = ref / fused
        line = (f"{group:<{width}}: reference median / fused median = {ratio:5.1f}x"
                f"   (reference {_fmt_time(ref)}, fused {_fmt_time(fused)})")
        if "kernels_only" in times:
            line += f"   [fused kernels alone {_fmt_time(times['kernels_only'])}]"
        if "compiled_reference" in times:
            line += (f"   [torch.compile {_fmt_time(times['compiled_reference'])}:"
                     f" {times['compiled_reference'] / fused:.0f}x]")
        if "philox_reference" in times:
            line += (f"   [ganfast.reference_train {_fmt_time(times['philox_reference'])}:"
                     f" {times['philox_reference'] / fused:.0f}x]")
        if "jax" in times:
            line += f"   [jax jit+scan {_fmt_time(times['jax'])}: {times['jax'] / fused:.1f}x]"
        if group == TARGET_GROUP:
            verdict = "met" if ratio >= TARGET_SPEEDUP else "MISSED"
            line += f"   [target >= {TARGET_SPEEDUP:.0f}x: {verdict}]"
        tr.write_line(line)
    one, two = groups.get("population threads=1", {}), groups.get("population threads=2", {})
    for backend in sorted(set(one) & set(two), key=lambda b: int(b.rsplit("P", 1)[-1])):
        gans = int(backend.rsplit("P", 1)[-1]) * POPULATION_EPOCHS  # bench_train.bench_population
        tr.write_line(f"population {backend[len('population_'):]:>5}: 2 threads / 1 thread = {one[backend] / two[backend]:4.2f}x"
                      f"   ({gans / one[backend]:9.0f} GAN-epochs/s on 1 thread, {gans / two[backend]:9.0f} on 2)")
