"""Tests of ganfast.app.config: presets, round trips, validation messages, replace(), the GanSpec a
config builds."""
import math
import re

import pytest
import yaml

from ganfast.app.config import (
    ConfigError,
    DataConfig,
    NetConfig,
    TrainConfig,
    list_presets,
    load_config,
    load_preset,
    preset_path,
)
from ganfast.gan import GanSpec, NoiseSpec, OptimizerSpec, StepLR
from ganfast.validate import SpecError

TOY_PRESETS = ["devnag", "devnag-elu", "gaussian", "how-to-gan", "ring8", "vanilla"]
IMAGE_PRESETS = ["cifar-conv", "dcgan", "digits-mlp", "mnist-mlp", "virtuo"]
PRESETS = sorted(TOY_PRESETS + IMAGE_PRESETS)


def bad(overrides: dict, match: str):
    """Assert that the default config with `overrides` (dotted keys) is rejected."""
    with pytest.raises(ConfigError, match=match):
        TrainConfig().replace(overrides)


# --- presets --------------------------------------------------------------------------------

def test_list_presets():
    assert list_presets() == PRESETS
    assert list_presets("toy") == TOY_PRESETS and list_presets("image") == IMAGE_PRESETS
    with pytest.raises(ValueError, match="kind must be 'toy', 'image' or None"):
        list_presets("images")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_round_trips(name):
    cfg = load_preset(name)
    assert cfg.name == name
    assert preset_path(name).read_text().startswith("#")  # the header citing the source
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    assert load_config(yaml.safe_load(text)) == cfg
    assert load_config(cfg.to_dict()).to_dict() == cfg.to_dict()


def test_round_trip_through_a_file(tmp_path):
    cfg = load_preset("how-to-gan").replace(seed=7, population=3)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert load_config(path) == cfg
    assert load_config(str(path)) == cfg


def test_devnag():
    cfg = load_preset("devnag")
    assert cfg.g_spec.widths == (1, 5, 5, 1)
    assert cfg.d_spec.widths == (4, 10, 10, 1)
    assert (cfg.g_spec.activation, cfg.g_spec.output_activation) == ("tanh", "identity")
    assert (cfg.d_spec.activation, cfg.d_spec.output_activation) == ("sigmoid", "sigmoid")
    assert cfg.discriminator.input == "moments"
    assert cfg.data == DataConfig("normal", 1, mean=(4.0,), std=(1.25,))
    assert cfg.noise == NoiseSpec("uniform", 1, low=0.0, high=1.0)
    assert (cfg.batch_size, cfg.d_steps, cfg.g_steps, cfg.epochs, cfg.log_every) == (500, 20, 20, 5000, 100)
    assert cfg.optimizer_d == cfg.optimizer_g == OptimizerSpec("sgd", lr=1e-3, momentum=0.9)
    assert cfg.loss.generator == "non_saturating"
    assert load_preset("devnag-elu").generator.activation == "elu"
    assert load_preset("devnag-elu").replace(name="devnag", **{"generator.activation": "tanh"}) == cfg


def test_other_presets():
    v = load_preset("vanilla")
    assert v.g_spec.widths == (1, 16, 32, 16, 1) and v.d_spec.widths == (1, 16, 16, 8, 1)
    assert (v.d_spec.activation, v.d_spec.dropout, v.g_spec.activation, v.g_spec.dropout) == ("tanh", 0.5, "relu", 0.5)
    assert (v.d_steps, v.g_steps, v.batch_size, v.epochs, v.log_every) == (5, 1, 2048, 20000, 500)
    assert v.optimizer_d.kind == "adam" and v.optimizer_g.betas == (0.9, 0.999)
    h = load_preset("how-to-gan")
    assert h.d_spec.widths == (1, 64, 64, 1) and h.g_spec.widths == (1, 32, 32, 1)
    assert h.d_spec.activation == "leaky_relu" and h.d_spec.layer_act_params[0] == 0.2
    assert h.optimizer_g.step_lr == StepLR(2000, 0.5) and h.optimizer_d.betas == (0.5, 0.999)
    r = load_preset("ring8")
    assert r.g_spec.widths == (2, 64, 64, 2) and r.d_spec.widths == (2, 64, 64, 1)
    assert r.noise.kind == "normal" and r.noise.dim == 2
    centers, std, weights = r.data.components()
    assert len(centers) == 8 and std == (0.02, 0.02) and math.isclose(sum(weights), 1.0)
    assert centers[2] == pytest.approx((0.0, 2.0), abs=1e-12)
    assert r.to_dict()["data"]["std"] == 0.02  # isotropic std written back as a scalar


