"""Errors that reach users. Each names where the problem is: file, field or row."""

from __future__ import annotations


class ModelopsError(Exception):
    """Base class for every error the platform raises on purpose."""


class InputError(ModelopsError):
    """Bad input at an edge: a recipe, taxonomy, data file, CLI argument.

    ``source`` is the file (or URI) and ``where`` the field path or row, so the
    message reads ``recipes/demo.yaml: training.epochs: must be > 0``.
    """

    def __init__(self, source: str | None, where: str | None, message: str):
        self.source = str(source) if source is not None else None
        self.where = where
        self.message = message
        parts = [p for p in (self.source, where) if p]
        super().__init__(": ".join([*parts, message]))


class NotFoundError(ModelopsError):
    """A registry entry, alias, artifact or catalog entry that does not exist."""


class IntegrityError(ModelopsError):
    """Stored content whose sha256 does not match what was recorded."""
