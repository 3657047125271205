"""Every config the engine, the reference trainer or the image trainer cannot run is rejected
before a run folder is made, with one line naming the key (issue 13, item 3).

RULES is the table of every rule that involves more than one value (ganfast.app.config's
_cross_check functions, GanSpec's, the run's own checks of memory, device and backend); each row
is a config that breaks exactly that rule, run through the CLI. Field-level rules (a value of the
wrong type or out of range) are generated for every key of a toy and an image preset."""
from __future__ import annotations

import pytest
import yaml

import ganfast.app.cli as train_cli
from ganfast.app.config import ConfigError, load_config, load_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOY, IMAGE = "how-to-gan", "digits-mlp"
SMALL_IMAGE = {"data": {"limit": 64}, "batch_size": 16, "generator": {"hidden": [16]},
               "discriminator": {"hidden": [16]}}

# (id, preset, edits (nested, merged into the preset's dict), extra CLI arguments, needle)
RULES = [
    # the discriminator's input map
    ("moments-2d", "ring8", {"discriminator": {"input": "moments"}}, [], "discriminator.input: 'moments'"),
    ("moments-batch-1", "devnag", {"batch_size": 1}, [], "batch_size: discriminator.input 'moments'"),
    ("moments-image", IMAGE, {"discriminator": {"input": "moments"}}, [], "discriminator.input"),
    ("conv-moments", IMAGE, {"discriminator": {"arch": "cifar_conv", "input": "moments", "hidden": None}}, [],
     "discriminator."),
    # updates per epoch, seeds
    ("no-updates", TOY, {"d_steps": 0, "g_steps": 0}, [], "d_steps, g_steps: both are 0"),
    ("seed-overflow", TOY, {"seed": 2**63 - 2, "population": 3}, [], "seed: seed + population - 1"),
    # layers that act after hidden layers, with none
    ("g-dropout-no-hidden", TOY, {"generator": {"hidden": [], "dropout": 0.5}}, [], "generator.dropout: acts after"),
    ("d-dropout-no-hidden", TOY, {"discriminator": {"hidden": [], "dropout": 0.5}}, [],
     "discriminator.dropout: acts after"),
    ("image-dropout-no-hidden", IMAGE, {"generator": {"hidden": [], "dropout": 0.3}}, [],
     "generator.dropout: acts after"),
    ("batchnorm-no-hidden", IMAGE, {"generator": {"hidden": [], "batchnorm": True}}, [],
     "generator.batchnorm: acts after"),
    ("batchnorm-batch-1", IMAGE, {"generator": {"batchnorm": True}, "batch_size": 1}, [],
     "batch_size: generator.batchnorm needs batch_size >= 2"),
    # BCE
    ("d-output-identity", TOY, {"discriminator": {"output_activation": "identity"}}, [],
     "discriminator.output_activation: the BCE loss"),
    ("d-output-tanh", TOY, {"discriminator": {"output_activation": "tanh"}}, [], "discriminator.output_activation"),
    ("image-d-output-identity", IMAGE, {"discriminator": {"output_activation": "identity"}}, [],
     "discriminator.output_activation: the BCE loss"),
    ("image-d-output-relu", IMAGE, {"discriminator": {"output_activation": "relu"}}, [],
     "discriminator.output_activation"),
    # image-only settings on toy data, toy-only settings on images
    ("toy-conv", TOY, {"generator": {"arch": "cifar_conv", "hidden": None, "activation": None,
                                     "output_activation": None, "dropout": None, "batchnorm": None}}, [],
     "generator."),
    ("toy-batchnorm", TOY, {"generator": {"batchnorm": True}}, [], "generator.batchnorm: only image data"),
    ("toy-init-dcgan", TOY, {"discriminator": {"init": "dcgan"}}, [], "discriminator.init: 'dcgan' is for image"),
    ("toy-data-root", TOY, {"data": {"root": "/data"}}, [], "data.root: not used by data.kind 'normal'"),
    ("image-population", IMAGE, {"population": 2}, [], "population: image data trains one GAN"),
    ("image-no-d-step", IMAGE, {"d_steps": 0}, [], "d_steps: image data needs"),
    ("conv-on-8x8", IMAGE, {"generator": {"arch": "dcgan", "hidden": None, "activation": None,
                                          "output_activation": None, "dropout": None, "batchnorm": None}}, [],
     "generator."),
    ("conv-with-mlp-keys", IMAGE, {"generator": {"arch": "cifar_conv"}}, [],
     "generator.activation: not used by generator.arch 'cifar_conv'"),
    # the data
    ("ring-3d", "ring8", {"data": {"dim": 3}}, [], "data.dim: kind 'ring' lies in the plane"),
    ("mixture-weights", TOY, {"data": {"kind": "mixture", "centers": [[0.0], [1.0]], "std": 1.0,
                                       "weights": [1.0], "mean": None, "dim": None}}, [], "data.weights"),
    ("noise-range", TOY, {"noise": {"low": 1.0, "high": 1.0}}, [], "noise.high: must be > noise.low"),
    ("tanh-param", TOY, {"generator": {"activation": "tanh", "activation_param": 0.1}}, [],
     "generator.activation_param: activation 'tanh' takes no parameter"),
    ("batch-over-images", IMAGE, {"batch_size": 128}, [], "fewer than one iteration takes"),
    # what the run checks: memory, device, backend, data folder
    ("memory", TOY, {"generator": {"hidden": [1_000_000_000]}, "population": 4}, [], "GiB, more than the"),
    ("device-meta", TOY, {}, ["--device", "meta"], "--device meta: meta tensors hold no data"),
    ("device-nonsense", TOY, {}, ["--device", "warp"], "--device: invalid device 'warp'"),
    ("fused-too-wide", TOY, {"generator": {"hidden": [300]}}, ["--backend", "fused"],
     "--backend fused cannot run here"),
    ("fused-batchnorm", IMAGE, {"generator": {"batchnorm": True}}, ["--backend", "fused"],
     "--backend fused cannot run here"),
    ("dtype-half", TOY, {}, ["--dtype", "float16"], "dtype: unknown dtype 'float16'"),
    ("data-on-toy", TOY, {}, ["--data", "/data"], "--data is for the mnist and cifar10 data sets"),
    ("data-on-digits", IMAGE, {}, ["--data", "/data"], "data.kind 'digits' needs no files"),
]