def test_unknown_preset():
    with pytest.raises(ConfigError, match=r"unknown preset 'devnah'.*did you mean 'devnag'"):
        load_preset("devnah")


# --- defaults and accepted forms ---------------------------------------------------------

def test_defaults():
    cfg = load_config({})
    assert cfg == TrainConfig()
    assert cfg.g_spec.widths == (1, 5, 5, 1) and cfg.d_spec.widths == (1, 10, 10, 1)
    assert cfg.member_seeds == (0,)
    assert TrainConfig(population=3, seed=5).member_seeds == (5, 6, 7)


def test_numeric_strings_accepted():
    cfg = load_config(yaml.safe_load(
        "optimizer_d: {lr: 1e-3, eps: 1e-8}\nepochs: 1e3\ndata: {std: 2e0}\nseed: '4'"))
    assert cfg.optimizer_d.lr == 1e-3 and cfg.optimizer_d.eps == 1e-8
    assert cfg.epochs == 1000 and cfg.seed == 4 and cfg.data.std == (2.0,)
    assert isinstance(cfg.epochs, int)


def test_forms_are_normalised():
    cfg = load_config({
        "epochs": 10.0,  # integral float
        "data": {"mean": 0, "std": 1},  # scalars broadcast
        "generator": {"activation": "LReLU", "activation_param": "0.1", "hidden": []},
        "optimizer_d": {"kind": "Adam", "lr": 1, "step_lr": {"step_size": 5}},
    })
    assert cfg.epochs == 10 and isinstance(cfg.epochs, int)
    assert cfg.data.mean == (0.0,) and cfg.data.std == (1.0,)
    assert cfg.generator.activation == "leaky_relu" and cfg.generator.activation_param == 0.1
    assert cfg.g_spec.widths == (1, 1)  # no hidden layer: a single linear map
    assert cfg.optimizer_d.kind == "adam" and cfg.optimizer_d.lr == 1.0
    assert cfg.optimizer_d.step_lr == StepLR(5, 0.1)


def test_data_kinds():
    n = load_config({"data": {"mean": [0, 1, 2], "std": 0.5}}).data  # dim read off mean
    assert n.dim == 3 and n.std == (0.5, 0.5, 0.5)
    m = load_config({"data": {"kind": "mixture", "centers": [[0, 0], [1, 1], [2, 0]],
                              "std": 0.1, "weights": [1, 1, 2]}}).data
    assert m.dim == 2 and m.weights == (0.25, 0.25, 0.5) and m.std == (0.1, 0.1)
    assert m.mean is None
    assert load_config({"data": {"kind": "mixture", "centers": [[0], [5]], "std": 1}}).data.weights == (0.5, 0.5)
    r = load_config({"data": {"kind": "ring", "modes": 3, "radius": 1, "std": 0.1}}).data
    assert r.dim == 2 and r.modes == 3 and r.radius == 1.0
    for data in (n, m, r):
        cfg = load_config({"data": data.to_dict()})
        assert cfg.data == data and cfg.g_spec.widths[-1] == data.dim
        assert load_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg


