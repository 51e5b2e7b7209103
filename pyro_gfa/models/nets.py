"""Networks shared by the models, vectorised over groups and features."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._checks import check_int


def check_widths(value: Any, name: str, *, allow_empty: bool = True) -> tuple[int, ...]:
    """Hidden-layer widths as a tuple of positive ints, or a ``ValueError`` naming ``name``.

    Checked in the constructors: a width of 0 trains a network whose output ignores its
    input, and a float or negative width would only fail (or be truncated) inside torch.
    """
    try:
        if not isinstance(value, (tuple, list)) or not (value or allow_empty):
            raise ValueError
        return tuple(check_int(h, name) for h in value)
    except ValueError:
        kind = "tuple or list" if allow_empty else "non-empty tuple or list"
        raise ValueError(
            f"{name} must be a {kind} of positive integer widths, got {value!r}"
        ) from None


def mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear``; a single linear layer when ``hidden`` is empty."""
    dims = [n_in, *hidden, n_out]
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _uniform_(t: torch.Tensor, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(t, -bound, bound)


class GroupGenerators(nn.Module):
    """One generator network per group, evaluated for all groups at once.

    Group ``g`` maps its ``p`` inputs ``u_g = W^(g) z`` through its own hidden layers; output
    ``j`` (in group ``g(j)``) is the last hidden layer of ``g(j)`` times row ``j`` of the
    output weight. The hidden layers are batched matrix products over groups and the output
    layer one gather, so a step has no Python loop over groups and groups may have any size.

    Parameters
    ----------
    feature_group
        ``(D,)`` group id of every output column.
    p
        Inputs per generator (rows of each ``W^(g)``).
    hidden
        Hidden layer widths of every generator; empty for linear generators.
    input_activation
        ``None``, ``"tanh"`` or ``"relu"``: applied to ``u_g`` before the generator (the
        oi-VAE paper's motion-capture generators are ``W3 tanh(W^(g) z) + b3``).
    """

    ACTIVATIONS = {None: None, "tanh": torch.tanh, "relu": torch.relu}

    def __init__(
        self,
        feature_group: torch.Tensor,
        p: int,
        hidden: Sequence[int] = (),
        input_activation: str | None = None,
    ):
        super().__init__()
        if input_activation not in self.ACTIVATIONS:
            raise ValueError(
                f"input_activation must be None, 'tanh' or 'relu', got {input_activation!r}"
            )
        self.input_activation = self.ACTIVATIONS[input_activation]
        self.register_buffer("feature_group", torch.as_tensor(feature_group, dtype=torch.long))
        n_groups = int(self.feature_group.max()) + 1
        dims = [p, *hidden]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for din, dout in zip(dims[:-1], dims[1:]):
            w = torch.empty(n_groups, din, dout)
            b = torch.empty(n_groups, dout)
            _uniform_(w, din)
            _uniform_(b, din)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        d = self.feature_group.numel()
        self.out_weight = nn.Parameter(torch.empty(d, dims[-1]))
        self.out_bias = nn.Parameter(torch.empty(d))
        _uniform_(self.out_weight, dims[-1])
        _uniform_(self.out_bias, dims[-1])

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``u``: ``(..., G, p)`` generator inputs; returns ``(..., D)`` means."""
        h = u if self.input_activation is None else self.input_activation(u)
        for w, b in zip(self.weights, self.biases):
            h = torch.relu(torch.einsum("...gi,gio->...go", h, w) + b)
        if h.shape[-2] <= h.shape[-1]:
            # Few groups: all groups through every output row in one product (G x D per
            # row), then each output keeps its own group's value.
            full = h @ self.out_weight.T  # (..., G, D)
            index = self.feature_group.expand(*full.shape[:-2], 1, -1)
            out = full.gather(-2, index).squeeze(-2)
        else:
            # Many groups: gather each output's group first (D x H per row).
            out = (h[..., self.feature_group, :] * self.out_weight).sum(-1)
        return out + self.out_bias
