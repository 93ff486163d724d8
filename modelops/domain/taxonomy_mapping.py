"""Taxonomy version files and the label mapping each declares from its previous version.

Label sets change: products launch, intents merge and split, names change. A later
version of a taxonomy, ``taxonomies/<name>/<version>.yaml``, lists its full label set and
the mapping FROM its previous version::

    name: demo_intents
    version: v2
    previous: v1              # a version of the same taxonomy, not this one
    labels:                   # every label of v2, as in v1
      - name: card_missing
      ...
    mapping:
      rename: {card_lost: card_missing}                          # old: new
      merge: {billing_problem: [billing_double_charge, payment_failed]}   # new: [old, ...]
      split:                                                     # old: {into, rules}
        account_access:
          into: [password_reset, account_locked]
          rules:                       # the first matching rule wins
            - {label: password_reset, keywords: [password, reset]}
            - {label: account_locked, patterns: ["\\\\block(ed)?\\\\b"]}
      retire: [invoice_copy]           # old labels with no successor
      add: [crypto_transfer]           # new labels with no predecessor

A first version has neither ``previous`` nor ``mapping``; a later one may omit ``mapping``
when every label is kept.

Semantics, per old label (exactly one of):

- *keep*: not named in the mapping and present under the same name in the new labels;
- *rename* ``old: new``: every example of ``old`` becomes ``new``;
- *merge* ``new: [old, ...]``: every example of each old label becomes ``new``. The new label
  may carry the name of one of its sources, which is then listed among them
  (``merge: {card_lost: [card_lost, card_stolen]}``);
- *split* ``old: {into, rules}``: each example goes to the label of the first rule that
  matches its text, or to review (``REVIEW``) with the ``into`` labels as candidates when
  none does. Matching is on ``normalize_text(text)`` (NFKC, whitespace collapsed, case
  folded): a keyword matches as a whole word or phrase (also normalized); a pattern is a
  Python regex searched for anywhere (write it in lower case). A rule has at least one
  keyword or pattern. ``into`` labels may also be successors of other old labels;
- *retire*: the label has no successor; its examples leave the data set (``RETIRED``).

And per new label: it is the successor of at least one old label, or it is listed in
``add``. A new label that is neither is an error, not an implicit add: a typo in a rename
target then fails loudly instead of silently creating an empty label. A new label is the
successor of at most one keep/rename/merge/add (several old labels onto one new label is a
merge, and must be written as one); only split targets may share a label with those.

Every violation is an :class:`~modelops.config.errors.InputError` naming the file and
``mapping.<op>.<label>`` (or ``mapping`` for an old label nothing accounts for, and
``mapping.add`` for a new label nothing produces); :func:`load_chain` and
:func:`validate_taxonomy_dir` also reject missing files, broken chains and cycles in the
``previous`` links.

:func:`step_mapping` validates one file against its previous version and returns the step as
a ``modelops.domain.label_mapping.LabelMapping`` (how a mapping applies to labels and rows is
described there); :func:`load_chain` composes the steps between two versions and
:func:`validate_taxonomy_dir` checks every version of every taxonomy in a directory.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError
from modelops.config.taxonomy import MappingSpec, Taxonomy, load_taxonomy, version_number
from modelops.domain.label_mapping import LabelMapping, Rule, Split, Step

__all__ = [
    "load_chain",
    "load_version",
    "step_mapping",
    "validate_taxonomy_dir",
]


# --------------------------------------------------------------------------- validation


def step_mapping(old: Taxonomy, new: Taxonomy, path: str | Path | None = None) -> LabelMapping:
    """Validate ``new.mapping`` against ``old`` and return the one-step mapping.

    InputError names ``path`` (the file of ``new``) and ``mapping.<op>.<label>``.
    """
    source = str(path) if path is not None else new.ref

    def fail(where: str, message: str) -> None:
        raise InputError(source, where, message)

    if new.name != old.name or new.previous != old.version:
        fail("previous", f"{new.ref} does not follow {old.ref}")
    spec = new.mapping or MappingSpec()
    old_names, new_names = old.label_names, set(new.label_names)
    used: dict[str, str] = {}  # old label -> where the mapping uses it
    producers: dict[str, list[str]] = defaultdict(list)  # new label -> keep/rename/merge/add
    split_targets: dict[str, str] = {}

    def use(label: str, where: str) -> None:
        if label not in old_names:
            fail(where, f"{label!r} is not a label of {old.ref}")
        if label in used:
            fail(where, f"{label!r} is already mapped by {used[label]}")
        used[label] = where

    def target(label: str, where: str) -> None:
        if label not in new_names:
            fail(where, f"{label!r} is not among the labels of {new.ref}")

    direct: dict[str, str] = {}
    for old_label, new_label in spec.rename.items():
        where = f"mapping.rename.{old_label}"
        use(old_label, where)
        target(new_label, where)
        if new_label == old_label:
            fail(where, "renamed to itself: leave it out of the mapping to keep it")
        direct[old_label] = new_label
        producers[new_label].append(where)
    for new_label, sources in spec.merge.items():
        where = f"mapping.merge.{new_label}"
        target(new_label, where)
        if not sources:
            fail(where, "lists no old labels")
        for old_label in sources:
            use(old_label, where)
            direct[old_label] = new_label
        producers[new_label].append(where)
    splits: dict[str, Split] = {}
    for old_label, split in spec.split.items():
        where = f"mapping.split.{old_label}"
        use(old_label, where)
        for new_label in split.into:
            target(new_label, where)
            split_targets.setdefault(new_label, where)
        if len(set(split.into)) != len(split.into):
            fail(where, "lists a label twice in into")
        splits[old_label] = Split(
            split.into,
            tuple(
                _rule(rule, split.into, f"{where}.rules[{i}]", fail)
                for i, rule in enumerate(split.rules)
            ),
        )
    for old_label in spec.retire:
        use(old_label, f"mapping.retire.{old_label}")
    for new_label in spec.add:
        where = f"mapping.add.{new_label}"
        target(new_label, where)
        if new_label in split_targets:
            fail(
                where,
                f"{new_label!r} is also a target of {split_targets[new_label]}: "
                "an added label has no predecessor",
            )
        producers[new_label].append(where)
    for old_label in old_names:
        if old_label in used:
            continue
        if old_label not in new_names:
            fail(
                "mapping",
                f"old label {old_label!r} of {old.ref} is not accounted for: keep "
                "it in labels, or rename, merge, split or retire it",
            )
        direct[old_label] = old_label
        producers[old_label].append(f"keep (label {old_label!r} of {old.ref})")
    for new_label in new.label_names:
        found = producers.get(new_label, [])
        if len(found) > 1:
            first, at = sorted(found, key=lambda w: w.startswith("mapping."))[:2]
            if at.startswith("mapping.add."):
                fail(
                    at,
                    f"{new_label!r} is the successor of {first}: an added label has no predecessor",
                )
            fail(
                at,
                f"{new_label!r} is also the successor of {first}; several old labels "
                f"onto one new label are a merge: list them under mapping.merge.{new_label}",
            )
        if not found and new_label not in split_targets:
            fail(
                "mapping.add",
                f"new label {new_label!r} of {new.ref} is neither the successor "
                "of an old label nor listed in mapping.add",
            )
    step = Step(
        source=old.ref,
        target=new.ref,
        source_labels=tuple(old_names),
        target_labels=tuple(new.label_names),
        direct={k: direct[k] for k in old_names if k in direct},
        splits={k: splits[k] for k in old_names if k in splits},
        retired=frozenset(spec.retire),
        path=source,
    )
    return LabelMapping(old.ref, new.ref, old_names, new.label_names, [step])


def _rule(rule: Any, into: Sequence[str], where: str, fail: Any) -> Rule:
    if rule.label not in into:
        fail(where, f"label {rule.label!r} is not one of into ({', '.join(into)})")
    if not rule.keywords and not rule.patterns:
        fail(where, "a rule needs keywords or patterns")
    try:
        return Rule.build(rule.label, rule.keywords, rule.patterns)
    except re.error as exc:
        bad = next(p for p in rule.patterns if _bad_regex(p))
        fail(where, f"invalid regex {bad!r}: {exc}")
    except ValueError as exc:
        fail(where, str(exc))
    raise AssertionError("unreachable")  # pragma: no cover


def _bad_regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return True
    return False


# --------------------------------------------------------------------------- files


def version_path(directory: str | Path, name: str, version: str) -> Path:
    return Path(directory) / name / f"{version}.yaml"


def load_version(directory: str | Path, name: str, version: str) -> Taxonomy:
    """Load ``<directory>/<name>/<version>.yaml`` and check what one file can show."""
    path = version_path(directory, name, version)
    return _check_file(path, load_taxonomy(path), name)


def _check_file(path: Path, taxonomy: Taxonomy, name: str) -> Taxonomy:
    if taxonomy.name != name:
        raise InputError(path, "name", f"{taxonomy.name!r} does not match the directory {name!r}")
    if taxonomy.previous == taxonomy.version:
        raise InputError(path, "previous", f"{taxonomy.previous!r} is this file's own version")
    if taxonomy.mapping is not None and taxonomy.previous is None:
        raise InputError(path, "mapping", "a mapping needs `previous` (the version it maps from)")
    return taxonomy


def load_chain(
    directory: str | Path, name: str, from_version: str, to_version: str
) -> LabelMapping:
    """Follow ``previous`` links from ``to_version`` back to ``from_version``; compose.

    InputError names the file and field on a missing file, a chain that ends before
    ``from_version``, a cycle, or any invalid step.
    """
    current = load_version(directory, name, to_version)
    if from_version == to_version:
        return LabelMapping.identity(current)
    seen = [to_version]
    steps: list[LabelMapping] = []
    while current.version != from_version:
        path = version_path(directory, name, current.version)
        previous = current.previous
        if previous is None:
            raise InputError(
                path,
                "previous",
                f"the chain back from {to_version} ends at {current.version} "
                f"without reaching {from_version}",
            )
        if previous in seen:
            raise InputError(path, "previous", "cycle: " + " -> ".join([*seen, previous]))
        if not version_path(directory, name, previous).is_file():
            raise InputError(
                path,
                "previous",
                f"{previous!r}: {version_path(directory, name, previous)} not found",
            )
        seen.append(previous)
        older = load_version(directory, name, previous)
        steps.append(step_mapping(older, current, path))
        current = older
    mapping = steps.pop()
    while steps:
        mapping = mapping.then(steps.pop())
    return mapping


def validate_taxonomy_dir(directory: str | Path) -> list[Taxonomy]:
    """Load and check every version of every taxonomy under ``directory``.

    Every mapping is validated against its previous version and the ``previous`` links
    must not form a cycle. Returns the taxonomies ordered by name and version number.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(root, None, "not a directory")
    out: list[Taxonomy] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.yaml"), key=lambda p: (version_number(p.stem), p.name))
        versions: dict[str, Taxonomy] = {}
        for path in files:
            versions[path.stem] = _check_file(path, load_taxonomy(path), folder.name)
        for version, taxonomy in versions.items():
            path = version_path(root, folder.name, version)
            _check_acyclic(path, version, versions)
            if taxonomy.previous is None:
                continue
            if taxonomy.previous not in versions:
                raise InputError(
                    path,
                    "previous",
                    f"{taxonomy.previous!r}: "
                    f"{version_path(root, folder.name, taxonomy.previous)} not found",
                )
            step_mapping(versions[taxonomy.previous], taxonomy, path)
        out.extend(versions.values())
    return out


def _check_acyclic(path: Path, start: str, versions: dict[str, Taxonomy]) -> None:
    seen = [start]
    current = versions[start].previous
    while current is not None and current in versions:
        if current in seen:
            raise InputError(path, "previous", "cycle: " + " -> ".join([*seen, current]))
        seen.append(current)
        current = versions[current].previous