def test_wide_nets_are_legal():
    cfg = load_config({"generator": {"hidden": [1024, 1024]}})
    assert cfg.g_spec.widths == (1, 1024, 1024, 1) and not cfg.g_spec.fits_fused


def test_direct_construction_is_validated():
    cfg = TrainConfig(noise={"kind": "normal", "dim": 2}, generator=NetConfig(hidden=[3]))
    assert cfg.noise == NoiseSpec("normal", 2) and cfg.generator.hidden == (3,)
    with pytest.raises(ConfigError, match=r"^seed: must be >= 0, got -1"):
        TrainConfig(seed=-1)
    with pytest.raises(ConfigError, match=r"^noise\.std: must be > 0"):
        TrainConfig(noise={"kind": "normal", "std": 0.0})
    # a section built on its own is checked on its own, with its bare keys
    with pytest.raises(SpecError, match=r"^std: must be > 0"):
        NoiseSpec("normal", std=0.0)
    with pytest.raises(SpecError, match=r"^lr: must be > 0, got 0\.0"):
        OptimizerSpec(lr=0)


def test_one_default_per_key():
    """Every default comes from the dataclass fields: an empty mapping, a missing section and
    the field default are the same thing."""
    assert load_config({}) == TrainConfig() == load_config({"noise": None, "optimizer_d": {}, "loss": None})
    assert load_config({"discriminator": {}}).discriminator == TrainConfig().discriminator
    assert load_config({"discriminator": {"hidden": [3]}}).discriminator.activation == "sigmoid"  # D's defaults
    assert load_config({"generator": {"hidden": [3]}}).generator.activation == "tanh"


@pytest.mark.parametrize("name", TOY_PRESETS)
def test_gan_spec_of_the_toy_presets(name):
    cfg = load_preset(name)
    spec = cfg.gan_spec
    assert isinstance(spec, GanSpec) and spec is cfg.gan_spec  # built once per config
    assert (spec.g, spec.d) == (cfg.g_spec, cfg.d_spec)
    assert spec.noise == cfg.noise and spec.optimizer_d == cfg.optimizer_d and spec.optimizer_g == cfg.optimizer_g
    assert (spec.batch_size, spec.d_steps, spec.g_steps) == (cfg.batch_size, cfg.d_steps, cfg.g_steps)
    assert (spec.d_input, spec.g_loss, spec.dtype) == (cfg.discriminator.input, cfg.loss.generator, cfg.torch_dtype)
    centers, std, weights = cfg.data.components()
    assert (spec.data.centers, spec.data.std, spec.data.weights) == (centers, std, weights)


def test_gan_spec_of_an_image_config_is_an_error():
    with pytest.raises(ValueError, match="image data set"):
        load_preset("digits-mlp").gan_spec


def test_what_the_engine_cannot_train_is_rejected_on_loading():
    with pytest.raises(ConfigError, match="^discriminator.output_activation: the BCE loss .* sigmoid, got 'identity'"):
        load_preset("how-to-gan").replace({"discriminator.output_activation": "identity"})


