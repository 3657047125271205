"""How ganfast's kernels are built against the torch that runs them.

Used by setup.py (ahead of time, when torch is importable at build time) and by ganfast/_ext.py
(compile on first use otherwise). This module imports nothing of ganfast and, at module level,
nothing but the standard library, so setup.py can load it from its file while torch may be
missing.

- Sources: csrc/*.cpp, csrc/cpu/*.cpp and, with CUDA, csrc/cuda/*.cu, found in the installed
  package (ganfast/_csrc, copied there by setup.py's build_py) or beside the package in a
  checkout (editable installs).
- Flags: csrc/flags/cxx.txt and csrc/flags/nvcc.txt, one flag per line (CMakeLists.txt reads
  the same files). No -std: torch's cpp_extension adds the one its headers need.
- Cache: $GANFAST_CACHE, else $XDG_CACHE_HOME/ganfast, else ~/.cache/ganfast; one folder per
  key `<python>-torch<version>-<cpu|cuXYZ>-<hash>`, the hash covering the sources, the flags,
  the CUDA choice and architectures, torch's git revision and the machine.
- Stamp: a JSON beside every built library (`_C.build.json` next to an ahead-of-time `_C*.so`,
  `stamp.json` in a cache folder) that records the Python, torch, CUDA and source hash it was
  built for; `check_stamp` names the first difference from the running interpreter.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parent
STAMP_SCHEMA = 1
AOT_STAMP = "_C.build.json"          # beside an ahead-of-time built ganfast/_C*.so
CACHE_STAMP = "stamp.json"           # in a cache folder, beside _C.so
FAILED_NOTE = "failed.json"          # in a cache folder: the last compile failed (output tail)
BUILD_LOG = "build-error.log"        # in a cache folder: the whole output of a failed compile
DEFAULT_ARCH_LIST = "8.0;8.6;8.9;9.0"
SOURCE_SUFFIXES = (".cpp", ".h", ".hpp", ".cu", ".cuh", ".inc", ".txt")


class BuildUnavailable(RuntimeError):
    """The kernels cannot be compiled here; `cause` says why and `fix` is the one command."""

    def __init__(self, cause: str, fix: str):
        super().__init__(f"{cause}; fix: {fix}")
        self.cause, self.fix = cause, fix


class BuildFailed(RuntimeError):
    """The compiler ran and failed; `tail` is the end of its output, `log` the whole of it."""

    def __init__(self, tail: str, log: str):
        super().__init__(f"compiling ganfast's kernels failed:\n{tail}\n(whole output: {log})")
        self.tail, self.log = tail, log


# --- sources and flags --------------------------------------------------------------------------

def source_root() -> Path | None:
    """The csrc folder: the installed copy (ganfast/_csrc) or the checkout's (editable install)."""
    for cand in (PKG_DIR / "_csrc", PKG_DIR.parent / "csrc"):
        if (cand / "ops.cpp").is_file() and (cand / "flags" / "cxx.txt").is_file():
            return cand
    return None


def source_files(root: Path, cuda: bool) -> list:
    """The translation units of the extension (new files in these folders are picked up)."""
    files = sorted(root.glob("*.cpp")) + sorted((root / "cpu").glob("*.cpp"))
    if cuda:
        files += sorted((root / "cuda").glob("*.cu"))
    return files


