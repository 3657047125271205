"""Shared markers and helpers of the ganfast tests (tests/ the library, tests/app the application).

    from conftest import DEVICES, assert_close_rel, requires_ext

`requires_ext` skips a test (or, as `pytestmark = requires_ext`, a module) when the compiled
extension did not load; tests marked `gpu` are skipped unless a CUDA device is there and the
extension has its CUDA kernels. `DEVICES` parametrises a test over "cpu" (always) and "cuda"
(marked `gpu`), the way extension-cpp's tests do.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import ganfast

requires_ext = pytest.mark.skipif(
    not ganfast.extension_available(),
    reason="the compiled extension ganfast._C is unavailable (ganfast.extension_available() is False)",
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _gpu_skip_reason():
    from ganfast import _ext

    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    if not _ext.WITH_CUDA:
        return "ganfast._C was built without its CUDA kernels (ganfast._ext.WITH_CUDA is False)"
    return None


def pytest_report_header(config):
    """Where the compiled kernels came from, in the session header (a compile on first use runs
    while this conftest imports ganfast, before pytest prints anything)."""
    info = ganfast.info()
    if not info["extension"]:
        return f"ganfast: compiled kernels unavailable ({info['unavailable_reason']})"
    how = {"aot": "built at install", "cache": "from the cache",
           "jit": f"compiled just now in {info['build_seconds']} s"}[info["kernels_from"]]
    return (f"ganfast: kernels {how}, {info['library']}; CPU ISA {info['cpu_isa']}, "
            f"CUDA {'built' if info['cuda_built'] else 'not built'}")


def pytest_collection_modifyitems(config, items):
    reason = _gpu_skip_reason()
    if reason is None:
        return
    skip_gpu = pytest.mark.skip(reason=reason)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def max_rel_error(actual: torch.Tensor, expected: torch.Tensor, tiny: float = 1e-30) -> float:
    """max|actual - expected| / max(max|expected|, tiny), computed in float64."""
    a, b = actual.detach().double(), expected.detach().double()
    if b.numel() == 0:
        return 0.0
    return float((a - b).abs().max()) / max(float(b.abs().max()), tiny)


#: The floor of blockwise_rel_err's scale: a block of exact zeros (an SGD state without momentum)
#: must match to ~1e-30 absolute, i.e. exactly.
REL_FLOOR = 1e-30


def blockwise_rel_err(actual: torch.Tensor, expected: torch.Tensor, blocks: int = 1,
                      floor: float = REL_FLOOR) -> float:
    """The worst over rows (population members) and `blocks` equal column blocks of
    max|actual - expected| / max(max|expected| of that block, floor), in float64, NaN-aware
    (NaN must sit at the same places; it counts as equal). Each block is judged against its own
    scale: Adam's second moments (~1e-6) against theirs, not against the first moments beside
    them in the same buffer, and not against 1 (the old max(1, |expected|) let anything below
    ~1e-10 through unchecked)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    a, b = actual.detach().double().cpu(), expected.detach().double().cpu()
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    assert torch.equal(nan_a, nan_b), f"NaN pattern differs: {a} vs {b}"
    if b.numel() == 0:
        return 0.0
    a, b = a.nan_to_num(0.0), b.nan_to_num(0.0)
    rows = b.reshape(b.shape[0], blocks, -1) if b.dim() else b.reshape(1, 1, 1)
    diff = (a.reshape(rows.shape) - rows).abs().amax(dim=2)
    scale = rows.abs().amax(dim=2).clamp(min=floor)
    return float((diff / scale).max())


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rel: float, tiny: float = 1e-30,
                     what: str = "") -> None:
    """Assert max|actual - expected| <= rel * max(max|expected|, tiny) (same shape required).

    The scale is the largest magnitude of the whole expected tensor, not each element's own, so
    a value that should be ~0 is judged against the tensor's scale. On failure the message names
    the worst element: its index, both values and the error relative to the scale.
    """
    prefix = f"{what}: " if what else ""
    assert actual.shape == expected.shape, f"{prefix}shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if expected.numel() == 0:
        return
    a, b = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert bool(torch.isfinite(b).all()), f"{prefix}the expected tensor has non-finite values"
    diff = (a - b).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    scale = max(float(b.abs().max()), tiny)
    flat = int(diff.reshape(-1).argmax())
    worst = float(diff.reshape(-1)[flat])
    if worst <= rel * scale:
        return
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), b.shape)) if b.dim() else ()
    raise AssertionError(
        f"{prefix}max |actual - expected| = {worst:.3e} > {rel:.1e} * {scale:.3e} "
        f"(relative error {worst / scale:.3e}); worst at index {index}: "
        f"actual {float(a.reshape(-1)[flat])!r}, expected {float(b.reshape(-1)[flat])!r}"
    )


# --- run folders of the CLI tests ----------------------------------------------------------

def write_toy_config(path, preset: str = "devnag", **overrides) -> Path:
    """A preset with `overrides` (dotted keys: TrainConfig.replace), written as YAML to `path`."""
    import yaml

    from ganfast.app.config import load_preset

    cfg = load_preset(preset).replace(overrides)
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return Path(path)


def run_dir_of(out) -> Path:
    """The one run folder a CLI call created under `out`."""
    dirs = [p for p in Path(out).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_csv(path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for the test (tiny ops crawl with two threads on 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_drawn(path) -> None:
    """The image (PNG, or every frame of a GIF) decodes and is not one flat colour: a plot that
    was drawn, not an empty file or a blank canvas."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            extrema = frame.convert("RGB").getextrema()
            assert any(lo != hi for lo, hi in extrema), f"{path}: a blank image"
