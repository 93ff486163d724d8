"""modelops: reproducible LoRA adaptation, evaluation gates and a registry, on Dagster."""

__version__ = "0.1.0"
