"""The ``taxonomy_changes:`` section of a recipe: what a new taxonomy version gets first.

When the previous version's champion, composed with the mapping, can answer the new
version (``modelops.domain.mapped_head``), it becomes a *mapped candidate*:

- ``mapped_first`` (default): serve the mapped candidate at once when it passes the gates,
  train an adapter after it and switch only if the trained one is better on ``metric``
  (ties go to the cheaper, the mapped one);
- ``mapped_only``: no training for versions the mapping fully covers;
- ``train``: no mapped candidate; train and gate as for any version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelops.config.yaml_files import StrictSection

POLICIES = ("mapped_first", "mapped_only", "train")


class TaxonomyChangeSettings(StrictSection):
    policy: Literal["mapped_first", "mapped_only", "train"] = Field(
        default="mapped_first",
        description="mapped_first, mapped_only or train (see docs/recipes.md)",
    )
    metric: Literal["macro_f1", "accuracy"] = Field(
        default="macro_f1",
        description="the test metric that decides between the mapped and the trained candidate",
    )
