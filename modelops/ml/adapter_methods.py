"""The two ways an encoder adapts (``adapter.method``) and how each is stored and loaded.

* ``lora``: a PEFT LoRA adapter on the frozen base (``adapter_config.json`` and
  ``adapter_model.safetensors``); many adapters share one copy of the base in memory.
* ``full``: every encoder weight trains. The artifact cannot be a PEFT adapter: it is the
  whole encoder's ``state_dict`` in ``encoder.safetensors`` (fp32, as large as the base's
  weights: about 91 MB for MiniLM, 438 MB for all-mpnet-base-v2). The base still supplies
  the configuration and the tokenizer, so a full fine-tune is loaded onto (and checked
  against) its base like a LoRA adapter, and it needs a copy of the encoder of its own in
  memory wherever it is served.

A directory is a full fine-tune when it holds ``encoder.safetensors``
(:func:`is_full_adapter`); its weight files (what the weights sha256 covers) are that file
and the head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from modelops.ml.architectures import lora_target_modules

PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
FULL_WEIGHTS_FILE = "encoder.safetensors"


def is_full_adapter(directory: Path) -> bool:
    """Whether the saved adapter in ``directory`` is a full fine-tune."""
    return (Path(directory) / FULL_WEIGHTS_FILE).is_file()


def encoder_weights_file(directory: Path) -> str:
    """The encoder's weight file of a saved adapter: the whole encoder's or PEFT's."""
    return FULL_WEIGHTS_FILE if is_full_adapter(directory) else PEFT_WEIGHTS_FILE


def is_peft(encoder: Any) -> bool:
    """Whether ``encoder`` carries PEFT adapters (else it is a plain, fully trained one)."""
    return hasattr(encoder, "peft_config")


def with_adapter(model: Any, adapter: Any) -> Any:
    """``model`` (a ``PooledClassifier`` on a fresh base) made trainable as ``adapter``
    (the recipe's ``AdapterSettings``) says: LoRA on the frozen encoder, or every encoder
    weight trainable."""
    if adapter.method == "full":
        model.encoder.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=lora_target_modules(model.encoder, adapter.target_modules),
        bias="none",
    )
    model.encoder = get_peft_model(model.encoder, config)
    return model


def save_encoder(encoder: nn.Module, directory: Path) -> None:
    """Write the encoder's adapted weights: the PEFT adapter, or the whole encoder."""
    if is_peft(encoder):
        encoder.save_pretrained(str(directory))
        return
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(Path(directory) / FULL_WEIGHTS_FILE), metadata={"format": "pt"})


def load_encoder(encoder: nn.Module, directory: Path, *, trainable: bool) -> nn.Module:
    """The base ``encoder`` with the saved adapter of ``directory`` on it: wrapped by PEFT,
    or (a full fine-tune) its own weights loaded in place, every one of them expected."""
    directory = Path(directory)
    if not is_full_adapter(directory):
        from peft import PeftModel

        return PeftModel.from_pretrained(encoder, str(directory), is_trainable=trainable)
    from safetensors.torch import load_file

    encoder.load_state_dict(load_file(str(directory / FULL_WEIGHTS_FILE)), strict=True)
    encoder.requires_grad_(trainable)
    return encoder


def encoder_adapted(encoder: nn.Module, kept_epoch: int, pretrained: bool) -> bool:
    """Whether the kept encoder differs from its base: LoRA weights not all zero, or for a
    full fine-tune an epoch or a contrastive stage (``pretrained``) was kept."""
    if is_peft(encoder):
        return any(
            bool(p.detach().abs().max() > 0) for n, p in encoder.named_parameters() if "lora_B" in n
        )
    return kept_epoch > 0 or pretrained
