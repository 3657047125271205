"""The build of the kernels against the running torch (ganfast/_build.py) and the choices of
ganfast/_ext.py: flag lists, cache key, stamp, CUDA_HOME, and in fresh interpreters two
processes compiling into one empty cache at once, forged stamps, a failing or missing compiler,
an ahead-of-time library, and `python -m ganfast info`.

The subprocess tests share one real compile (`fresh_cache`, about 1.5 minutes on 2 cores): two
processes start together on an empty GANFAST_CACHE; later tests copy that cache and forge it.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

from ganfast import _build

REPO = Path(__file__).resolve().parents[1]
CSRC = _build.source_root()
RT = _build.runtime()

CHILD = r"""
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import ganfast
    import torch
    from ganfast import _ext
out = ganfast.info()
out["has_op"] = hasattr(torch.ops.ganfast, "mlp_forward")
out["warnings"] = [[w.category.__name__, str(w.message)] for w in caught if w.category.__name__ == "FallbackWarning"]
if out["extension"]:  # the library runs: one fused op against the reference sampler
    from ganfast import random as philox
    got = ganfast.uniform(64, 5, 3, backend="fused")
    out["op_ok"] = bool(torch.equal(got, philox.uniform(64, 5, 3)))
print("RESULT " + json.dumps(out))
"""


def _package_copy(site: Path) -> Path:
    """A copy of the package at site/ganfast without a built library (no _C*.so, no stamp)."""
    pkg = site / "ganfast"
    shutil.copytree(REPO / "ganfast", pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "_C*.so", "_C.build.json", "_csrc"))
    return pkg


@functools.cache
def clean_site() -> Path:
    """Where the children import ganfast from: the package and its sources, never an
    ahead-of-time library (a developer's `pip install --no-build-isolation -e .` leaves one in
    the checkout, and the children would load it instead of exercising the cache)."""
    site = Path(tempfile.mkdtemp(prefix="ganfast-site-"))
    atexit.register(shutil.rmtree, site, True)
    (_package_copy(site) / "_csrc").symlink_to(CSRC)
    return site


def child_env(cache, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFAST_")}
    env["GANFAST_CACHE"] = str(cache)
    env["PYTHONPATH"] = str(clean_site())
    env.update(extra)
    return env


def spawn(env, cwd=None, code=CHILD, args=()):
    cwd = clean_site() if cwd is None else cwd
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=900):
    stdout, stderr = proc.communicate(timeout=timeout)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n{stdout}\n{stderr}"
    out = json.loads(lines[-1][len("RESULT "):])
    out["stderr"] = stderr
    return out


def run_child(env, **kw):
    return finish(spawn(env, **kw))


def key_dirs(cache):
    return [p for p in Path(cache).iterdir() if p.is_dir()]


def key_dir_of(cache):
    """The cache folder of this Python, torch and these sources (it must exist), as the children
    build it (child_env: no GANFAST_ variables, so no GANFAST_AVX2X16 either)."""
    test_isa = os.environ.pop("GANFAST_AVX2X16", None)
    try:
        desc = _build.describe(CSRC, RT)
    finally:
        if test_isa is not None:
            os.environ["GANFAST_AVX2X16"] = test_isa
    d = Path(cache) / _build.cache_key(desc, RT)
    assert d.is_dir(), (d, key_dirs(cache))
    return d


# --- flag lists -----------------------------------------------------------------------------------

def test_read_flags_skips_comments_and_rejects_two_flags_on_a_line(tmp_path):
    f = tmp_path / "flags.txt"
    f.write_text("# a comment\n\n-O3\n   # indented comment\n  -ffp-contract=off  \n")
    assert _build.read_flags(f) == ["-O3", "-ffp-contract=off"]
    f.write_text("-O3 -g\n")
    with pytest.raises(ValueError, match="one flag per line"):
        _build.read_flags(f)


def test_the_flag_lists_have_the_numerics_flags_and_no_std():
    cxx = _build.read_flags(CSRC / "flags" / "cxx.txt")
    nvcc = _build.read_flags(CSRC / "flags" / "nvcc.txt")
    assert "-ffp-contract=off" in cxx and "--fmad=false" in nvcc
    assert not [f for f in cxx + nvcc if f.startswith("-std") or f in ("-march=native", "-ffast-math")]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_reads_the_same_flag_lists(tmp_path):
    out = subprocess.run(["cmake", "-S", str(REPO), "-B", str(tmp_path / "b")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for name, var in (("cxx.txt", "GANFAST_CXX_FLAGS"), ("nvcc.txt", "GANFAST_NVCC_FLAGS")):
        m = re.search(rf"ganfast: {var}=(.*)$", out.stdout, re.M)
        assert m, out.stdout
        assert m.group(1).split(";") == _build.read_flags(CSRC / "flags" / name)


# --- sources, key, stamp --------------------------------------------------------------------------

def test_sources_are_globbed_and_hashed(tmp_path, monkeypatch):
    monkeypatch.delenv("GANFAST_AVX2X16", raising=False)
    root = tmp_path / "csrc"
    shutil.copytree(CSRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    names = [p.relative_to(root).as_posix() for p in _build.source_files(root, cuda=True)]
    assert "ops.cpp" in names and "cpu/kernels_avx2.cpp" in names and "cuda/ops_cuda.cu" in names
    assert not [n for n in _build.source_files(root, cuda=False) if n.suffix == ".cu"]
    h0 = _build.source_hash(root)
    assert h0 == _build.source_hash(root) == _build.source_hash(CSRC)
    (root / "tests" / "test_core.cpp").write_text("// the native tests are not part of the extension\n")
    assert _build.source_hash(root) == h0
    header = root / "core" / "philox.h"
    header.write_text(header.read_text() + "\n// edited\n")
    h1 = _build.source_hash(root)
    assert h1 != h0
    (root / "cpu" / "kernels_avx512.cpp").write_text("// a new ISA build\n")
    assert "cpu/kernels_avx512.cpp" in [p.relative_to(root).as_posix() for p in _build.source_files(root, False)]
    assert _build.cpu_isas(root) == ["baseline", "avx2", "avx512"]
    assert _build.source_hash(root) != h1
    # the test-only 16-lane AVX2 build: compiled in on request, with its define (and own key)
    assert "GANFAST_AVX2X16=1" not in _build.describe(root, RT)["defines"]
    monkeypatch.setenv("GANFAST_AVX2X16", "1")
    assert _build.cpu_isas(root) == ["baseline", "avx2", "avx2x16", "avx512"]
    assert "GANFAST_AVX2X16=1" in _build.describe(root, RT)["defines"]


def test_cache_key_changes_with_torch_python_sources_and_flags():
    desc = _build.describe(CSRC, RT)
    key = _build.cache_key(desc, RT)
    assert key == _build.cache_key(json.loads(json.dumps(desc)), dict(RT))  # stable
    py = RT["python"]
    assert re.fullmatch(rf"{py}-torch{re.escape(RT['torch'])}-(cpu|cu\d+)-[0-9a-f]{{12}}", key), key
    changed = {
        "torch": _build.cache_key(desc, {**RT, "torch": "2.99.0"}),
        "torch_git": _build.cache_key(desc, {**RT, "torch_git": "0" * 40}),
        "python": _build.cache_key(desc, {**RT, "python": "cpython-399"}),
        "sources": _build.cache_key({**desc, "source_hash": "0" * 64}, RT),
        "cxx_flags": _build.cache_key({**desc, "cxx_flags": desc["cxx_flags"] + ["-g"]}, RT),
        "nvcc_flags": _build.cache_key({**desc, "nvcc_flags": desc["nvcc_flags"] + ["-G"]}, RT),
        "cuda": _build.cache_key({**desc, "cuda": not desc["cuda"], "cuda_arch_list": "9.0"},
                                 {**RT, "cuda": RT["cuda"] or "13.0"}),
    }
    assert len(set(changed.values()) | {key}) == len(changed) + 1, changed


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GANFAST_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _build.cache_root() == tmp_path / "home" / ".cache" / "ganfast"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _build.cache_root() == tmp_path / "xdg" / "ganfast"
    monkeypatch.setenv("GANFAST_CACHE", str(tmp_path / "mine"))
    assert _build.cache_root() == tmp_path / "mine"


def test_check_stamp_names_the_first_difference():
    desc = _build.describe(CSRC, RT)
    stamp = _build.make_stamp(desc, RT, "jit", 1.0, None)
    assert _build.check_stamp(stamp, RT, desc["source_hash"]) is None
    assert _build.check_stamp(None, RT, None) == "it has no build stamp"
    forged = {
        "torch": ("0.0.0", f"it was built for torch 0.0.0, this is torch {RT['torch']}"),
        "python": ("cpython-27", f"it was built for Python cpython-27, this is Python {RT['python']}"),
        "cuda": ("11.8" if RT["cuda"] is None else None, "it was built for torch's CUDA "),
        "torch_git": ("f" * 40, "another build of torch"),
        "source_hash": ("0" * 64, "built from other sources"),
        "schema": (0, "schema 0"),
    }
    for field, (value, words) in forged.items():
        if field == "torch_git" and not RT["torch_git"]:
            continue
        reason = _build.check_stamp({**stamp, field: value}, RT, desc["source_hash"])
        assert reason and words in reason, (field, reason)
    # without sources to compare (an install that ships none) the hash is not checked
    assert _build.check_stamp({**stamp, "source_hash": "x"}, RT, None) is None


# --- CUDA -----------------------------------------------------------------------------------------

def _fake_toolkit(tmp_path):
    home = tmp_path / "cuda-13.9"
    (home / "bin").mkdir(parents=True)
    (home / "include").mkdir()
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(f'#!/bin/sh\necho "#\\$ _HERE_={home}/bin" >&2\necho "#\\$ TOP={home}/bin/.." >&2\n')
    nvcc.chmod(0o755)
    return home


def test_cuda_home_through_a_wrapper_script_and_a_symlink(tmp_path, monkeypatch):
    home = _fake_toolkit(tmp_path)
    wrap = tmp_path / "wrapper-bin"
    wrap.mkdir()
    (wrap / "nvcc").write_text(f'#!/bin/sh\nexec {home}/bin/nvcc "$@"\n')
    (wrap / "nvcc").chmod(0o755)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("PATH", f"{wrap}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert _build.find_cuda_home() == str(home)  # not the wrapper's parent, tmp_path
    (home / "include" / "cuda_runtime.h").write_text("")
    link = tmp_path / "link-bin"
    link.mkdir()
    (link / "nvcc").symlink_to(home / "bin" / "nvcc")
    monkeypatch.setenv("PATH", f"{link}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert _build.find_cuda_home() == str(home)
    monkeypatch.setenv("CUDA_HOME", "/opt/my-cuda")
    assert _build.find_cuda_home() == "/opt/my-cuda"  # CUDA_HOME wins


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_home_of_the_installed_nvcc(monkeypatch):
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    home = Path(_build.find_cuda_home())
    assert (home / "bin" / "nvcc").is_file() and (home / "include" / "cuda_runtime.h").is_file()


def test_cuda_choice(tmp_path, monkeypatch):
    home = _fake_toolkit(tmp_path)
    monkeypatch.setenv("CUDA_HOME", str(home))
    monkeypatch.delenv("GANFAST_CUDA", raising=False)
    assert _build.cuda_choice(None)[0] is False
    assert _build.cuda_choice("13.0")[0] is True
    monkeypatch.setenv("GANFAST_CUDA", "0")
    assert _build.cuda_choice("13.0") == (False, "GANFAST_CUDA=0")
    monkeypatch.setenv("GANFAST_CUDA", "1")
    with pytest.raises(_build.BuildUnavailable, match="CPU build"):
        _build.cuda_choice(None)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(_build.BuildUnavailable, match="nvcc was not found"):
        _build.cuda_choice("13.0")
    monkeypatch.delenv("GANFAST_CUDA")
    assert _build.cuda_choice("13.0")[0] is False


def test_cuda_arch_list(monkeypatch):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert _build.cuda_arch_list() == "9.0"
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST")
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        assert f"{major}.{minor}" in _build.cuda_arch_list().split(";")
    else:
        assert _build.cuda_arch_list() == "8.0;8.6;8.9;9.0"


# --- fresh interpreters ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """Two processes import ganfast at once on an empty cache: (their results, the cache)."""
    cache = tmp_path_factory.mktemp("ganfast-cache")
    procs = [spawn(child_env(cache)) for _ in range(2)]
    return [finish(p) for p in procs], cache


def test_two_processes_compile_once_into_an_empty_cache(fresh_cache):
    results, cache = fresh_cache
    for res in results:
        assert res["extension"] and res["has_op"] and res["op_ok"], res
        assert not res["warnings"]
    assert sorted(r["kernels_from"] for r in results) == ["cache", "jit"]
    compiles = [line for r in results for line in r["stderr"].splitlines() if "ganfast: compiling kernels" in line]
    assert len(compiles) == 1, [r["stderr"] for r in results]
    assert f"for torch {RT['torch']}, CPU (baseline+avx2" in compiles[0] and str(cache) in compiles[0]
    (key_dir,) = key_dirs(cache)
    assert {r["library"] for r in results} == {str(key_dir / "_C.so")}
    stamp = json.loads((key_dir / _build.CACHE_STAMP).read_text())
    assert stamp["torch"] == RT["torch"] and stamp["built_by"] == "jit" and stamp["build_seconds"] > 0
    assert not (key_dir / "lock").exists()


def _forged_cache(fresh_cache, tmp_path, **fields):
    _, cache = fresh_cache
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    key_dir = key_dir_of(copy)
    stamp = json.loads((key_dir / _build.CACHE_STAMP).read_text())
    _build.write_json(key_dir / _build.CACHE_STAMP, {**stamp, **fields})
    return copy, key_dir


def _fallback_message(res):
    assert res["extension"] is False and res["has_op"] is False  # the stale library was not loaded
    (warning,) = res["warnings"]
    assert warning[0] == "FallbackWarning" and "pure-PyTorch fallback" in warning[1]
    return warning[1]


def test_forged_stamp_without_jit_names_the_mismatch_and_the_fix(fresh_cache, tmp_path):
    cache, _ = _forged_cache(fresh_cache, tmp_path, torch="0.0.0")
    res = run_child(child_env(cache, GANFAST_JIT="0"))
    message = _fallback_message(res)
    assert f"it was built for torch 0.0.0, this is torch {RT['torch']}" in message
    assert "GANFAST_JIT=0" in message and "Fix: `python -m ganfast build`" in message
    assert res["fix"] == "`python -m ganfast build`"


def _fake_compiler(tmp_path):
    marker = tmp_path / "compiler-calls"
    cxx = tmp_path / "fake-c++"
    # answers torch's version queries as the real compiler does; fails every compile (-c)
    cxx.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        for a in "$@"; do
          if [ "$a" = "-c" ]; then
            echo called >> {marker}
            echo "fake-c++: error: this compiler always fails" >&2
            exit 1
          fi
        done
        exec {shutil.which("c++") or "c++"} "$@"
        """))
    cxx.chmod(0o755)
    return cxx, marker


