"""A throw-away platform workspace for tests: recipes, taxonomy, data, catalog, stores."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from modelops.core.demo_data import DemoKnobs, taxonomy_document, write_demo_dataset
from modelops.settings import Settings

BASE_RECIPE = {
    "name": "demo",
    "description": "tiny test recipe",
    "task": "text_classification",
    "data": {"sources": [{"path": "../data/requests.csv"}]},
    "taxonomy": "../taxonomies/demo/v1.yaml",
    "base_model": "tiny@stable",
    "adapter": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
    "head": {"pooling": "mean", "init": "probe"},
    "training": {
        "epochs": 2,
        "learning_rate": 0.003,
        "batch_size": 32,
        "max_length": 32,
        "seed": 5,
    },
    "gates": {
        "min_macro_f1": 0.0,
        "max_macro_f1_drop": 0.02,
        "max_label_f1_drop": 0.5,
        "beat_baseline": False,
    },
}


def merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def write_recipe(root: Path, overrides: dict | None = None) -> Path:
    doc = merge(BASE_RECIPE, overrides or {})
    path = root / "recipes" / f"{doc['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def make_workspace(
    root: Path,
    catalog: Path,
    *,
    rows: int = 480,
    recipe: dict | None = None,
    database_url: str | None = None,
    artifacts_uri: str | None = None,
    s3_endpoint_url: str | None = None,
) -> Settings:
    """Files a platform engineer would have, and Settings pointing at them."""
    write_demo_dataset(root / "data" / "requests.csv", DemoKnobs(n=rows, seed=3))
    tax = root / "taxonomies" / "demo" / "v1.yaml"
    tax.parent.mkdir(parents=True, exist_ok=True)
    tax.write_text(yaml.safe_dump(taxonomy_document("demo", "v1")), encoding="utf-8")
    write_recipe(root, recipe)
    home = root / ".modelops"
    return Settings(
        home=home,
        database_url=database_url or f"sqlite:///{home / 'modelops.db'}",
        artifacts_uri=artifacts_uri or str(home / "artifacts"),
        s3_endpoint_url=s3_endpoint_url,
        recipes_dir=root / "recipes",
        catalog_path=catalog,
        cache_dir=home / "cache",
        torch_threads=1,
        user="tester",
    )
