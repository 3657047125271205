"""Build of ganfast: compile the kernels against the torch that will run them.

- torch importable at build time (`pip install --no-build-isolation .` or `-e .`, the developer
  path): ganfast._C is built ahead of time against that torch (with the CUDA sources when torch
  has CUDA and nvcc is found, or GANFAST_CUDA=1; GANFAST_CUDA=0 leaves them out), and its build
  stamp ganfast/_C.build.json records the Python, torch, CUDA and sources it was built for.
- torch not importable (plain `pip install .`: build isolation, and torch is deliberately not a
  build requirement, so no second torch is downloaded): a pure-Python wheel; the kernels compile
  on first import against the installed torch (ganfast/_ext.py, ganfast/_build.py).
  GANFAST_AOT=0 asks for this pure wheel even when torch is importable.
Either way the C++/CUDA sources and flag lists (csrc/, less its tests) ship inside the package as
ganfast/_csrc, so a torch upgrade later recompiles instead of failing. Sources, flags (the one
list in csrc/flags/, which CMakeLists.txt reads too), CUDA_HOME and the architectures
(TORCH_CUDA_ARCH_LIST, else the GPUs present, else 8.0;8.6;8.9;9.0) come from ganfast/_build.py.
"""
import importlib.util
import os
import shutil
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent

# ganfast/_build.py from its file: importing the package would import torch and all of ganfast.
_spec = importlib.util.spec_from_file_location("_ganfast_build", HERE / "ganfast" / "_build.py")
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)
CSRC = HERE / "csrc"


class BuildPy(build_py):
    """Also copy csrc/ (less tests/) to ganfast/_csrc, for compiling on first use."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's csrc/
            return
        dest = Path(self.build_lib) / "ganfast" / "_csrc"
        shutil.rmtree(dest, ignore_errors=True)
        for path in _build.shipped_files(CSRC):
            target = dest / path.relative_to(CSRC)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def ahead_of_time():
    """(ext_modules, cmdclass) of the build against the torch importable now, or None."""
    if os.environ.get("GANFAST_AOT", "").strip() == "0":
        print("ganfast: GANFAST_AOT=0: pure-Python wheel, the kernels compile on first use")
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        print("ganfast: torch is not importable at build time (build isolation): pure-Python wheel, "
              "the kernels compile on first use against the installed torch")
        return None

    rt = _build.runtime()
    desc = _build.describe(CSRC, rt)
    arch = None
    if desc["cuda"]:
        arch = _build.cuda_arch_list()
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch
        os.environ["CUDA_HOME"] = _build.find_cuda_home()  # before cpp_extension reads it
    _build.put_ninja_on_path()
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    print(f"ganfast: building the kernels ahead of time for {_build.build_summary(desc, rt)} "
          f"({desc['cuda_why']})")
    kind = CUDAExtension if desc["cuda"] else CppExtension
    flags = {"cxx": desc["cxx_flags"]}
    if desc["cuda"]:
        flags["nvcc"] = desc["nvcc_flags"]
    ext = kind(
        "ganfast._C",
        [f"csrc/{s}" for s in desc["sources"]],
        define_macros=[tuple(d.split("=", 1)) for d in desc["defines"]],
        extra_compile_args=flags,
    )

    class BuildExt(BuildExtension):
        """BuildExtension, then the stamp beside the library (and its in-place copy)."""

        def run(self):
            t0 = time.perf_counter()
            super().run()
            stamp = _build.make_stamp(desc, rt, "aot", time.perf_counter() - t0, arch)
            inplace = self.inplace
            folders = set()
            for self.inplace in {False, bool(inplace)}:
                folders.add(Path(self.get_ext_fullpath(ext.name)).parent)
            self.inplace = inplace
            for folder in folders:
                _build.write_json(folder / _build.AOT_STAMP, stamp)

    return [ext], {"build_ext": BuildExt}


aot = ahead_of_time()
setup(
    ext_modules=aot[0] if aot else [],
    cmdclass={"build_py": BuildPy, **(aot[1] if aot else {})},
)