def test_forged_stamp_recompiles_and_a_failure_is_reported_once(fresh_cache, tmp_path):
    cache, key_dir = _forged_cache(fresh_cache, tmp_path, torch="0.0.0")
    cxx, marker = _fake_compiler(tmp_path)
    res = run_child(child_env(cache, CXX=str(cxx)))
    message = _fallback_message(res)
    assert marker.exists()  # the mismatched library made it compile again
    assert "compiling the kernels failed" in message and "this compiler always fails" in message
    assert "Fix: fix the cause above, then `python -m ganfast build`" in message
    assert "ganfast: compiling kernels" in res["stderr"]
    assert (key_dir / _build.BUILD_LOG).is_file()
    calls = marker.read_text().count("called")
    again = run_child(child_env(cache, CXX=str(cxx)))  # remembered: no second compile per import
    assert "this compiler always fails" in _fallback_message(again)
    assert marker.read_text().count("called") == calls
    assert "ganfast: compiling kernels" not in again["stderr"]


def test_no_compiler_names_the_cause_and_the_command(tmp_path):
    res = run_child(child_env(tmp_path / "empty", CXX=str(tmp_path / "no-such-c++")))
    message = _fallback_message(res)
    assert f"no C++ compiler: `{tmp_path / 'no-such-c++'}` is not on the PATH" in message
    assert "Fix: `sudo apt-get install g++`" in message


