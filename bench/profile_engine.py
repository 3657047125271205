"""Where one GAN's epoch goes: a `perf` profile of the fused engine, as microseconds per epoch.

    python bench/profile_engine.py [preset] [epochs]      # default: devnag 4000

Times the preset's engine on one thread (ms per epoch, the best of 5 calls), then samples the
same calls with `perf record` (cpu-clock, so it works in VMs without hardware counters) and
splits that time by the extension's functions: share of the samples in ganfast's library x ms
per epoch. Functions the compiler inlined are counted in their caller (on the fast path, the
activations and layer products in FastNet::forward/backward, Box-Muller in Sampler::data).
Needs `perf` (linux-perf / linux-tools) and a kernel that lets this user sample
(/proc/sys/kernel/perf_event_paranoid <= 2 for one's own processes).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CHILD = "GANFAST_PROFILE_CHILD"


def run_engine(preset: str, epochs: int) -> float:
    """ms per epoch: the best of 5 calls of `epochs` epochs, one thread."""
    import torch

    from ganfast.app.config import load_preset
    from ganfast.engine import train_fused
    from ganfast.state import init_state

    torch.set_num_threads(1)
    cfg = load_preset(preset)
    state = init_state(cfg)
    train_fused(cfg, state, 2)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        train_fused(cfg, state, epochs)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / epochs


def short(symbol: str) -> str:
    """`ganfast::core::isa_avx2::FastNet<float, ...Shape<1, 5, 5, 1>, 4, 0>::forward` ->
    `FastNet<Shape<1, 5, 5, 1>>::forward`: enough to tell the parts apart."""
    s = re.sub(r"ganfast::core::isa_\w+::", "", symbol)
    s = re.sub(r"FastTrainer<.*>::", "FastTrainer::", s)
    s = re.sub(r"<float, (Shape<[^>]*>)[^>]*>", r"<\1>", s)
    return s.replace("<float>", "")


def main() -> int:
    preset = sys.argv[1] if len(sys.argv) > 1 else "devnag"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    if os.environ.get(CHILD):
        run_engine(preset, epochs)
        return 0
    ms = run_engine(preset, epochs)
    print(f"{preset}: {ms:.4f} ms per epoch (best of 5 calls of {epochs} epochs, one thread)")
    if shutil.which("perf") is None:
        print("perf not found: no per-function split (install linux-perf)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        rec = subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-o", data, "--", sys.executable,
                              os.path.abspath(__file__), preset, str(epochs)],
                             env={**os.environ, CHILD: "1"}, capture_output=True, text=True)
        if rec.returncode != 0:
            last = (rec.stderr.strip().splitlines() or ["no message"])[-1]
            print(f"perf record failed: {last}")
            return 1
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--dsos", "_C.so", "--percentage",
                              "relative", "--sort", "symbol", "--stdio"], capture_output=True, text=True)
    rows = []
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[\.\]\s+(.*?)\s+(-\s+-)?\s*$", line)
        if m and float(m.group(1)) >= 0.2:
            rows.append((float(m.group(1)), short(m.group(2))))
    print(f"{'share':>7} {'us/epoch':>9}  function (ganfast's library only; inlined callees in their caller)")
    for share, name in rows:
        print(f"{share:6.1f}% {share / 100 * ms * 1e3:9.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