# --- rejections ---------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, match", [
    # impossible values
    ({"data.std": -1.0}, r"^data\.std: must be > 0, got -1\.0$"),
    ({"data.std": [1.0, -2.0], "data.mean": [0, 0], "data.dim": 2}, r"^data\.std\[1\]: must be > 0, got -2\.0"),
    ({"batch_size": 0}, r"^batch_size: must be >= 1, got 0"),
    ({"epochs": -5}, r"^epochs: must be >= 1"),
    ({"log_every": 0}, r"^log_every: must be >= 1"),
    ({"d_steps": -1}, r"^d_steps: must be >= 0"),
    ({"d_steps": 0, "g_steps": 0}, r"d_steps, g_steps: .*at least one"),
    ({"population": 0}, r"^population: must be >= 1"),
    ({"seed": -1}, r"^seed: must be >= 0"),
    ({"optimizer_d.lr": 0}, r"^optimizer_d\.lr: must be > 0, got 0\.0"),
    ({"optimizer_g.lr": -1e-3}, r"^optimizer_g\.lr: must be > 0"),
    ({"optimizer_d.momentum": 1.0}, r"^optimizer_d\.momentum: must be in \[0, 1\), got 1\.0"),
    ({"optimizer_d.momentum": -0.1}, r"^optimizer_d\.momentum: must be in \[0, 1\)"),
    ({"optimizer_g.betas": [0.9, 1.0]}, r"^optimizer_g\.betas\[1\]: must be in \[0, 1\)"),
    ({"optimizer_g.betas": [0.9]}, r"^optimizer_g\.betas: needs 2 values"),
    ({"optimizer_g.betas": 0.9}, r"^optimizer_g\.betas: expected a list of numbers"),
    ({"optimizer_d.eps": 0}, r"^optimizer_d\.eps: must be > 0"),
    ({"optimizer_d.step_lr.step_size": 0}, r"^optimizer_d\.step_lr\.step_size: must be >= 1"),
    ({"optimizer_d.step_lr": {"step_size": 10, "gamma": 1.5}}, r"^optimizer_d\.step_lr\.gamma: must be in \(0, 1\]"),
    ({"optimizer_d.step_lr": {"gamma": 0.5}}, r"^optimizer_d\.step_lr\.step_size: required"),
    ({"generator.dropout": 1.0}, r"^generator\.dropout: must be in \[0, 1\)"),
    ({"discriminator.dropout": -0.5}, r"^discriminator\.dropout: must be in \[0, 1\)"),
    ({"noise.high": 0.0}, r"^noise\.high: must be > noise\.low"),
    ({"noise": {"kind": "normal", "std": 0}}, r"^noise\.std: must be > 0"),
    ({"noise.dim": 0}, r"^noise\.dim: must be >= 1"),
    ({"generator.hidden": [5, 0]}, r"^generator\.hidden\[1\]: must be >= 1, got 0"),
    ({"generator.activation_param": 0.2}, r"^generator\.activation_param: activation 'tanh' takes no parameter"),
    ({"discriminator.activation": "leaky_relu", "discriminator.activation_param": -1},
     r"^discriminator\.activation_param: must be > 0"),
    # unknown choices
    ({"optimizer_g.kind": "rmsprop"}, r"^optimizer_g\.kind: unknown optimizer 'rmsprop'; choose adam or sgd$"),
    ({"generator.activation": "swish"}, r"^generator\.activation: unknown activation 'swish'; choose one of elu, identity"),
    ({"discriminator.output_activation": "softmax"}, r"^discriminator\.output_activation: unknown activation"),
    ({"dtype": "float16"}, r"^dtype: unknown dtype 'float16'; choose float32 or float64"),
    ({"loss.generator": "wasserstein"}, r"^loss\.generator: unknown generator loss 'wasserstein'; choose minimax or non_saturating"),
    ({"data.kind": "uniform"}, r"^data\.kind: unknown data kind 'uniform'; choose cifar10, digits, mixture, mnist, normal or ring"),
    ({"noise.kind": "gaussian"}, r"^noise\.kind: unknown noise kind"),
    ({"discriminator.input": "moment"}, r"^discriminator\.input: .*did you mean 'moments'"),
    # wrong types
    ({"optimizer_d.lr": "fast"}, r"^optimizer_d\.lr: expected a number, got the string 'fast'"),
    ({"optimizer_d.lr": True}, r"^optimizer_d\.lr: expected a number, got a boolean"),
    ({"epochs": True}, r"^epochs: expected an integer, got a boolean"),
    ({"epochs": 10.5}, r"^epochs: expected an integer, got 10\.5"),
    ({"batch_size": "many"}, r"^batch_size: expected an integer, got the string 'many'"),
    ({"seed": None}, r"^seed: expected an integer, got null"),
    ({"generator.hidden": 5}, r"^generator\.hidden: expected a list of layer widths"),
    ({"generator.hidden": [5, 2.5]}, r"^generator\.hidden\[1\]: expected an integer, got 2\.5"),
    ({"data.mean": "four"}, r"^data\.mean: expected a number"),
    ({"optimizer_d.lr": float("nan")}, r"^optimizer_d\.lr: must be a finite number"),
    ({"name": ""}, r"^name: expected a non-empty string"),
    ({"noise": [1, 2]}, r"^noise: expected a mapping"),
    ({"generator.activation": 3}, r"^generator\.activation: activation must be a string"),
    # shapes and cross-field checks
    ({"data.dim": 2}, r"^data\.mean: needs 2 values \(data\.dim is 2\), got 1"),
    ({"data.mean": [1.0, 2.0], "data.dim": 2}, r"^data\.std: needs 2 values \(data\.dim is 2\), got 1"),
    ({"data.mean": [1.0, 2.0], "data.dim": 1}, r"^data\.mean: needs 1 value \(data\.dim is 1\), got 2"),
    ({"data": {"kind": "ring", "dim": 3, "modes": 8, "radius": 2, "std": 0.1}}, r"^data\.dim: kind 'ring' .* must be 2, got 3"),
    ({"data": {"kind": "ring", "modes": 0, "radius": 2, "std": 0.1}}, r"^data\.modes: must be >= 1"),
    ({"data": {"kind": "ring", "modes": 8, "radius": 0, "std": 0.1}}, r"^data\.radius: must be > 0"),
    ({"data": {"kind": "ring", "modes": 8, "std": 0.1}}, r"^data\.radius: required for data\.kind 'ring'"),
    ({"data": {"kind": "mixture", "centers": [[0, 0], [1]], "std": 0.1}}, r"^data\.centers\[1\]: needs 2 values"),
    ({"data": {"kind": "mixture", "centers": [[0], [1]], "std": 0.1, "weights": [1, 0]}}, r"^data\.weights\[1\]: must be > 0"),
    ({"data": {"kind": "mixture", "centers": [[0], [1]], "std": 0.1, "weights": [1]}}, r"^data\.weights: needs 2 values \(one per centre\)"),
    ({"data": {"kind": "mixture", "centers": [], "std": 0.1}}, r"^data\.centers: needs at least one"),
    ({"data.kind": "ring"}, r"^data\.mean: not used by data\.kind 'ring'"),
    ({"noise": {"kind": "uniform", "std": 2.0}}, r"^noise\.std: not used by noise\.kind 'uniform'"),
    ({"discriminator.input": "moments", "data": {"mean": [0, 0], "std": [1, 1]}},
     r"^discriminator\.input: 'moments' .* needs data\.dim == 1, got data\.dim 2"),
    ({"discriminator.input": "moments", "batch_size": 1}, r"^batch_size: .*moments.* needs batch_size >= 2"),
    ({"population": 2, "seed": 2**63 - 1}, r"^seed: seed \+ population - 1 must be < 2\*\*63"),
])
def test_rejected(overrides, match):
    bad(overrides, match)