def _aot_install(fresh_cache, tmp_path, with_sources: bool, **forged):
    """A copy of the package with the built library as an ahead-of-time ganfast/_C*.so."""
    key_dir = key_dir_of(fresh_cache[1])
    site = tmp_path / "site"
    pkg = _package_copy(site)
    shutil.copy2(key_dir / "_C.so", pkg / ("_C" + sysconfig.get_config_var("EXT_SUFFIX")))
    stamp = json.loads((key_dir / _build.CACHE_STAMP).read_text())
    _build.write_json(pkg / _build.AOT_STAMP, {**stamp, "built_by": "aot", **forged})
    if with_sources:
        (pkg / "_csrc").symlink_to(CSRC)
    return site


def aot_env(site, cache):
    return child_env(cache, PYTHONPATH=str(site))


def test_aot_library_with_a_matching_stamp_loads(fresh_cache, tmp_path):
    site = _aot_install(fresh_cache, tmp_path, with_sources=False)
    res = run_child(aot_env(site, tmp_path / "empty"), cwd=tmp_path)
    assert res["extension"] and res["op_ok"] and res["kernels_from"] == "aot"
    assert res["library"].startswith(str(site))


def test_aot_library_for_another_python_is_never_loaded(fresh_cache, tmp_path):
    site = _aot_install(fresh_cache, tmp_path, with_sources=False, python="cpython-27")
    res = run_child(aot_env(site, tmp_path / "empty"), cwd=tmp_path)
    message = _fallback_message(res)
    assert f"built for Python cpython-27, this is Python {RT['python']}" in message
    assert "neither kernels for this torch nor their C++ sources" in message


