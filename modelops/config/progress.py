"""How long-running steps report progress: a callable taking one line of text.

Lifecycle steps take ``emit`` (default: the module logger's ``info``); Dagster assets pass
``context.log.info`` so the lines show in the run view.
"""

from __future__ import annotations

from collections.abc import Callable

Emit = Callable[[str], None]
