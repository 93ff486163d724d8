"""Label mappings between taxonomy versions: what becomes of each label and each row.

:class:`LabelMapping` is one step (old version -> new version) or a composition of steps.
It maps each ``(label, text)`` to a *set of possible outcomes* (labels of the target version
or ``RETIRED``): one outcome is the answer, several mean review. Composition applies each
step to every possible outcome, so a split whose parts are merged again later resolves
without review, and composition is associative by construction.

A :class:`Step` is one validated step, built from a taxonomy file by
``modelops.domain.taxonomy_mapping.step_mapping`` (where the file format and its rules are
described): keep, rename and merge map an old label straight to a new one; a split sends
each example to the label of the first :class:`Rule` that matches its text, or to review
(:data:`REVIEW`) with the :class:`Split`'s ``into`` labels as candidates when none does
(matching is on ``normalize_text(text)``: a keyword matches as a whole word or phrase, a
pattern is a regex searched for anywhere); a retired label has no successor and its
examples leave the data set (:data:`RETIRED`). A mapping asked for what it cannot do
(invert a merge, compose mismatched versions, map an unknown label) raises
:class:`MappingError`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_json
from modelops.config.taxonomy import Taxonomy
from modelops.domain.text import normalize_text

REVIEW = "__review__"
RETIRED = "__retired__"

__all__ = [
    "REVIEW",
    "RETIRED",
    "Change",
    "LabelMapping",
    "MappingError",
    "Rule",
    "Split",
    "Step",
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
