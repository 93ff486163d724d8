"""What differs between encoder architectures, kept in one place so a recipe names its LoRA
targets once (``target_modules: [query, value]``) and works on every base.

BERT-family encoders (BERT, MiniLM) name their attention projections ``query``, ``key``,
``value``; MPNet names them ``q``, ``k``, ``v`` (and the attention output ``o``). A recipe's
``target_modules`` are *logical* names: :func:`lora_target_modules` maps them to the module
names of the base being adapted, so moving a recipe from ``minilm@stable`` to
``mpnet@stable`` changes nothing but its ``base_model`` line. Names without a mapping are
passed to PEFT as written (a suffix of module names, e.g. ``dense``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# model_type -> {logical name: module name suffix}
MODULE_NAMES: dict[str, dict[str, str]] = {
    "mpnet": {"query": "q", "key": "k", "value": "v", "attention_output": "o"},
    "bert": {"attention_output": "attention.output.dense"},
}


def lora_target_modules(encoder: Any, names: Sequence[str]) -> list[str]:
    """The module names of ``encoder`` (a transformers model) for the logical ``names``."""
    model_type = getattr(getattr(encoder, "config", None), "model_type", None)
    mapping = MODULE_NAMES.get(model_type or "", {})
    return [mapping.get(name, name) for name in names]
