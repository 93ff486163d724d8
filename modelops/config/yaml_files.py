"""Reading YAML files with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from modelops.config.errors import InputError

M = TypeVar("M", bound=pydantic.BaseModel)
# libyaml's parser when PyYAML was built with it (the wheels are): the same safe constructor,
# about 20 times faster than the pure-Python one, which matters when a code location reads
# hundreds of recipes and their taxonomies at every load.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Parse ``path`` as a YAML mapping; InputError naming the file (and line) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"byte {exc.start}", "not valid UTF-8") from None
    try:
        document = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(path, where, f"invalid YAML: {problem}") from None
    if not isinstance(document, dict):
        raise InputError(path, None, "expected a YAML mapping at the top level")
    return document


def field_path(loc: tuple[Any, ...]) -> str:
    """``("training", "epochs")`` -> ``training.epochs``; list indexes as ``[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validate_model(model: type[M], document: dict[str, Any], path: Path) -> M:
    """Validate ``document`` as ``model``; the first error becomes an InputError.

    Every error is listed in the message, each as ``field: problem``.
    """
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = field_path(first["loc"])
        message = first["msg"]
        if len(errors) > 1:
            others = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in errors[1:4])
            message += f" (also: {others})"
        raise InputError(path, where, message) from None


class StrictSection(pydantic.BaseModel):
    """A section of a YAML file: unknown fields are errors, values are immutable."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
