"""Why a served recipe has no adapter yet: in fixed words for ``/readyz``, in full for
the log.

``/readyz`` answers without the token, so what it says names no host, user, path or
URI: one of a few fixed reasons per recipe. What went wrong (an exception text that may
carry a database URL, an S3 URI, a path) is kept beside it and written to the log,
at WARNING, under the id of the ``/readyz`` request that found the recipe waiting.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

NOT_LOADED = "not loaded yet"
NO_ADAPTER = "no serving adapter yet (train and promote one)"
REGISTRY_DOWN = "the registry database cannot be reached (details in the server log)"
LOAD_FAILED = "its serving adapter cannot be loaded (details in the server log)"


class RegistryDown(Exception):
    """The registry did not answer which adapter serves a recipe."""


class Waiting:
    """Served recipes without an adapter: recipe -> fixed reason (:attr:`reasons`), and
    what went wrong in full (:attr:`details`, for the log only)."""

    def __init__(self, recipes):
        self.reasons: dict[str, str] = {r: NOT_LOADED for r in recipes}
        self.details: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def __contains__(self, recipe: str) -> bool:
        return recipe in self.reasons

    def no_adapter(self, recipe: str) -> None:
        """The registry names no serving adapter for ``recipe``."""
        self.reasons[recipe] = NO_ADAPTER
        self.details.pop(recipe, None)

    def failed(self, recipe: str, exc: BaseException) -> None:
        """Looking up or loading ``recipe``'s adapter raised ``exc`` (while it has none)."""
        self.reasons[recipe] = REGISTRY_DOWN if isinstance(exc, RegistryDown) else LOAD_FAILED
        self.details[recipe] = f"{type(exc).__name__}: {exc}"

    def loaded(self, recipe: str) -> None:
        self.reasons.pop(recipe, None)
        self.details.pop(recipe, None)

    def log(self) -> None:
        """Every waiting recipe's full story, at WARNING (the request id is on the record)."""
        for recipe, reason in sorted(self.reasons.items()):
            logger.warning(
                "not ready: recipe %s waits: %s", recipe, self.details.get(recipe, reason)
            )
