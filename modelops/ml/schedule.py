"""The order of training batches and the optimizer with its learning-rate schedule."""

from __future__ import annotations

import numpy as np
import torch

from modelops.config.recipe import TrainingSettings
from modelops.ml.layer_decay import encoder_groups, num_layers_of


def grouped_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffle, sort by length within chunks of 50 batches, shuffle the batches."""
    perm = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(perm), chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(np.asarray(lengths)[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def optimizer_and_schedule(model: torch.nn.Module, settings: TrainingSettings, total_steps: int):
    """AdamW over the trainable parameters (the head at ``head_learning_rate``, the encoder's
    layers at the rates of ``layer_decay``, ``modelops.ml.layer_decay``), warmup
    over ``warmup_ratio`` of the steps, then a linear or cosine decay to zero."""
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    head_params = list(model.head.parameters())
    head_ids = {id(p) for p in head_params}
    encoder_params = [(n, p) for n, p in model.named_parameters() if id(p) not in head_ids]
    groups = encoder_groups(
        encoder_params,
        num_layers_of(model.encoder),
        settings.learning_rate,
        settings.layer_decay,
    )
    optimizer = torch.optim.AdamW(
        [
            *groups,
            {"params": head_params, "lr": settings.head_learning_rate or settings.learning_rate},
        ],
        weight_decay=settings.weight_decay,
    )
    schedule = (
        get_cosine_schedule_with_warmup
        if settings.schedule == "cosine"
        else get_linear_schedule_with_warmup
    )
    return optimizer, schedule(optimizer, int(total_steps * settings.warmup_ratio), total_steps)
