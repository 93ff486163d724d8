"""A workspace the HTTP tests share: recipe ``demo`` (shadow on) with a champion and a
candidate that answers differently, recipe ``other`` with its own champion; all three
adapters on the tiny base. Tests that move aliases of ``demo`` do it last (see
test_shared_base); the API tests serve ``other`` only."""

from __future__ import annotations

import pytest

from modelops.config.recipe import load_recipe
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.train import train_adapter
from modelops_tests.fixtures.serving import DIFFERENT, MONITORING, trained_workspace
from modelops_tests.fixtures.workspace import write_recipe


@pytest.fixture(scope="session")
def shared_workspace(tiny_catalog, tmp_path_factory):
    """``(settings, demo champion, demo candidate, other champion)``."""
    root = tmp_path_factory.mktemp("shared")
    settings, champion, candidate = trained_workspace(
        root, tiny_catalog, second=DIFFERENT, recipe={"serving": {"shadow": True}}
    )
    write_recipe(root, {"name": "other", "training": {"seed": 9, "epochs": 1},
                        "monitoring": MONITORING})  # fmt: skip
    platform = Platform.from_settings(settings)
    loaded = load_recipe(settings.recipes_dir / "other.yaml")
    dataset = build_dataset(platform, loaded, emit=lambda _m: None)
    other = train_adapter(platform, loaded, dataset, emit=lambda _m: None).id
    platform.registry.promote(other, who="t", why="first", evidence={}, force=True)
    platform.registry.close()
    return settings, champion, candidate, other