def shipped_files(root: Path) -> list:
    """Every file the build can read (sources, headers, flag lists): csrc less its tests/."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and p.suffix in SOURCE_SUFFIXES and rel.parts[0] != "tests" and "__pycache__" not in rel.parts:
            out.append(p)
    return out


def source_hash(root: Path) -> str:
    """sha256 over the relative paths and contents of `shipped_files` (a source edit changes it)."""
    h = hashlib.sha256()
    for p in shipped_files(root):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


def read_flags(path) -> list:
    """One flag per line; blank lines and lines starting with '#' are skipped."""
    flags = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if any(c.isspace() for c in line):
            raise ValueError(f"{path}:{n}: one flag per line, got {line!r}")
        flags.append(line)
    return flags


#: The test-only CPU build (csrc/cpu/kernels_avx2x16.cpp: the AVX-512 build's 16-lane code on
#: AVX2), compiled in only with GANFAST_AVX2X16=1: the costliest translation unit, run by tests only.
TEST_ONLY_ISA = "avx2x16"


def with_test_isa() -> bool:
    """GANFAST_AVX2X16=1: compile the test-only avx2x16 build in too (its own cache key)."""
    return os.environ.get("GANFAST_AVX2X16", "0") == "1"


def cpu_isas(root: Path) -> list:
    """The CPU builds compiled in (csrc/cpu/kernels_<isa>.cpp), the run-time dispatch chooses one."""
    names = [p.stem[len("kernels_"):] for p in sorted((root / "cpu").glob("kernels_*.cpp"))]
    names = ["baseline" if n == "base" else n for n in names if n != TEST_ONLY_ISA or with_test_isa()]
    return sorted(names, key=lambda n: (n != "baseline", n))


# --- CUDA -----------------------------------------------------------------------------------------

def find_cuda_home() -> str | None:
    """CUDA_HOME (or CUDA_PATH) when set; else the toolkit of the `nvcc` on the PATH.

    `nvcc` may be a symlink or a wrapper script (/usr/local/bin/nvcc running
    /usr/local/cuda-13.0/bin/nvcc here), so its own folder's parent is not necessarily the
    toolkit: the symlink is resolved, and for a script nvcc itself is asked (`--dryrun` prints
    the TOP folder it runs from).
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc is not None:
        home = Path(os.path.realpath(nvcc)).parent.parent
        if (home / "include" / "cuda_runtime.h").is_file():
            return str(home)
        try:
            out = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-E", os.devnull], capture_output=True,
                                 text=True, timeout=60).stderr
        except (OSError, subprocess.SubprocessError):
            out = ""
        m = re.search(r"^#\$ TOP=(.+)$", out, re.M)
        if m:
            home = Path(os.path.realpath(m.group(1).strip()))
            if (home / "bin").is_dir():
                return str(home)
    if Path("/usr/local/cuda/bin/nvcc").exists():
        return "/usr/local/cuda"
    return None


def cuda_choice(torch_cuda: str | None) -> tuple:
    """(compile the CUDA sources?, why) from GANFAST_CUDA=0|1 and what is installed."""
    flag = os.environ.get("GANFAST_CUDA", "").strip()
    if flag == "0":
        return False, "GANFAST_CUDA=0"
    if flag not in ("", "1"):
        raise BuildUnavailable(f"GANFAST_CUDA={flag!r} is neither 0 nor 1", "set GANFAST_CUDA=0, 1 or unset it")
    if torch_cuda is None:
        if flag == "1":
            raise BuildUnavailable("GANFAST_CUDA=1 but this torch is a CPU build",
                                   "install a CUDA build of torch, or unset GANFAST_CUDA")
        return False, "torch is a CPU build"
    home = find_cuda_home()
    if home is None or not (Path(home) / "bin" / "nvcc").exists():
        if flag == "1":
            raise BuildUnavailable("GANFAST_CUDA=1 but nvcc was not found",
                                   "put nvcc on the PATH or set CUDA_HOME to the CUDA toolkit")
        return False, "nvcc not found (put it on the PATH or set CUDA_HOME)"
    return True, f"CUDA {torch_cuda}, nvcc in {home}"


