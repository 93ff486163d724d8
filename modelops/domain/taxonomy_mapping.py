"""Taxonomy versions and the mapping of labels from one version to the next.

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
  matches its text, or to review (:data:`REVIEW`) with the ``into`` labels as candidates when
  none does. Matching is on ``normalize_text(text)`` (NFKC, whitespace collapsed, case
  folded): a keyword matches as a whole word or phrase (also normalized); a pattern is a
  Python regex searched for anywhere (write it in lower case). A rule has at least one
  keyword or pattern. ``into`` labels may also be successors of other old labels;
- *retire*: the label has no successor; its examples leave the data set (:data:`RETIRED`).

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

:class:`LabelMapping` is one step (old version -> new version) or a composition of steps.
It maps each ``(label, text)`` to a *set of possible outcomes* (labels of the target version
or ``RETIRED``): one outcome is the answer, several mean review. Composition applies each
step to every possible outcome, so a split whose parts are merged again later resolves
without review, and composition is associative by construction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_json
from modelops.config.taxonomy import MappingSpec, Taxonomy, load_taxonomy
from modelops.domain.text import normalize_text

REVIEW = "__review__"
RETIRED = "__retired__"

__all__ = [
    "REVIEW",
    "RETIRED",
    "Change",
    "LabelMapping",
    "MappingError",
    "Step",
    "load_chain",
    "load_version",
    "step_mapping",
    "validate_taxonomy_dir",
]


class MappingError(InputError):
    """A mapping that cannot do what was asked: invert a merge, compose mismatched versions,
    map a label the source version does not have."""


@dataclass(frozen=True)
class Change:
    """One line of a diff. ``kind`` is keep, rename, merge, split, add or retire."""

    kind: str
    old_labels: tuple[str, ...]
    new_labels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "old_labels": list(self.old_labels),
            "new_labels": list(self.new_labels),
        }


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Rule:
    """A split rule, compiled: keywords as whole-word patterns on normalized text."""

    label: str
    keywords: tuple[str, ...]
    patterns: tuple[str, ...]
    compiled: tuple[re.Pattern[str], ...]

    @classmethod
    def build(cls, label: str, keywords: Sequence[str], patterns: Sequence[str]) -> Rule:
        """Compile a rule; ``re.error`` for a bad pattern, ValueError for an empty keyword."""
        words = tuple(normalize_text(k) for k in keywords)
        if any(not w for w in words):
            raise ValueError("a keyword is empty")
        compiled = [re.compile(rf"(?<!\w){re.escape(w)}(?!\w)") for w in words]
        compiled += [re.compile(p) for p in patterns]
        return cls(label, words, tuple(patterns), tuple(compiled))

    def matches(self, normalized: str) -> bool:
        return any(p.search(normalized) for p in self.compiled)


@dataclass(frozen=True)
class Split:
    into: tuple[str, ...]
    rules: tuple[Rule, ...]

    def decide(self, text: str) -> str | None:
        """The label of the first matching rule, or None (review)."""
        normalized = normalize_text(text)
        return next((r.label for r in self.rules if r.matches(normalized)), None)


@dataclass(frozen=True)
class Step:
    """One validated step: what becomes of each label of ``source`` in ``target``."""

    source: str
    target: str
    source_labels: tuple[str, ...]
    target_labels: tuple[str, ...]
    direct: dict[str, str]  # keep, rename, merge: old -> new
    splits: dict[str, Split]
    retired: frozenset[str]
    path: str | None = None  # the file of the target version

    def outcomes(self, label: str, text: str | None) -> frozenset[str]:
        """Possible outcomes of one old label; ``text=None`` gives every possible one."""
        if label in self.direct:
            return frozenset((self.direct[label],))
        if label in self.splits:
            split = self.splits[label]
            decided = split.decide(text) if text is not None else None
            return frozenset((decided,)) if decided else frozenset(split.into)
        return frozenset((RETIRED,))

    @property
    def added(self) -> tuple[str, ...]:
        reached = set(self.direct.values())
        for split in self.splits.values():
            reached.update(split.into)
        return tuple(n for n in self.target_labels if n not in reached)

    def canonical(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "source_labels": sorted(self.source_labels),
            "target_labels": sorted(self.target_labels),
            "map": dict(sorted(self.direct.items())),
            "split": {
                old: {
                    "into": sorted(s.into),
                    "rules": [
                        {
                            "label": r.label,
                            "keywords": list(r.keywords),
                            "patterns": list(r.patterns),
                        }
                        for r in s.rules
                    ],
                }
                for old, s in sorted(self.splits.items())
            },
            "retire": sorted(self.retired),
        }

    def inverse(self) -> Step:
        """The step back; MappingError on the first split or merge (retire and add swap)."""
        where = self.path or f"{self.source} -> {self.target}"
        preimage: dict[str, str] = {}
        for old in self.source_labels:
            if old in self.splits:
                raise MappingError(
                    where,
                    f"mapping.split.{old}",
                    f"not invertible: {old!r} is split into {', '.join(self.splits[old].into)}",
                )
            new = self.direct.get(old)
            if new is None:
                continue
            if new in preimage:
                raise MappingError(
                    where,
                    f"mapping.merge.{new}",
                    f"not invertible: {preimage[new]!r} and {old!r} both become {new!r}",
                )
            preimage[new] = old
        return Step(
            source=self.target,
            target=self.source,
            source_labels=self.target_labels,
            target_labels=self.source_labels,
            direct=preimage,
            splits={},
            retired=frozenset(self.added),
            path=self.path,
        )


# --------------------------------------------------------------------------- mappings


def _order(labels: Iterable[str], reference: Sequence[str]) -> list[str]:
    """Labels in the order of ``reference``, then RETIRED."""
    rank = {name: i for i, name in enumerate(reference)}
    return sorted(labels, key=lambda name: rank.get(name, len(rank)))


class LabelMapping:
    """Labels of ``source`` (a taxonomy ref such as ``demo:v1``) onto those of ``target``."""

    def __init__(
        self,
        source: str,
        target: str,
        source_labels: Sequence[str],
        target_labels: Sequence[str],
        steps: Sequence[Step] = (),
    ):
        self.source = source
        self.target = target
        self.source_labels = tuple(source_labels)
        self.target_labels = tuple(target_labels)
        self.steps = tuple(steps)

    @classmethod
    def identity(cls, taxonomy: Taxonomy) -> LabelMapping:
        """The mapping of a version onto itself."""
        return cls(taxonomy.ref, taxonomy.ref, taxonomy.label_names, taxonomy.label_names)

    def __repr__(self) -> str:
        return f"LabelMapping({self.source} -> {self.target}, {len(self.steps)} steps)"

    # -- per label

    def outcomes(self, label: str, text: str | None = None) -> frozenset[str]:
        """Every possible outcome of ``label`` (with ``text``; None: of any text)."""
        if label not in self.source_labels:
            raise MappingError(None, None, f"label {label!r} is not a label of {self.source}")
        current = frozenset((label,))
        for step in self.steps:
            nxt: set[str] = set()
            for outcome in current:
                nxt |= {RETIRED} if outcome == RETIRED else step.outcomes(outcome, text)
            current = frozenset(nxt)
        return current

    def map_label(self, label: str, text: str) -> str:
        """The new label of one example, or REVIEW, or RETIRED."""
        found = self.outcomes(label, text)
        return next(iter(found)) if len(found) == 1 else REVIEW

    def candidates(self, label: str, text: str) -> list[str]:
        """What a reviewer chooses from (target labels, RETIRED last); one item if decided."""
        return _order(self.outcomes(label, text), self.target_labels)

    def label_map(self) -> dict[str, str | None]:
        """Old label -> new label where no text is needed; None for retired and split ones.

        Maps an old model's predictions onto the new labels.
        """
        out: dict[str, str | None] = {}
        for label in self.source_labels:
            found = self.outcomes(label)
            only = next(iter(found)) if len(found) == 1 else None
            out[label] = None if only in (None, RETIRED) else only
        return out

    def rule_derived_labels(self) -> frozenset[str]:
        """Target labels that some source label reaches only through a text rule (a split).

        Data relabelled into these labels was labelled by the rules, so it cannot judge an
        old model whose predictions are carried over by the same rules: they agree with
        the rules wherever the old label was right.
        """
        out: set[str] = set()
        for label in self.source_labels:
            found = self.outcomes(label) - {RETIRED}
            if len(found) > 1:
                out |= found
        return frozenset(out)

    # -- frames

    def map_frame(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Relabel ``text``/``label`` rows; the index of ``frame`` is kept in each part.

        Returns (relabelled ``[text, label]``, review ``[text, old_label, candidates]``
        where candidates is a list of target labels and maybe RETIRED, retired
        ``[text, label]`` with the old label).
        """
        missing = [c for c in ("text", "label") if c not in frame.columns]
        if missing:
            raise MappingError(None, f"column {missing[0]!r}", "missing from the frame")
        unknown = sorted(set(frame["label"]) - set(self.source_labels), key=str)
        if unknown:
            row = int((frame["label"] == unknown[0]).to_numpy().argmax())
            raise MappingError(
                None, f"row {row + 1}", f"label {unknown[0]!r} is not a label of {self.source}"
            )
        fixed = {label: self.outcomes(label) for label in set(frame["label"])}
        kept, review, retired = [], [], []
        for index, text, label in zip(frame.index, frame["text"], frame["label"], strict=True):
            found = fixed[label] if len(fixed[label]) == 1 else self.outcomes(label, text)
            if len(found) > 1:
                review.append((index, text, label, _order(found, self.target_labels)))
            elif RETIRED in found:
                retired.append((index, text, label))
            else:
                kept.append((index, text, next(iter(found))))
        return (
            _frame(kept, ["text", "label"]),
            _frame(review, ["text", "old_label", "candidates"]),
            _frame(retired, ["text", "label"]),
        )

    # -- algebra

    def then(self, other: LabelMapping) -> LabelMapping:
        """``self`` followed by ``other`` (v1->v2 then v2->v3 gives v1->v3)."""
        if self.target != other.source or set(self.target_labels) != set(other.source_labels):
            raise MappingError(
                None,
                None,
                f"cannot compose {self.source} -> {self.target} with "
                f"{other.source} -> {other.target}: {self.target} is not {other.source}",
            )
        return LabelMapping(
            self.source,
            other.target,
            self.source_labels,
            other.target_labels,
            self.steps + other.steps,
        )

    def inverse(self) -> LabelMapping:
        """The mapping back, when every step is keep/rename/add/retire.

        Keep and rename invert to themselves, add and retire to each other, so the
        surviving labels are in bijection and ``m.then(m.inverse())`` is the identity on
        them. A split or merge raises MappingError naming the first label at fault.
        """
        steps = [step.inverse() for step in self.steps]
        return LabelMapping(
            self.target, self.source, self.target_labels, self.source_labels, steps[::-1]
        )

    # -- description

    def canonical(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "source_labels": sorted(self.source_labels),
            "target_labels": sorted(self.target_labels),
            "steps": [step.canonical() for step in self.steps],
        }

    def fingerprint(self) -> str:
        """sha256 of the canonical mapping (for dataset lineage)."""
        return sha256_json(self.canonical())

    def changes(self) -> list[Change]:
        """What happens to each label end to end: keep/rename/merge per new label (in
        target order), then split, retire (source order), add."""
        possible = {label: self.outcomes(label) for label in self.source_labels}
        single: dict[str, list[str]] = defaultdict(list)
        reached: set[str] = set()
        for old, found in possible.items():
            reached |= found
            if len(found) == 1 and RETIRED not in found:
                single[next(iter(found))].append(old)
        out: list[Change] = []
        for new in self.target_labels:
            olds = single.get(new, [])
            if len(olds) > 1:
                out.append(Change("merge", tuple(olds), (new,)))
            elif olds:
                out.append(Change("keep" if olds[0] == new else "rename", (olds[0],), (new,)))
        for old, found in possible.items():
            if len(found) > 1:
                out.append(Change("split", (old,), tuple(_order(found, self.target_labels))))
        out += [Change("retire", (old,), ()) for old, f in possible.items() if f == {RETIRED}]
        out += [Change("add", (), (new,)) for new in self.target_labels if new not in reached]
        return out


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    index = [row[0] for row in rows]
    data = {c: [row[i + 1] for row in rows] for i, c in enumerate(columns)}
    return pd.DataFrame(data, index=pd.Index(index), columns=columns)


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


def _version_number(version: str) -> int:
    return int(version[1:]) if version[1:].isdigit() else -1


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
        files = sorted(folder.glob("*.yaml"), key=lambda p: (_version_number(p.stem), p.name))
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
