"""Layer-wise learning-rate decay (``training.layer_decay``): the optimizer's parameter
groups when the lower layers of the encoder train slower than the upper ones.

With ``L`` transformer layers, the parameters of layer ``i`` (1 for the lowest block, ``L``
for the top one) train at ``learning_rate * decay ** (L - i)``; the embeddings are depth 0
(``decay ** L``, the lowest); whatever belongs to no numbered layer and is not an embedding
(the pooler, MPNet's relative attention bias shared by every layer) trains at the top
layer's rate. The head keeps ``head_learning_rate``. The same rule holds for LoRA weights
(a LoRA matrix in layer ``i`` is at depth ``i``) and for a full fine-tune.

Depths are read from parameter names, which is how BERT, MiniLM and MPNet (and PEFT's
wrappers of them) name their blocks: ``...encoder.layer.<n>...`` (``layers.<n>`` too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

LAYER_INDEX = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_depth(name: str, num_layers: int) -> int:
    """0 for the embeddings, ``n + 1`` for a parameter of block ``n`` (0-based), else the
    top (``num_layers``)."""
    if "embeddings" in name.split("."):
        return 0
    found = LAYER_INDEX.search(name)
    if found is not None:
        return min(int(found.group(1)) + 1, num_layers)
    return num_layers


def layer_rate(learning_rate: float, decay: float, depth: int, num_layers: int) -> float:
    """The learning rate of depth ``depth``: ``learning_rate * decay ** (L - depth)``."""
    return learning_rate * decay ** (num_layers - depth)


def encoder_groups(
    named: Iterable[tuple[str, nn.Parameter]],
    num_layers: int,
    learning_rate: float,
    decay: float,
) -> list[dict]:
    """AdamW parameter groups of the encoder's trainable ``named`` parameters: one group
    at ``learning_rate`` when ``decay`` is 1 (no decay), else one group per depth present,
    lowest first, each at its :func:`layer_rate`."""
    named = [(n, p) for n, p in named if p.requires_grad]
    if decay == 1.0:
        return [{"params": [p for _, p in named], "lr": learning_rate}]
    by_depth: dict[int, list[nn.Parameter]] = {}
    for name, param in named:
        by_depth.setdefault(layer_depth(name, num_layers), []).append(param)
    return [
        {"params": by_depth[d], "lr": layer_rate(learning_rate, decay, d, num_layers)}
        for d in sorted(by_depth)
    ]


def num_layers_of(encoder: nn.Module) -> int:
    """The encoder's transformer layers (its config's ``num_hidden_layers``)."""
    return int(encoder.config.num_hidden_layers)