def cuda_arch_list() -> str:
    """TORCH_CUDA_ARCH_LIST when set; else the GPUs present; else DEFAULT_ARCH_LIST."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    try:
        import torch

        if torch.cuda.is_available():
            caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
            return ";".join(f"{a}.{b}" for a, b in caps)
    except Exception:  # no driver, or CUDA refuses to start: build for the default list
        pass
    return DEFAULT_ARCH_LIST


@contextlib.contextmanager
def cuda_build_env(cuda_home: str | None, arch_list: str | None):
    """CUDA_HOME and TORCH_CUDA_ARCH_LIST for one build (torch reads both), restored after."""
    cpp_ext = sys.modules.get("torch.utils.cpp_extension")
    saved_attr = getattr(cpp_ext, "CUDA_HOME", None)
    try:
        with _saved_env("CUDA_HOME", "TORCH_CUDA_ARCH_LIST"):
            if cuda_home:
                os.environ["CUDA_HOME"] = cuda_home
                if cpp_ext is not None:  # computed when cpp_extension was first imported
                    cpp_ext.CUDA_HOME = cuda_home
            if arch_list:
                os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
            yield
    finally:
        if cpp_ext is not None:
            cpp_ext.CUDA_HOME = saved_attr


# --- the build description, its key and its stamp -------------------------------------------------

def runtime() -> dict:
    """What a built library must match: this Python, torch and its CUDA, this machine."""
    import torch

    return {
        "python": f"{sys.implementation.cache_tag}{getattr(sys, 'abiflags', '')}",
        "torch": torch.__version__,
        "torch_git": getattr(torch.version, "git_version", ""),
        "cuda": torch.version.cuda,
        "machine": platform.machine(),
    }


def describe(root: Path, rt: dict) -> dict:
    """The build for this runtime: sources, flags, CUDA choice (no compiler is run)."""
    cuda, why = cuda_choice(rt["cuda"])
    flags_dir = root / "flags"
    return {
        "cuda": cuda,
        "cuda_why": why,
        "cuda_arch_list": (os.environ.get("TORCH_CUDA_ARCH_LIST") or "auto") if cuda else None,
        "sources": [p.relative_to(root).as_posix() for p in source_files(root, cuda)],
        "cxx_flags": read_flags(flags_dir / "cxx.txt"),
        "nvcc_flags": read_flags(flags_dir / "nvcc.txt") if cuda else [],
        "defines": (["GANFAST_WITH_CUDA=1"] if cuda else []) + (["GANFAST_AVX2X16=1"] if with_test_isa() else []),
        "cpu_isas": cpu_isas(root),
        "source_hash": source_hash(root),
    }


def cache_root() -> Path:
    if os.environ.get("GANFAST_CACHE"):
        return Path(os.environ["GANFAST_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ganfast"


def cache_key(desc: dict, rt: dict) -> str:
    """`<python>-torch<version>-<cpu|cuXYZ>-<12 hex>`: readable parts, and a hash of the rest."""
    hashed = {k: desc[k] for k in ("source_hash", "sources", "cxx_flags", "nvcc_flags", "defines", "cuda",
                                   "cuda_arch_list")}
    hashed.update(torch_git=rt["torch_git"], machine=rt["machine"], schema=STAMP_SCHEMA)
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]
    acc = "cu" + rt["cuda"].replace(".", "") if desc["cuda"] else "cpu"
    key = f"{rt['python']}-torch{rt['torch']}-{acc}-{digest}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", key)


def make_stamp(desc: dict, rt: dict, how: str, seconds: float | None, arch_list: str | None) -> dict:
    stamp = dict(schema=STAMP_SCHEMA, built_by=how, **rt)
    stamp.update({k: desc[k] for k in ("cuda", "cxx_flags", "nvcc_flags", "defines", "cpu_isas", "source_hash")})
    stamp["with_cuda"] = stamp.pop("cuda")
    stamp["cuda"] = rt["cuda"]
    stamp["cuda_arch_list"] = arch_list if desc["cuda"] else None
    stamp["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    stamp["build_seconds"] = None if seconds is None else round(seconds, 1)
    return stamp


def check_stamp(stamp: dict | None, rt: dict, src_hash: str | None) -> str | None:
    """None when a library with this stamp can run here; else the first difference, in words."""
    if not stamp:
        return "it has no build stamp"
    if stamp.get("schema") != STAMP_SCHEMA:
        return f"its build stamp has schema {stamp.get('schema')!r}, not {STAMP_SCHEMA}"
    for field, what in (("python", "Python"), ("torch", "torch"), ("cuda", "torch's CUDA"),
                        ("machine", "the machine type")):
        if stamp.get(field) != rt[field]:
            return f"it was built for {what} {stamp.get(field)}, this is {what} {rt[field]}"
    if rt["torch_git"] and stamp.get("torch_git") != rt["torch_git"]:
        return (f"it was built for another build of torch {rt['torch']} "
                f"(git {str(stamp.get('torch_git'))[:10]}, this is {rt['torch_git'][:10]})")
    if src_hash is not None and stamp.get("source_hash") != src_hash:
        return "it was built from other sources (csrc/ changed since)"
    return None


def read_json(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path, data) -> None:
    """Atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def build_summary(desc: dict, rt: dict) -> str:
    """'torch 2.13.0+cpu, CPU (baseline+avx2)' (+ ', CUDA 13.0')."""
    s = f"torch {rt['torch']}, CPU ({'+'.join(desc['cpu_isas'])})"
    return s + (f", CUDA {rt['cuda']}" if desc["cuda"] else "")


# --- compiling on first use -----------------------------------------------------------------------

def put_ninja_on_path() -> None:
    """Put pip's ninja on the PATH (torch runs `ninja`): it lies in the environment's scripts
    folder, which is on the PATH only while the virtual environment is activated."""
    dirs = []
    try:
        import ninja

        dirs.append(getattr(ninja, "BIN_DIR", None))
    except ImportError:
        pass
    dirs.append(sysconfig.get_path("scripts"))
    path = os.environ.get("PATH", "").split(os.pathsep)
    for d in dirs:
        if d and d not in path and shutil.which("ninja", path=d):
            path.insert(0, d)
    os.environ["PATH"] = os.pathsep.join(path)


