"""A small workload for compute-sanitizer: every CUDA kernel of ganfast on small shapes.

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python bench/gpu_sanitize.py
    compute-sanitizer --tool racecheck python bench/gpu_sanitize.py --quick

It exercises the fills (every offset residue mod 4, odd counts), mlp_forward / mlp_backward
(dropout, batches that do not divide the block size, 1-sample batches, a 256-wide layer), and
the training engine on every preset (shrunk: batch 37 and 5, few steps) in float32 and float64,
a population of 3, and a 256-wide config whose buffers do not all fit in shared memory. It checks
nothing numerically (tests/test_cuda.py does): the sanitizer's report is the result. Exits 0
after printing "sanitize workload done". --quick runs fewer engine configs (racecheck is slow).
"""
from __future__ import annotations

import argparse
import sys

import torch

import ganfast
from ganfast import _ext


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer engine configs (for racecheck)")
    args = ap.parse_args()
    if not (ganfast.extension_available() and _ext.WITH_CUDA and torch.cuda.is_available()):
        print("gpu_sanitize: needs a CUDA device and ganfast built with CUDA; nothing to do")
        return 1
    from ganfast.app.config import load_preset
    from ganfast.engine import train_fused
    from ganfast.spec import MLPSpec
    from ganfast.state import init_state

    ops = torch.ops.ganfast
    dev = "cuda"
    for dtype in (torch.float32, torch.float64):
        for offset in (0, 1, 2, 3, 2**33 + 1):
            for n in (1, 2, 5, 37, 1000):
                ops.fill_uniform_(torch.empty(n, dtype=dtype, device=dev), 7, offset, -1.0, 2.0)
                ops.fill_normal_(torch.empty(n, dtype=dtype, device=dev), 2**40 + 3, offset, 0.5, 2.0)
        torch.cuda.synchronize()
        print("fills ok", dtype, flush=True)

        specs = [MLPSpec((1, 5, 5, 1), "tanh", "identity"),
                 MLPSpec((3, 16, 8, 2), "relu", "sigmoid", 0.5),
                 MLPSpec((2, 256, 3), "elu", "tanh", 0.25, 1.0),
                 MLPSpec((4, 1), output_activation="sigmoid")]
        for spec in specs:
            for n in (1, 37, 300):
                x = torch.randn(n, spec.in_features, dtype=dtype, device=dev)
                p = torch.randn(spec.num_params, dtype=dtype, device=dev) * 0.3
                a = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, spec.dropout, 11, 3)
                out, saved = ops.mlp_forward(x, p, *a)
                ops.mlp_backward(torch.randn_like(out), x, p, saved, *a)
        torch.cuda.synchronize()
        print("mlp ops ok", dtype, flush=True)

    presets = ("devnag", "vanilla", "how-to-gan", "ring8", "devnag-elu")
    batches = (37,) if args.quick else (37, 5)
    dtypes = ("float32",) if args.quick else ("float32", "float64")
    for name in presets:
        for batch in batches:
            for dt in dtypes:
                cfg = load_preset(name).replace({"dtype": dt, "batch_size": batch, "d_steps": 2, "g_steps": 1,
                                                 "population": 1 if args.quick else 3})
                state = init_state(cfg, device=dev)
                train_fused(cfg, state, 2)
                torch.cuda.synchronize()
                print("engine ok", name, batch, dt, flush=True)
    # Minimax + mixture + normal noise with an odd count; then 256-wide nets (global-memory buffers).
    extra = [
        ("how-to-gan", {"loss.generator": "minimax", "noise": {"kind": "normal", "dim": 3},
                        "data": {"kind": "mixture", "centers": [[-2.0], [0.5], [3.0]], "std": 0.4},
                        "batch_size": 33}),
        ("how-to-gan", {"generator.hidden": [256, 256], "discriminator.hidden": [256], "batch_size": 40}),
    ]
    for name, overrides in extra:
        cfg = load_preset(name).replace({"dtype": "float32", "d_steps": 1, "g_steps": 1, **overrides})
        state = init_state(cfg, device=dev)
        train_fused(cfg, state, 1)
        torch.cuda.synchronize()
        print("engine ok", name, overrides, flush=True)
    print("sanitize workload done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
