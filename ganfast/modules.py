"""Generator and Discriminator: nn.Modules that hold one flat parameter and run the fused
kernels or the PyTorch reference (backend="auto" | "fused" | "torch").

The state_dict is the same under every backend ({"params", "_extra_state"}), and
`to_sequential()` exports an equivalent plain nn.Sequential.
"""
from __future__ import annotations

import torch
from torch import nn

from ganfast import functional, reference
from ganfast.random import PhiloxStream
from ganfast.spec import MLPSpec


class MLP(nn.Module):
    """A small MLP on one flat parameter buffer (layout: docs/design.md).

    Initialised like nn.Linear (and bitwise like the nn.Linear layers of the equivalent
    nn.Sequential built under the same torch seed). Dropout masks in training mode come from
    a PhiloxStream (its own, from `seed`, or one shared with other modules via `stream=`); every
    training-mode forward pass advances it, and its position is saved in the state_dict, so a
    reloaded module continues the same stream. `generator` (a torch.Generator) draws the
    initial weights instead of torch's global generator.
    """

    default_output_activation = "identity"

    def __init__(self, widths, activation="relu", output_activation=None, dropout=0.0, *,
                 activation_param=None, output_activation_param=None, backend="auto",
                 seed=0, stream: PhiloxStream | None = None, dtype=torch.float32, device=None,
                 generator: torch.Generator | None = None):
        super().__init__()
        if output_activation is None:
            output_activation = self.default_output_activation
        self.spec = MLPSpec(tuple(widths), activation, output_activation, dropout,
                            activation_param, output_activation_param)
        functional.resolve_backend(backend)  # reject unknown names now, not at the first call
        if dtype not in (torch.float32, torch.float64):  # the forward would refuse it at every call
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.backend = backend
        self.stream = stream if stream is not None else PhiloxStream(seed)
        self.params = nn.Parameter(reference.init_params(self.spec, dtype=dtype, device=device,
                                                         generator=generator))

    @classmethod
    def from_spec(cls, spec: MLPSpec, **kwargs):
        return cls(spec.widths, spec.activation, spec.output_activation, spec.dropout,
                   activation_param=spec.activation_param,
                   output_activation_param=spec.output_activation_param, **kwargs)

    @property
    def backend_in_use(self) -> str:
        """The backend a forward call on this module's device and dtype runs: fused or torch."""
        return functional.resolve_backend(self.backend, self.spec, self.params.device, self.params.dtype)

    @property
    def seed(self) -> int:
        return self.stream.seed

    @property
    def rng_offset(self) -> int:
        """Philox words this module's stream has handed out so far."""
        return self.stream.offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        functional.check_mlp_args(x, self.params, self.spec)  # before the stream advances
        train = self.training and self.spec.dropout > 0
        offset = self.stream.take(self.spec.dropout_words(x.shape[0])) if train else self.stream.offset
        return functional.mlp(x, self.params, self.spec, train=self.training, seed=self.stream.seed,
                              offset=offset, backend=self.backend)

    def to_sequential(self) -> nn.Sequential:
        """An equivalent plain nn.Sequential (Linear/activation/Dropout), with copied weights."""
        return reference.to_sequential(self.params.detach(), self.spec)

    def load_sequential(self, seq: nn.Module) -> None:
        """Copy the weights of an equivalent nn.Sequential (e.g. a seed project's model) in."""
        with torch.no_grad():
            self.params.copy_(reference.flat_from_sequential(seq, self.spec))

    def get_extra_state(self):
        return {"seed": self.stream.seed, "rng_offset": self.stream.offset}

    def set_extra_state(self, state):
        self.stream.seed = int(state["seed"])
        self.stream.offset = int(state["rng_offset"])

    def extra_repr(self) -> str:
        s = self.spec
        text = (f"widths={list(s.widths)}, activation={s.activation}, "
                f"output_activation={s.output_activation}")
        if s.dropout:
            text += f", dropout={s.dropout}"
        return text + f", backend={self.backend}"


class Generator(MLP):
    """G: noise (N, z_dim) -> samples (N, data_dim); linear output by default."""

    default_output_activation = "identity"


class Discriminator(MLP):
    """D: samples (N, features) -> probability of 'real' (N, 1); sigmoid output by default."""

    default_output_activation = "sigmoid"
