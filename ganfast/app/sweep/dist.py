"""The processes of a sweep: one, or many under torchrun (torch.distributed).

    torchrun --nproc-per-node 2 -m ganfast.sweep --preset devnag --seeds 256
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 -m ganfast.sweep ...

Under torchrun (WORLD_SIZE > 1 in the environment) every rank joins the default process group,
gloo for states on the CPU and nccl for CUDA states. Ranks exchange only small Python objects (a
member's scores, the tensors of the members a PBT step copies, states for a checkpoint), so one
primitive, `all_gather_object`, carries all of it; the tensors travel on the CPU.

Every rank also names its kernel build (`kernel_build`): the CPU builds agree to rounding only,
so a sweep is bitwise reproducible on one build, and ranks on several get a warning.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

#: How long a rank waits for the others in one exchange before torch.distributed gives up.
TIMEOUT = datetime.timedelta(minutes=30)


class Comm:
    """The sweep's view of its processes: `rank` of `world`; rank 0 writes the folder."""

    def __init__(self, rank: int = 0, world: int = 1, distributed: bool = False):
        self.rank, self.world, self.distributed = rank, world, distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (picklable; tensors on the CPU)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj, src: int = 0):
        """`obj` of rank `src` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def from_environment(device: torch.device) -> Comm:
    """Comm of this process: torch.distributed's when torchrun started it (WORLD_SIZE > 1),
    else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Comm()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    return Comm(dist.get_rank(), dist.get_world_size(), distributed=True)


# --- the ranks' kernel builds ------------------------------------------------------------------

def kernel_build(device: torch.device) -> str:
    """What trains this rank's members: the CPU kernels' instruction set, or the GPU's name."""
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    from ganfast import _ext

    return _ext.info()["cpu_isa"] or "fallback"


def mixed_builds_note(builds: list) -> str | None:
    """One warning line when the ranks run different kernel builds, else None. The builds agree to
    rounding, not bitwise (FMA and the vector width order the sums differently), and a GAN's
    training amplifies rounding: such a sweep's members differ from a one-rank sweep's."""
    if len(set(builds)) <= 1:
        return None
    ranks = ", ".join(f"rank {r}: {b}" for r, b in enumerate(builds))
    cpu = [b for b in builds if b in ISA_ORDER]
    fix = (f"; GANFAST_CPU_ISA={min(cpu, key=ISA_ORDER.index)} on every rank makes them bitwise"
           if len(cpu) == len(builds) else "")
    return (f"warning: the ranks run different kernel builds ({ranks}): members agree with a one-rank "
            f"sweep to rounding, not bitwise{fix}")


def builds_label(builds: list) -> str:
    """'avx2' or 'avx2/avx512': the distinct builds, in first-seen order."""
    return "/".join(dict.fromkeys(builds))


#: The CPU builds, each runnable wherever the next one is.
ISA_ORDER = ("baseline", "avx2", "avx512")