def _merge(d: dict, edits: dict) -> dict:
    """The preset's dict with `edits` merged in; a None value removes the key."""
    out = dict(d)
    for k, v in edits.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _config_dict(preset: str, edits: dict) -> dict:
    base = load_preset(preset)
    if base.is_image:
        base = base.replace({"data.limit": 64, "batch_size": 16, "generator.hidden": [16],
                             "discriminator.hidden": [16]})
    return _merge(base.to_dict(), edits)


@pytest.mark.parametrize("preset, edits, argv, needle", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_every_rule_is_one_line_before_any_folder(tmp_path, capsys, preset, edits, argv, needle):
    if preset == IMAGE:
        pytest.importorskip("sklearn")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_config_dict(preset, edits), sort_keys=False))
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(path), "--out", str(out), "--epochs", "1", "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    assert needle in err, err
    assert not out.exists()


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _set(d: dict, key: str, value) -> dict:
    out = yaml.safe_load(yaml.safe_dump(d))
    *parents, leaf = key.split(".")
    node = out
    for p in parents:
        node = node[p]
    node[leaf] = value
    return out


FIELDS = [(preset, key) for preset in (TOY, "devnag", "ring8", "vanilla", IMAGE, "cifar-conv")
          for key, _ in _leaves(load_preset(preset).to_dict())]


@pytest.mark.parametrize("preset, key", FIELDS, ids=[f"{p}:{k}" for p, k in FIELDS])
def test_every_field_rejects_a_value_of_the_wrong_kind(preset, key):
    """A mapping where a value goes: the message starts with the dotted key (every field has a
    check; none takes anything)."""
    d = _set(load_preset(preset).to_dict(), key, {"what": 1})
    with pytest.raises(ConfigError) as info:
        load_config(d)
    msg = str(info.value)
    assert msg.startswith(key + ":") or f"in {key} (known:" in msg, msg
    assert "\n" not in msg
