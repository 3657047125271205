"""Tests of ganfast.image_train: the image trainer on tiny data sets, fused vs PyTorch,
reproducibility and resume, every image preset for a step or two."""
import io
import math

import pytest
import torch

import ganfast
from conftest import requires_ext
from ganfast.app.config import load_config, load_preset
from ganfast.app.datasets import IMAGE_SHAPES, ImageSet, load_digits
from ganfast.app.image_train import ImageTrainer, grid_noise, prepare_images


def synthetic(kind: str, n: int, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, *IMAGE_SHAPES[kind], generator=g)
    return ImageSet(images, torch.arange(n) % 10, kind, "synthetic")


def digits(n: int = 96) -> ImageSet:
    d = load_digits()
    return ImageSet(d.images[:n].clone(), d.labels[:n].clone(), "digits", d.source)


def tiny_digits_cfg(**kw):
    return load_preset("digits-mlp").replace({"batch_size": 16, "log_every": 2, **kw})


def flat_params(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_one_epoch_on_digits():
    cfg = tiny_digits_cfg()
    t = ImageTrainer(cfg, digits(96))
    assert t.iterations_per_epoch == 6
    g0, d0 = flat_params(t.G).clone(), flat_params(t.D).clone()
    rows = t.train_epoch()
    assert [r["iteration"] for r in rows] == [2, 4, 6] and {r["epoch"] for r in rows} == {1}
    for r in rows:
        for k in ("d_loss_real", "d_loss_fake", "g_loss"):
            assert math.isfinite(r[k]) and r[k] > 0
        assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1
    assert (t.epoch, t.iteration) == (1, 6)
    assert not torch.equal(g0, flat_params(t.G)) and not torch.equal(d0, flat_params(t.D))
    out = t.generate(grid_noise(cfg, 5))
    assert out.shape == (5, 1, 8, 8) and bool(((out >= 0) & (out <= 1)).all())


def test_symmetric_scale_maps_pixels_and_back():
    cfg = tiny_digits_cfg(**{"data.scale": "symmetric", "generator.output_activation": "tanh"})
    data = digits(32)
    x = prepare_images(data, cfg)
    assert x.shape == (32, 64) and float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert torch.allclose((x + 1) / 2, data.images.reshape(32, 64), atol=1e-7)
    out = ImageTrainer(cfg, data).generate(grid_noise(cfg, 4))
    assert bool(((out >= 0) & (out <= 1)).all())


@requires_ext
# Measured over seeds 0-3: at most 7.3e-13 (float64) and 6.4e-5 (float32; Adam scales tiny
# gradients up, so float32 rounding of the two paths grows over the epoch's 4 steps).
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-11), ("float32", 1e-4)])
def test_fused_matches_pytorch(dtype, tol):
    """Same config, same random streams: the fused and the PyTorch MLPs train the same GAN."""
    cfg = tiny_digits_cfg(dtype=dtype)
    runs = {}
    for backend in ("fused", "torch"):
        t = ImageTrainer(cfg, digits(64), backend=backend)
        assert {t.G.backend_in_use, t.D.backend_in_use} == {backend}
        t.train_epoch()
        runs[backend] = (flat_params(t.G), flat_params(t.D), t.stream.offset)
    for a, b in zip(runs["fused"][:2], runs["torch"][:2]):
        rel = float((a - b).abs().max() / b.abs().max())
        assert rel <= tol, rel
    assert runs["fused"][2] == runs["torch"][2]  # the same Philox words were drawn


def test_same_seed_same_run_and_global_rng_untouched():
    cfg = load_preset("mnist-mlp").replace(batch_size=4, **{"generator.hidden": [8], "discriminator.hidden": [8]})
    before = torch.get_rng_state()
    a, b = (ImageTrainer(cfg, synthetic("mnist", 12)) for _ in range(2))
    a.train_epoch()
    b.train_epoch()
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(flat_params(a.G), flat_params(b.G)) and torch.equal(flat_params(a.D), flat_params(b.D))
    c = ImageTrainer(cfg.replace(seed=1), synthetic("mnist", 12))
    c.train_epoch()
    assert not torch.equal(flat_params(a.G), flat_params(c.G))


@pytest.mark.parametrize("backend", ["fused", "torch"])
@pytest.mark.parametrize("net, value", [("G", math.nan), ("D", math.nan), ("D", math.inf), ("G", -math.inf)])
def test_a_non_finite_parameter_ends_the_epoch_at_the_next_row(net, value, backend):
    """A NaN or infinite weight (in G or D) is caught at the next logged row: `diverged` is the
    epoch, the pass ends there, and the next epoch is not entered by the run (its protocol stops).
    On the PyTorch nets (BatchNorm and conv presets run there) a NaN once made nn.BCELoss raise."""
    if backend == "fused" and not ganfast.extension_available():
        pytest.skip("the fused nets need the compiled extension")
    t = ImageTrainer(tiny_digits_cfg(), digits(96), backend=backend)  # 6 iterations, a row every 2
    t.train_epoch()
    assert t.diverged == -1
    with torch.no_grad():
        next(getattr(t, net).parameters()).view(-1)[0] = value
    rows = t.train_epoch()
    assert t.diverged == 2 and [r["iteration"] for r in rows] == [8] and t.iteration == 8
    assert t.state_dict()["diverged"] == 2


def test_an_image_run_without_g_steps_is_not_diverged():
    """g_steps 0: there is no G loss (a NaN in the row), which is not a divergence."""
    t = ImageTrainer(tiny_digits_cfg(g_steps=0), digits(64))
    rows = t.train_epoch()
    assert t.diverged == -1 and all(math.isnan(r["g_loss"]) for r in rows) and t.iteration == 4