@pytest.mark.parametrize("raw, match", [
    ({"optimizer_d": {"lerning_rate": 1e-3}},
     r"^unknown key 'lerning_rate' in optimizer_d \(known: kind, lr, momentum, betas, eps, step_lr\); did you mean 'lr'\?"),
    ({"epoch": 3}, r"^unknown key 'epoch' in the config \(known: .*\); did you mean 'epochs'\?"),
    ({"data": {"sigma": 1}}, r"^unknown key 'sigma' in data .*did you mean 'std'\?"),
    ({"generator": {"input": "raw"}}, r"^unknown key 'input' in generator"),
    ({"discriminator": {"widths": [4, 10, 1]}}, r"^unknown key 'widths' in discriminator .*did you mean 'hidden'\?"),
    ({"optimizer_g": {"step_lr": {"step": 3}}}, r"^unknown key 'step' in optimizer_g\.step_lr"),
    ({"loss": {"gen": "minimax"}}, r"^unknown key 'gen' in loss"),
    ({"noise": {"kind": "normal", "sdt": 1}}, r"^unknown key 'sdt' in noise .*did you mean 'std'\?"),
])
def test_unknown_keys(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_config(raw)


def test_errors_are_value_errors():
    assert issubclass(ConfigError, ValueError)


# --- files --------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": config file not found"):
        load_config(path)


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: [1, 2\nseed: 3\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": invalid YAML"):
        load_config(path)


def test_duplicate_yaml_key(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("optimizer_d:\n  lr: 1.0e-3\n  lr: 1.0e-2\n")
    with pytest.raises(ConfigError, match="duplicate key 'lr'"):
        load_config(path)


def test_file_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  std: -1.0\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": data\.std: must be > 0, got -1\.0"):
        load_config(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": config: expected a mapping"):
        load_config(path)


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(path) == TrainConfig()


# --- replace ------------------------------------------------------------------------------

def test_replace():
    cfg = load_preset("devnag")
    new = cfg.replace(epochs=10, seed=3)
    assert (new.epochs, new.seed) == (10, 3) and cfg.epochs == 5000  # frozen original untouched
    new = cfg.replace({"optimizer_d.lr": 1e-4, "data.std": 2.0})
    assert new.optimizer_d.lr == 1e-4 and new.optimizer_g.lr == 1e-3 and new.data.std == (2.0,)
    new = cfg.replace(**{"optimizer_g.step_lr.step_size": 100})  # creates the null section
    assert new.optimizer_g.step_lr == StepLR(100, 0.1)
    new = cfg.replace(optimizer_d={"kind": "adam"})  # a mapping replaces the whole section
    assert new.optimizer_d == OptimizerSpec(kind="adam")
    new = cfg.replace(noise=NoiseSpec("normal", 1, std=2.0), **{"discriminator.input": "raw"})
    assert new.noise.kind == "normal" and new.d_spec.widths == (1, 10, 10, 1)
    new = cfg.replace(data={"kind": "ring", "modes": 4, "radius": 1, "std": 0.1},
                      **{"discriminator.input": "raw", "noise.dim": 2})
    assert new.g_spec.widths == (2, 5, 5, 2) and new.d_spec.widths == (2, 10, 10, 1)
    assert cfg.replace() == cfg


def test_replace_revalidates():
    cfg = load_preset("devnag")
    with pytest.raises(ConfigError, match=r"^optimizer_d\.lr: must be > 0"):
        cfg.replace({"optimizer_d.lr": -1})
    with pytest.raises(ConfigError, match=r"^discriminator\.input: 'moments'"):
        cfg.replace(data={"kind": "ring", "modes": 8, "radius": 2, "std": 0.02})
    with pytest.raises(ConfigError, match=r"unknown key 'optimzer_d' in the config .*did you mean 'optimizer_d'"):
        cfg.replace({"optimzer_d.lr": 1e-4})
    with pytest.raises(ConfigError, match=r"^epochs: is a value, not a section"):
        cfg.replace({"epochs.x": 1})


# --- image configs ----------------------------------------------------------------------------

def test_image_presets():
    for name in TOY_PRESETS:
        assert not load_preset(name).is_image
    d = load_preset("digits-mlp")
    assert d.is_image and d.data.image_shape == (1, 8, 8) and d.data.dim == 64
    assert d.g_spec.widths == (32, 256, 256, 64) and d.d_spec.widths == (64, 256, 256, 1)
    assert d.data.pixel_range == (-1.0, 1.0) and d.g_spec.output_activation == "tanh"
    assert d.generator.is_fused_mlp and d.discriminator.is_fused_mlp
    m = load_preset("mnist-mlp")
    assert m.g_spec.widths == (100, 1200, 1200, 784) and m.d_spec.widths == (784, 240, 240, 1)
    assert (m.d_spec.dropout, m.g_spec.output_activation, m.batch_size) == (0.3, "sigmoid", 256)
    assert m.optimizer_d.lr == 2e-4 and m.noise.kind == "normal" and m.data.pixel_range == (0.0, 1.0)
    v = load_preset("virtuo")
    assert v.generator.batchnorm and not v.generator.is_fused_mlp and v.data.pixel_range == (-1.0, 1.0)
    assert v.g_spec.widths == (784, 256, 512, 1024, 784) and v.d_spec.widths == (784, 512, 256, 1)
    assert v.optimizer_g.betas == (0.5, 0.999) and v.optimizer_g.lr == 3e-4 and v.batch_size == 128
    c = load_preset("dcgan")
    assert (c.generator.arch, c.generator.init, c.data.image_shape) == ("dcgan", "dcgan", (3, 32, 32))
    assert load_preset("cifar-conv").discriminator.arch == "cifar_conv"
    with pytest.raises(ValueError, match="conv net"):
        c.g_spec


def test_image_data_round_trip(tmp_path):
    cfg = load_preset("mnist-mlp").replace({"data.root": str(tmp_path), "data.limit": 300})
    assert (cfg.data.root, cfg.data.limit) == (str(tmp_path), 300)
    assert load_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg
    assert cfg.to_dict()["data"] == {"kind": "mnist", "root": str(tmp_path), "scale": "unit", "limit": 300}
    assert cfg.to_dict()["generator"] == {**cfg.to_dict()["generator"], "batchnorm": False}
    assert load_preset("dcgan").to_dict()["generator"] == {"arch": "dcgan", "init": "dcgan"}


@pytest.mark.parametrize("overrides, match", [
    ({"data": {"kind": "digits", "root": "x"}}, r"data\.root: not used by data\.kind 'digits'"),
    ({"data": {"kind": "mnist", "dim": 3}}, r"data\.dim: not used by data\.kind 'mnist'"),
    ({"data": {"kind": "mnist", "scale": "bipolar"}}, r"data\.scale: unknown pixel scale 'bipolar'"),
    ({"data": {"kind": "mnist", "limit": 0}}, r"data\.limit: must be >= 1"),
    ({"data": {"kind": "mnsit"}}, r"data\.kind: unknown data kind 'mnsit'.*did you mean 'mnist'"),
    ({"data": {"kind": "digits"}, "population": 2}, r"population: image data trains one GAN"),
    ({"data": {"kind": "digits"}, "d_steps": 0, "g_steps": 1}, r"d_steps: image data needs at least one D step"),
    ({"data": {"kind": "digits"}, "discriminator.input": "moments"}, r"discriminator\.input: 'moments' \(4 moments of a 1-D batch\) needs data\.dim == 1, got data\.dim 64"),
    ({"generator.batchnorm": True}, r"generator\.batchnorm: only image data"),
    ({"generator.batchnorm": "yes"}, r"generator\.batchnorm: expected true or false"),
    ({"discriminator": {"arch": "dcgan"}}, r"discriminator\.arch: 'dcgan' is for image data"),
    ({"data": {"kind": "digits"}, "generator": {"arch": "dcgan"}}, r"generator\.arch: 'dcgan' is built for 32x32"),
    ({"data": {"kind": "cifar10"}, "generator": {"arch": "dcgan", "hidden": [3]}},
     r"generator\.hidden: not used by generator\.arch 'dcgan'"),
    ({"generator.arch": "resnet"}, r"generator\.arch: unknown architecture 'resnet'"),
    ({"generator.init": "xavier"}, r"generator\.init: unknown init 'xavier'"),
])
def test_image_config_errors(overrides, match):
    bad(overrides, match)