def compiler_problem(desc: dict) -> BuildUnavailable | None:
    """Why no compile can start here (no C++ compiler, no ninja, no nvcc), or None."""
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return BuildUnavailable(f"no C++ compiler: `{cxx}` is not on the PATH (CXX names another)",
                                "`sudo apt-get install g++` (or your system's C++ compiler package)")
    with _saved_env("PATH"):
        put_ninja_on_path()
        if shutil.which("ninja") is None:
            return BuildUnavailable("ninja is not installed", "`pip install ninja`")
    return None


@contextlib.contextmanager
def _saved_env(*names):
    saved = {k: os.environ.get(k) for k in names}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _exclusive(lock_path: Path, on_wait):
    """An flock on `lock_path`: the OS drops it when its process dies, so no lock goes stale."""
    try:
        import fcntl
    except ImportError:  # not POSIX: cpp_extension's own FileBaton still serialises the build
        yield
        return
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def jit_library(root: Path, desc: dict, rt: dict, *, say, force: bool = False, retry: bool = False,
                verbose: bool = False, allow_compile: bool = True, why: str | None = None) -> tuple:
    """(path of a `_C.so` built for this runtime, its stamp, compiled now?), compiling if needed.

    Several processes may call this at once with an empty cache (pytest-xdist, torchrun ranks):
    one compiles while the others wait on the folder's lock, then all load the same library.
    Raises BuildUnavailable (no compile possible or allowed) or BuildFailed (the compiler failed;
    remembered in the folder, so later imports do not compile again until `retry` or `force`).
    `force` recompiles even a good build.
    """
    key_dir = cache_root() / cache_key(desc, rt)
    so = key_dir / "_C.so"

    def ready():
        stamp = read_json(key_dir / CACHE_STAMP)
        return stamp if so.is_file() and check_stamp(stamp, rt, desc["source_hash"]) is None else None

    stamp = ready()
    if stamp is not None and not force:
        return so, stamp, False
    if not allow_compile:
        stale = read_json(key_dir / CACHE_STAMP)
        what = (f"the build in {key_dir} cannot run here: {check_stamp(stale, rt, desc['source_hash'])}"
                if stale is not None else f"no build for this torch in {key_dir}")
        raise BuildUnavailable(what, "`python -m ganfast build`")
    failed = read_json(key_dir / FAILED_NOTE)
    if failed and not (force or retry):
        raise BuildFailed(failed.get("tail", ""), failed.get("log", ""))
    problem = compiler_problem(desc)
    if problem is not None:
        raise problem
    key_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(key_dir / "ganfast.lock",
                    lambda: say(f"ganfast: waiting for another process compiling the kernels in {key_dir}")):
        stamp = ready()
        if stamp is not None and not force:  # built by the process we waited for
            return so, stamp, False
        failed = read_json(key_dir / FAILED_NOTE)
        if failed and not (force or retry):
            raise BuildFailed(failed.get("tail", ""), failed.get("log", ""))
        say(f"ganfast: compiling kernels for {build_summary(desc, rt)}, about a minute or two "
            f"(once); cached in {key_dir}" + (f" ({why})" if why else ""))
        # Our flock is held, so a `lock` file of cpp_extension's FileBaton can only be left over
        # from a killed build, and would make load() wait for ever.
        with contextlib.suppress(FileNotFoundError):
            (key_dir / "lock").unlink()
        for name in (CACHE_STAMP, FAILED_NOTE):
            with contextlib.suppress(FileNotFoundError):
                (key_dir / name).unlink()
        arch = cuda_arch_list() if desc["cuda"] else None
        t0 = time.perf_counter()
        try:
            with cuda_build_env(find_cuda_home() if desc["cuda"] else None, arch), _saved_env("PATH"):
                put_ninja_on_path()
                from torch.utils import cpp_extension

                defines = [f"-D{d}" for d in desc["defines"]]
                cpp_extension.load(
                    name="_C",
                    sources=[str(root / s) for s in desc["sources"]],
                    extra_cflags=desc["cxx_flags"] + defines,
                    extra_cuda_cflags=desc["nvcc_flags"] + defines,
                    extra_include_paths=[str(root)],
                    build_directory=str(key_dir),
                    with_cuda=desc["cuda"],
                    is_python_module=False,
                    verbose=verbose,
                )
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            log = key_dir / BUILD_LOG
            log.write_text(text, encoding="utf-8")
            tail = "\n".join(text.strip().splitlines()[-25:])
            write_json(key_dir / FAILED_NOTE, {"tail": tail, "log": str(log)})
            raise BuildFailed(tail, str(log)) from None
        seconds = time.perf_counter() - t0
        stamp = make_stamp(desc, rt, "jit", seconds, arch)
        write_json(key_dir / CACHE_STAMP, stamp)
        say(f"ganfast: compiled in {seconds:.0f} s")
    return so, stamp, True
