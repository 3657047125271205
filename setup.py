"""Build of ganfast._C, the C++ (and, when available, CUDA) kernels.

CUDA sources are compiled when torch was built with CUDA and nvcc is found, or when
GANFAST_CUDA=1 (a GPU-less machine with a CUDA build of torch can still build for GPUs);
GANFAST_CUDA=0 builds the CPU kernels only. Architectures come from TORCH_CUDA_ARCH_LIST,
defaulting to a list that includes Hopper (sm_90).
"""
import glob
import os
import shutil

from setuptools import setup
import torch
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))

# Flags of every C++ translation unit. No -march=native (a wheel must run on other x86-64 CPUs)
# and no -ffast-math (it links a start-up file that flushes denormals in the whole process);
# -fopenmp-simd lets the marked batch reductions vectorise, -ffp-contract=off keeps the float
# arithmetic identical to the reference's (no fused multiply-adds).
# -fno-math-errno / -fno-trapping-math change no results (errno and FP exception flags are
# never read) but let GCC if-convert and vectorise the activation and sampling loops.
CXX_FLAGS = ["-O3", "-std=c++17", "-fopenmp-simd", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
# --fmad=false: nvcc's counterpart of -ffp-contract=off (no a * b + c contraction), so the CUDA
# kernels do the CPU kernels' arithmetic (bitwise-equal uniforms, same per-element formulas).
NVCC_FLAGS = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo", "--fmad=false"]


def cuda_wanted() -> bool:
    flag = os.environ.get("GANFAST_CUDA", "").strip()
    if flag == "0":
        return False
    if flag == "1":
        if torch.version.cuda is None:
            raise RuntimeError(
                "GANFAST_CUDA=1 but this torch is a CPU build; install a CUDA build of torch"
            )
        return True
    return torch.version.cuda is not None and shutil.which("nvcc") is not None


def extension():
    rel = lambda paths: sorted(os.path.relpath(p, HERE) for p in paths)
    sources = rel(glob.glob(os.path.join(HERE, "csrc", "*.cpp")) + glob.glob(os.path.join(HERE, "csrc", "cpu", "*.cpp")))
    if cuda_wanted():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;8.6;8.9;9.0")
        sources += rel(glob.glob(os.path.join(HERE, "csrc", "cuda", "*.cu")))
        return CUDAExtension(
            "ganfast._C",
            sources,
            define_macros=[("GANFAST_WITH_CUDA", "1")],
            extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
        )
    return CppExtension("ganfast._C", sources, extra_compile_args={"cxx": CXX_FLAGS})


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
