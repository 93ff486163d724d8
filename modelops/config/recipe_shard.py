"""Which recipes a code location holds: ``MODELOPS_RECIPE_SHARD=<index>/<count>``.

Dagster builds every asset of a code location when the location loads, and every run
loads its location again, so a location's load time follows the number of recipes it
holds (about 10 ms a recipe, ``benchmarks/RESULTS.md``). Past a few dozen recipes a
deployment splits the recipes folder between ``count`` code locations, all reading the
same folder: each holds the recipes whose file name hashes to its ``index``. The hash is
of the name only (a recipe stays in its shard as files come and go; changing ``count``
moves recipes between locations, which Dagster follows by asset key), and the file name
is the recipe's name (``load_recipe`` checks it), so a location never parses another
location's files. ``docs/deploy.md`` says how to run the locations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from modelops.config.errors import ModelopsError

VARIABLE = "MODELOPS_RECIPE_SHARD"


@dataclass(frozen=True)
class RecipeShard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> RecipeShard | None:
        """``"2/8"`` -> shard 2 of 8; empty or None -> None (one location holds all)."""
        if not text or not text.strip():
            return None
        index, sep, count = text.strip().partition("/")
        try:
            shard = cls(int(index), int(count)) if sep else None
        except ValueError:
            shard = None
        if shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ModelopsError(
                f"{VARIABLE}={text!r}: expected <index>/<count> with 0 <= index < count, "
                "for example 0/4"
            )
        return shard

    def holds(self, recipe_name: str) -> bool:
        return shard_of(recipe_name, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(recipe_name: str, count: int) -> int:
    """The shard (0 .. count-1) of the recipe named ``recipe_name``: the same in every
    process and Python version (not ``hash()``, which is salted per process)."""
    digest = hashlib.sha256(recipe_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count