def test_aot_library_for_another_torch_is_replaced_by_a_build_for_this_one(fresh_cache, tmp_path):
    site = _aot_install(fresh_cache, tmp_path, with_sources=True, torch="0.0.0")
    res = run_child(aot_env(site, fresh_cache[1]), cwd=tmp_path)
    assert res["extension"] and res["op_ok"] and res["kernels_from"] == "cache", res
    assert res["library"].startswith(str(fresh_cache[1]))


def test_info_command(fresh_cache):
    env = child_env(fresh_cache[1])
    out = subprocess.run([sys.executable, "-m", "ganfast", "info", "--json"], cwd=clean_site(), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["extension"] is True and info["kernels_from"] == "cache"
    assert info["torch"] == torch.__version__ and info["ganfast"] == __import__("ganfast").__version__
    assert info["cpu_isa"] in info["cpu_isas_built"] and info["cpu_isas_built"][0] == "baseline"
    assert info["cxx_flags"] == _build.read_flags(CSRC / "flags" / "cxx.txt")
    assert info["cuda_built"] is False or info["torch_cuda"] is not None
    assert info["cache"] == str(fresh_cache[1]) and info["library"].startswith(str(fresh_cache[1]))
    text = subprocess.run([sys.executable, "-m", "ganfast", "info"], cwd=clean_site(), env=env, capture_output=True,
                          text=True, timeout=300).stdout
    assert re.search(rf"^kernels_from\s+cache$", text, re.M) and re.search(rf"^cpu_isa\s+{info['cpu_isa']}$", text, re.M)
    env["GANFAST_DISABLE_EXTENSION"] = "1"
    off = subprocess.run([sys.executable, "-m", "ganfast", "info", "--json"], cwd=clean_site(), env=env,
                         capture_output=True, text=True, timeout=300)
    info = json.loads(off.stdout)
    assert info["extension"] is False and info["unavailable_reason"] == "disabled by GANFAST_DISABLE_EXTENSION"
    assert "FallbackWarning" in off.stderr


def test_build_command(fresh_cache, tmp_path):
    out = subprocess.run([sys.executable, "-m", "ganfast", "build"], cwd=clean_site(), env=child_env(fresh_cache[1]),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ganfast: kernels already built: " in out.stdout, out.stdout + out.stderr
    assert "compiling" not in out.stderr
    cxx, marker = _fake_compiler(tmp_path)  # a compile that fails: exit status 1 and the compiler's words
    out = subprocess.run([sys.executable, "-m", "ganfast", "build"], cwd=clean_site(),
                         env=child_env(tmp_path / "empty", CXX=str(cxx)), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "this compiler always fails" in out.stderr and marker.exists()


def test_unwritable_cache_names_the_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = run_child(child_env(blocker / "cache"))
    message = _fallback_message(res)
    assert f"the kernel cache {blocker / 'cache'} is unusable" in message
    assert "Fix: set GANFAST_CACHE to a writable folder" in message


def test_info_in_process():
    import ganfast

    info = ganfast.info()
    assert set(info) >= {"ganfast", "torch", "python", "extension", "kernels_from", "cpu_isa", "cuda_built",
                         "cuda_available", "cache", "cxx_flags", "nvcc_flags"}
    assert info["extension"] == ganfast.extension_available()
    if info["extension"]:
        assert info["kernels_from"] in ("aot", "jit", "cache") and info["cpu_isa"] in ("baseline", "avx2", "avx512")
        assert info["built_for"]["torch"] == torch.__version__
