"""MLPSpec: the description of a small MLP that every ganfast path shares.

The fused kernels and the PyTorch reference take the same spec; neither owns it. The flat
parameter layout it describes is documented in docs/design.md.
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, field
from typing import Sequence

#: Widest layer the fused kernels accept (see docs/design.md); wider nets use PyTorch.
MAX_WIDTH = 256
#: Most linear layers the fused kernels accept (core::kMaxLayers); deeper nets use PyTorch.
MAX_LAYERS = 16

#: Activation name -> code used by the C++/CUDA kernels.
ACTIVATIONS = {
    "identity": 0,
    "relu": 1,
    "leaky_relu": 2,
    "elu": 3,
    "tanh": 4,
    "sigmoid": 5,
}

#: Default parameter of the activations that take one (slope, alpha); 0 for the others.
DEFAULT_ACT_PARAM = {"leaky_relu": 0.01, "elu": 1.0}

_ALIASES = {"linear": "identity", "none": "identity", "lrelu": "leaky_relu", "leakyrelu": "leaky_relu"}


def canonical_activation(name: str) -> str:
    """Return the canonical activation name, or raise ValueError naming the choices."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, got {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}"
        )
    return key


@dataclass(frozen=True)
class MLPSpec:
    """Widths, activations and dropout of an MLP with flat parameters.

    widths: [d0, d1, ..., dL], input width first, output width last (L >= 1 layers).
    activation / activation_param: used after every hidden layer.
    output_activation / output_activation_param: used after the last layer.
    dropout: inverted-dropout probability after every hidden activation (training only).
    """

    widths: tuple
    activation: str = "relu"
    output_activation: str = "identity"
    dropout: float = 0.0
    activation_param: float | None = None
    output_activation_param: float | None = None
    _params: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        widths = self.widths
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
            raise TypeError(f"widths must be a sequence of ints, got {widths!r}")
        widths = tuple(widths)
        if len(widths) < 2:
            raise ValueError(f"widths needs at least an input and an output width, got {list(widths)}")
        for w in widths:  # any integer type (NumPy's too); not bool, not 2.0
            if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1:
                raise ValueError(f"every width must be an integer >= 1, got {type(w).__name__} {w!r} in "
                                 f"{[v.item() if hasattr(v, 'item') else v for v in widths]}")
        object.__setattr__(self, "widths", tuple(int(w) for w in widths))
        act = canonical_activation(self.activation)
        out = canonical_activation(self.output_activation)
        object.__setattr__(self, "activation", act)
        object.__setattr__(self, "output_activation", out)
        params = []
        for name, given, field_name in ((act, self.activation_param, "activation_param"),
                                        (out, self.output_activation_param, "output_activation_param")):
            if given is not None and name not in DEFAULT_ACT_PARAM:  # the config loader's rule too
                raise ValueError(f"{field_name}: activation {name!r} takes no parameter (only "
                                 f"{' and '.join(sorted(DEFAULT_ACT_PARAM))} do), got {given!r}; leave it None")
            value = DEFAULT_ACT_PARAM.get(name, 0.0) if given is None else float(given)
            if name in DEFAULT_ACT_PARAM and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} needs a parameter > 0 (slope / alpha), got {value}")
            params.append(value)
        object.__setattr__(self, "_params", tuple(params))
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= p < 1.0):
            raise ValueError(f"dropout must be a probability in [0, 1), got {p!r}")
        object.__setattr__(self, "dropout", float(p))

    # --- shape of the network -------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def in_features(self) -> int:
        return self.widths[0]

    @property
    def out_features(self) -> int:
        return self.widths[-1]

    @functools.cached_property  # on the per-call path; the spec is frozen
    def num_params(self) -> int:
        return sum(o * (i + 1) for i, o in zip(self.widths[:-1], self.widths[1:]))

    @property
    def fits_fused(self) -> bool:
        """True when every width and the depth are within the fused kernels' limits."""
        return max(self.widths) <= MAX_WIDTH and self.num_layers <= MAX_LAYERS

    def layer_slices(self):
        """[(weight_slice, weight_shape, bias_slice), ...] into the flat buffer, per layer."""
        out, pos = [], 0
        for i, o in zip(self.widths[:-1], self.widths[1:]):
            w = slice(pos, pos + o * i)
            b = slice(pos + o * i, pos + o * i + o)
            out.append((w, (o, i), b))
            pos += o * (i + 1)
        return out

    # --- per-layer activation lists, as the kernels take them -----------------------------
    @property
    def layer_activations(self) -> list:
        return [self.activation] * (self.num_layers - 1) + [self.output_activation]

    @property
    def layer_act_codes(self) -> list:
        return [ACTIVATIONS[a] for a in self.layer_activations]

    @property
    def layer_act_params(self) -> list:
        hidden, out = self._params
        return [hidden] * (self.num_layers - 1) + [out]

    @functools.cached_property
    def op_args(self) -> tuple:
        """(widths, act codes, act params) as the ops take them; cached, the spec is frozen."""
        return list(self.widths), self.layer_act_codes, self.layer_act_params

    def dropout_words(self, batch: int) -> int:
        """Philox words one training-mode forward pass of `batch` samples consumes."""
        if self.dropout == 0.0:
            return 0
        return batch * sum(self.widths[1:-1])
