"""The recipes of a folder, read again only where a file changed: what the sensors that
follow the recipes on disk (``base_models``, ``taxonomy_versions``) read on every tick,
so that a tick over 1,000 unchanged recipes is 1,000 ``stat`` calls, not 1,000 YAML
parses and validations."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from modelops.config.distillation import check_teachers
from modelops.config.errors import InputError
from modelops.config.recipe import LoadedRecipe, load_recipe
from modelops.config.recipe_shard import RecipeShard
from modelops.config.taxonomy import Taxonomy


def file_stamp(path: str | Path) -> tuple[int, int, int] | None:
    """What changes when a file is written or replaced: inode, size, mtime in ns; None
    when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class RecipeFolder:
    """``load()`` gives what :func:`~modelops.config.recipe.load_recipes` gives for the
    folder now (sorted by name; the first bad recipe raises, naming its file and field),
    re-reading a recipe only when its file or its taxonomy file changed.

    :meth:`shared` gives one per folder and process: the definitions load
    (``defs/recipes.py``) reads through it, so the sensors evaluated by the same code
    server start from what the load read."""

    _shared: dict[tuple[Path, RecipeShard | None], RecipeFolder] = {}
    _shared_lock = threading.Lock()

    def __init__(self, directory: str | Path, shard: RecipeShard | None = None):
        self.directory = Path(directory)
        self.shard = shard
        self._cache: dict[str, tuple[tuple, LoadedRecipe]] = {}
        self._lock = threading.Lock()  # sensors may tick in threads

    @classmethod
    def shared(cls, directory: str | Path, shard: RecipeShard | None = None) -> RecipeFolder:
        """``shard``: only the recipes of that shard (their other files are never read)."""
        key = (Path(directory).absolute(), shard)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(key[0], shard)
            return cls._shared[key]

    def load(self) -> list[LoadedRecipe]:
        with self._lock:
            return self._load()

    def _load(self) -> list[LoadedRecipe]:
        if not self.directory.is_dir():
            raise InputError(self.directory, None, "recipes directory not found")
        taxonomies: dict[Path, Taxonomy] = {}
        stamps: dict[Path, tuple | None] = {}  # the taxonomy files' stamps, once a tick

        def stamp_of(path: Path):
            if path not in stamps:
                stamps[path] = file_stamp(path)
            return stamps[path]

        with os.scandir(self.directory.absolute()) as entries:
            files = sorted(
                (e.name, e.path)
                for e in entries
                if e.name.endswith(".yaml") and e.is_file() and self._holds(e.name)
            )
        fresh: dict[str, tuple[tuple, LoadedRecipe]] = {}
        for _, path in files:
            stamp = file_stamp(path)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == (stamp, stamp_of(cached[1].taxonomy_path)):
                fresh[path] = cached
                continue
            loaded = load_recipe(path, taxonomies=taxonomies)
            # the stamp from before the read: a change during it is read next time
            fresh[path] = ((stamp, stamp_of(loaded.taxonomy_path)), loaded)
        recipes = [loaded for _, loaded in fresh.values()]
        # before the cache moves: a bad folder is read again. A teacher in another shard is
        # checked by the location that holds it and by every command (they read all).
        check_teachers(recipes, elsewhere=self._elsewhere)
        self._cache = fresh
        return recipes

    def _holds(self, file_name: str) -> bool:
        # the file name is the recipe's name (load_recipe refuses any other)
        return self.shard is None or self.shard.holds(file_name[: -len(".yaml")])

    def _elsewhere(self, name: str) -> bool:
        """Whether recipe ``name`` is another shard's (its file is there, unread here)."""
        return (
            self.shard is not None
            and not self.shard.holds(name)
            and (self.directory / f"{name}.yaml").is_file()
        )