def test_a_checkpoint_without_the_divergence_field_loads_as_not_diverged():
    t = ImageTrainer(tiny_digits_cfg(), digits(64))
    state = t.state_dict()
    del state["diverged"]  # a checkpoint from before the field
    t.diverged = 3
    t.load_state_dict(state)
    assert t.diverged == -1


def test_data_order_is_a_permutation_per_epoch():
    t = ImageTrainer(tiny_digits_cfg(), digits(64))
    o0, o1 = t._order(0), t._order(1)
    assert sorted(o0.tolist()) == list(range(64)) and sorted(o1.tolist()) == list(range(64))
    assert not torch.equal(o0, o1) and torch.equal(o0, t._order(0))


def test_resume_is_bit_identical():
    """Two epochs straight == one epoch, a checkpoint through torch.save, a new trainer, one more.
    The config has everything that draws random numbers: Philox noise and flat-MLP dropout (D),
    nn.Dropout and BatchNorm (G, a PyTorch Sequential), and a StepLR schedule."""
    cfg = load_preset("virtuo").replace({
        "batch_size": 4, "generator.hidden": [16, 16], "generator.dropout": 0.2,
        "discriminator.hidden": [8], "discriminator.dropout": 0.3, "noise.dim": 8,
        "optimizer_g.step_lr": {"step_size": 1, "gamma": 0.5}})
    data = synthetic("mnist", 16)
    straight = ImageTrainer(cfg, data)
    straight.train_epoch()
    straight.train_epoch()
    first = ImageTrainer(cfg, data)
    first.train_epoch()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    second = ImageTrainer(cfg, data)
    second.load_state_dict(torch.load(buf, weights_only=True))
    second.train_epoch()
    assert torch.equal(flat_params(straight.G), flat_params(second.G))
    assert torch.equal(flat_params(straight.D), flat_params(second.D))
    assert second.g_opt.param_groups[0]["lr"] == straight.g_opt.param_groups[0]["lr"] == 3e-4 * 0.25
    assert (second.epoch, second.iteration, second.stream.offset) == (2, 8, straight.stream.offset)


@pytest.mark.parametrize("preset", ["digits-mlp", "mnist-mlp", "virtuo", "cifar-conv", "dcgan"])
def test_every_image_preset_takes_a_step(preset):
    cfg = load_preset(preset).replace(batch_size=2, log_every=1)
    data = digits(4) if cfg.data.kind == "digits" else synthetic(cfg.data.kind, 4)
    t = ImageTrainer(cfg, data)
    g0 = flat_params(t.G).clone()
    rows = t.train_epoch()
    assert len(rows) == 2 and all(math.isfinite(r[k]) for r in rows for k in ("d_loss_real", "g_loss"))
    assert not torch.equal(g0, flat_params(t.G))
    assert t.generate(grid_noise(cfg, 2)).shape == (2, *cfg.data.image_shape)


def test_errors():
    cfg = tiny_digits_cfg()
    with pytest.raises(ValueError, match=r"has 8 images, fewer than one iteration takes \(batch_size 16"):
        ImageTrainer(cfg, digits(8))
    with pytest.raises(ValueError, match="needs an image config"):
        ImageTrainer(load_preset("devnag"), digits(8))
    with pytest.raises(ValueError, match="the data set is 'mnist' but the config's data.kind is 'digits'"):
        ImageTrainer(cfg, synthetic("mnist", 32))
    t = ImageTrainer(cfg, digits(32))
    with pytest.raises(ValueError, match="not the state of an image trainer"):
        t.load_state_dict({"version": 99})  # not what ImageTrainer.state_dict writes


def test_config_file_with_image_data(tmp_path):
    path = tmp_path / "digits.yaml"
    path.write_text("data: {kind: digits, limit: 40}\nnoise: {kind: normal, dim: 4}\n"
                    "generator: {hidden: [8], output_activation: sigmoid}\n"
                    "discriminator: {hidden: [8], output_activation: sigmoid}\n"
                    "batch_size: 8\nd_steps: 1\ng_steps: 1\n")
    cfg = load_config(path)
    assert cfg.is_image and cfg.data.limit == 40
    t = ImageTrainer(cfg, digits(40))
    assert t.iterations_per_epoch == 5 and len(t.train_epoch()) == 1


def _cuda_skip_reason():
    from ganfast import _ext

    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    if not _ext.WITH_CUDA:
        return "ganfast._C was built without its CUDA kernels"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_skip_reason() is not None, reason=_cuda_skip_reason() or "")
def test_cuda_trainer_matches_cpu():
    """The same image GAN on the GPU: same Philox noise, order and dropout masks, so float64
    parameters after an epoch agree with the CPU run to rounding."""
    cfg = tiny_digits_cfg(dtype="float64")
    cpu, gpu = ImageTrainer(cfg, digits(64)), ImageTrainer(cfg, digits(64), device="cuda")
    assert {gpu.G.backend_in_use, gpu.D.backend_in_use} == {"fused"}
    cpu.train_epoch()
    gpu.train_epoch()
    for a, b in ((cpu.G, gpu.G), (cpu.D, gpu.D)):
        pa, pb = flat_params(a), flat_params(b).cpu()
        assert float((pa - pb).abs().max() / pa.abs().max()) <= 1e-9
    assert cpu.stream.offset == gpu.stream.offset
