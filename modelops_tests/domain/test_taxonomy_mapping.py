"""Taxonomy versions and label mappings: each operation, each validation error, the
algebra (composition, inverse) and hypothesis properties over random mappings."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelops.config.errors import InputError
from modelops.config.taxonomy import Taxonomy, load_taxonomy
from modelops.domain.label_mapping import RETIRED, REVIEW, Change, LabelMapping, MappingError
from modelops.domain.taxonomy_mapping import load_chain, step_mapping, validate_taxonomy_dir
from modelops.domain.text import normalize_text

EXAMPLE = Path(__file__).parents[1] / "fixtures" / "data" / "taxonomy_v2"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tax_dir(tmp_path) -> Path:
    """A writable copy of the example: demo v1 -> v2 (every operation) -> v3."""
    target = tmp_path / "taxonomies"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("*.csv"))
    return target


def read_doc(root: Path, version: str) -> dict[str, Any]:
    return yaml.safe_load((root / "demo" / f"{version}.yaml").read_text())


def write_doc(root: Path, doc: dict[str, Any], name: str = "demo") -> Path:
    path = root / name / f"{doc['version']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def taxonomy(version: str, labels: list[str], previous=None, mapping=None) -> Taxonomy:
    doc: dict[str, Any] = {"name": "t", "version": version, "labels": [{"name": n} for n in labels]}
    if previous:
        doc["previous"] = previous
    if mapping is not None:
        doc["mapping"] = mapping
    return Taxonomy.model_validate(doc)


# --------------------------------------------------------------------------- operations


def test_each_operation_maps_labels(tax_dir):
    m = load_chain(tax_dir, "demo", "v1", "v2")
    assert (m.source, m.target) == ("demo:v1", "demo:v2")
    assert m.map_label("card_lost", "anything") == "card_missing"  # rename
    assert m.map_label("billing_double_charge", "x") == "billing_problem"  # merge
    assert m.map_label("payment_failed", "x") == "billing_problem"
    assert m.map_label("change_address", "x") == "change_address"  # implicit keep
    assert m.map_label("invoice_copy", "x") == RETIRED  # retire
    assert m.map_label("account_access", "I forgot my PASSWORD") == "password_reset"  # split
    assert m.map_label("account_access", "my account is locked") == "account_locked"
    assert m.map_label("account_access", "I cannot get in") == REVIEW
    assert m.candidates("account_access", "I cannot get in") == ["password_reset", "account_locked"]
    with pytest.raises(MappingError, match="'crypto_transfer' is not a label of demo:v1"):
        m.map_label("crypto_transfer", "x")


def test_split_rules_first_match_whole_words_on_normalized_text(tax_dir):
    m = load_chain(tax_dir, "demo", "v1", "v2")
    # both rules match: the first listed wins
    assert m.map_label("account_access", "password reset, account locked") == "password_reset"
    # NFKC + case folding: full-width letters and upper case match the keyword
    assert m.map_label("account_access", "ＰＡＳＳＷＯＲＤ please") == "password_reset"
    # keywords are whole words: 'passwords' and 'preset' do not match
    assert m.map_label("account_access", "passwords preset") == REVIEW
    # the pattern is a regex searched in the normalized text (\b: 'blocked' is not 'locked')
    assert m.map_label("account_access", "it got LOCKED") == "account_locked"
    assert m.map_label("account_access", "it got blocked") == REVIEW


def test_label_map_and_changes(tax_dir):
    m = load_chain(tax_dir, "demo", "v1", "v2")
    assert m.label_map() == {
        "card_lost": "card_missing",
        "billing_double_charge": "billing_problem",
        "payment_failed": "billing_problem",
        "account_access": None,
        "invoice_copy": None,
        "change_address": "change_address",
    }
    assert m.changes() == [
        Change("rename", ("card_lost",), ("card_missing",)),
        Change("merge", ("billing_double_charge", "payment_failed"), ("billing_problem",)),
        Change("keep", ("change_address",), ("change_address",)),
        Change("split", ("account_access",), ("password_reset", "account_locked")),
        Change("retire", ("invoice_copy",), ()),
        Change("add", (), ("crypto_transfer",)),
    ]


def test_rule_derived_labels_are_the_targets_of_splits(tax_dir):
    """Only a split decides by text; renames, merges, keeps and adds do not."""
    m = load_chain(tax_dir, "demo", "v1", "v2")
    assert m.rule_derived_labels() == {"password_reset", "account_locked"}
    assert load_chain(tax_dir, "demo", "v1", "v1").rule_derived_labels() == frozenset()


def test_map_frame_relabels_reviews_and_retires_a_seeded_frame(tax_dir):
    m = load_chain(tax_dir, "demo", "v1", "v2")
    rng = np.random.default_rng(7)
    texts = {
        "card_lost": ["lost my card", "card stolen"],
        "billing_double_charge": ["charged twice"],
        "payment_failed": ["payment failed"],
        "account_access": ["forgot my password", "account locked", "cannot log in", "help"],
        "invoice_copy": ["invoice copy please"],
        "change_address": ["new address"],
    }
    labels = rng.choice(sorted(texts), size=200)
    rows = [(str(rng.choice(texts[lab])) + f" #{i}", str(lab)) for i, lab in enumerate(labels)]
    frame = pd.DataFrame(rows, columns=["text", "label"], index=range(100, 300))

    relabelled, review, retired = m.map_frame(frame)

    assert list(relabelled.columns) == ["text", "label"]
    assert list(review.columns) == ["text", "old_label", "candidates"]
    assert list(retired.columns) == ["text", "label"]
    assert len(relabelled) + len(review) + len(retired) == len(frame)
    assert sorted([*relabelled.index, *review.index, *retired.index]) == list(frame.index)
    old = frame["label"]
    assert (retired["label"] == "invoice_copy").all()
    assert len(retired) == (old == "invoice_copy").sum() > 0
    assert (review["old_label"] == "account_access").all()
    assert review["text"].str.contains("cannot log in|help").all()
    assert all(c == ["password_reset", "account_locked"] for c in review["candidates"])
    access = old[old == "account_access"].index
    expected_review = frame.loc[access, "text"].str.contains("cannot log in|help").sum()
    assert len(review) == expected_review > 0
    for index, row in relabelled.iterrows():
        assert row["text"] == frame.loc[index, "text"]
        assert row["label"] == m.map_label(frame.loc[index, "label"], row["text"])
    by_old = relabelled.assign(old=old[relabelled.index])
    assert set(by_old[by_old.old == "card_lost"]["label"]) == {"card_missing"}
    split_rows = by_old[by_old.old == "account_access"]
    assert set(split_rows["label"]) == {"password_reset", "account_locked"}
    assert split_rows[split_rows.label == "password_reset"]["text"].str.contains("password").all()


def test_map_frame_rejects_unknown_labels(tax_dir):
    m = load_chain(tax_dir, "demo", "v1", "v2")
    frame = pd.DataFrame({"text": ["a", "b"], "label": ["card_lost", "card_missing"]})
    with pytest.raises(
        MappingError, match=r"row 2: label 'card_missing' is not a label of demo:v1"
    ):
        m.map_frame(frame)


def test_first_version_fingerprint_and_dump_are_unchanged_by_the_new_fields(tax_dir):
    v1 = load_taxonomy(tax_dir / "demo" / "v1.yaml")
    v2 = load_taxonomy(tax_dir / "demo" / "v2.yaml")
    assert set(v1.model_dump()) == {"name", "version", "labels"}
    assert v2.model_dump()["previous"] == "v1"
    assert v2.mapping is not None and v2.mapping.rename == {"card_lost": "card_missing"}


def test_fingerprint_is_stable_and_follows_the_mapping(tax_dir):
    first = load_chain(tax_dir, "demo", "v1", "v2").fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert load_chain(tax_dir, "demo", "v1", "v2").fingerprint() == first
    doc = read_doc(tax_dir, "v2")
    doc["mapping"]["split"]["account_access"]["rules"][0]["keywords"] = ["password"]
    write_doc(tax_dir, doc)
    assert load_chain(tax_dir, "demo", "v1", "v2").fingerprint() != first


# --------------------------------------------------------------------------- validation


def _without_rename(doc):
    del doc["mapping"]["rename"]


def _set(path: str, value):
    def mutate(doc):
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _rename_onto_kept_label(doc):
    doc["mapping"]["rename"] = {"card_lost": "change_address"}
    doc["labels"] = [lab for lab in doc["labels"] if lab["name"] != "card_missing"]


def _add_unlisted_label(doc):
    doc["labels"].append({"name": "loyalty_points"})


RULES = "mapping.split.account_access.rules"


@pytest.mark.parametrize(
    ("mutate", "where", "fragment"),
    [
        (_without_rename, "mapping", "old label 'card_lost' of demo:v1 is not accounted for"),
        (
            _set("mapping.rename.card_lost", "card_gone"),
            "mapping.rename.card_lost",
            "'card_gone' is not among the labels of demo:v2",
        ),
        (
            _set("mapping.merge", {"billing_issue": ["billing_double_charge", "payment_failed"]}),
            "mapping.merge.billing_issue",
            "'billing_issue' is not among the labels",
        ),
        (
            _set("mapping.retire", ["invoice_copy", "card_lost"]),
            "mapping.retire.card_lost",
            "'card_lost' is already mapped by mapping.rename.card_lost",
        ),
        (
            _set("mapping.merge.billing_problem", ["billing_double_charge", "payment_failed"] * 2),
            "mapping.merge.billing_problem",
            "'billing_double_charge' is already mapped by mapping.merge.billing_problem",
        ),
        (
            _set("mapping.retire", ["invoice_copy", "fax_request"]),
            "mapping.retire.fax_request",
            "'fax_request' is not a label of demo:v1",
        ),
        (
            _set("mapping.merge.billing_problem", ["payment_failed", "billing_double_charge", "x"]),
            "mapping.merge.billing_problem",
            "'x' is not a label of demo:v1",
        ),
        (
            _set("mapping.rename", {"card_stolen": "card_missing", "card_lost": "card_missing"}),
            "mapping.rename.card_stolen",
            "'card_stolen' is not a label of demo:v1",
        ),
        (
            _set(f"{RULES}.0.label", "account_help"),
            f"{RULES}[0]",
            "label 'account_help' is not one of into (password_reset, account_locked)",
        ),
        (
            _set("mapping.split.account_access.into", ["password_reset", "login_help"]),
            "mapping.split.account_access",
            "'login_help' is not among the labels of demo:v2",
        ),
        (
            _set("mapping.split.account_access.into", ["password_reset", "password_reset"]),
            "mapping.split.account_access",
            "lists a label twice",
        ),
        (_set(f"{RULES}.1.patterns", ["(locked"]), f"{RULES}[1]", "invalid regex '(locked'"),
        (_set(f"{RULES}.1", {"label": "account_locked"}), f"{RULES}[1]", "keywords or patterns"),
        (_set(f"{RULES}.0.keywords", ["  "]), f"{RULES}[0]", "a keyword is empty"),
        (
            _set("mapping.add", []),
            "mapping.add",
            "new label 'crypto_transfer' of demo:v2 is neither the successor of an old label "
            "nor listed in mapping.add",
        ),
        (
            _add_unlisted_label,
            "mapping.add",
            "new label 'loyalty_points' of demo:v2 is neither",
        ),
        (
            _set("mapping.add", ["crypto_transfer", "card_missing"]),
            "mapping.add.card_missing",
            "'card_missing' is the successor of mapping.rename.card_lost",
        ),
        (
            _set("mapping.add", ["crypto_transfer", "change_address"]),
            "mapping.add.change_address",
            "'change_address' is the successor of keep",
        ),
        (
            _set("mapping.add", ["crypto_transfer", "account_locked"]),
            "mapping.add.account_locked",
            "also a target of mapping.split.account_access",
        ),
        (
            _rename_onto_kept_label,
            "mapping.rename.card_lost",
            "'change_address' is also the successor of keep (label 'change_address' of demo:v1)",
        ),
        (
            _set("mapping.rename.card_lost", "card_lost"),
            "mapping.rename.card_lost",
            "'card_lost' is not among the labels",
        ),
        (_set("previous", "v2"), "previous", "'v2' is this file's own version"),
        (_set("name", "other"), "name", "'other' does not match the directory 'demo'"),
        (_set("mapping.split.account_access.into", ["password_reset"]), f"{RULES[:-6]}.into", ""),
        (_set("mapping.rename.card_lost", "Card Missing"), "mapping.rename.card_lost", "pattern"),
    ],
)
def test_invalid_mapping_names_file_and_label(tax_dir, mutate, where, fragment):
    doc = read_doc(tax_dir, "v2")
    mutate(doc)
    path = write_doc(tax_dir, doc)
    for load in (
        lambda: load_chain(tax_dir, "demo", "v1", "v2"),
        lambda: validate_taxonomy_dir(tax_dir),
    ):
        with pytest.raises(InputError) as info:
            load()
        message = str(info.value)
        assert message.startswith(f"{path}: {where}: "), message
        assert fragment in message


def test_rename_to_itself_is_rejected():
    v1 = taxonomy("v1", ["a", "b"])
    v2 = taxonomy("v2", ["a", "b"], "v1", {"rename": {"a": "a"}})
    with pytest.raises(InputError, match=r"mapping\.rename\.a: renamed to itself"):
        step_mapping(v1, v2)


def test_merge_may_keep_the_name_of_a_source_but_not_implicitly():
    v1 = taxonomy("v1", ["card_lost", "card_stolen", "other"])
    ok = taxonomy(
        "v2", ["card_lost", "other"], "v1", {"merge": {"card_lost": ["card_lost", "card_stolen"]}}
    )
    m = step_mapping(v1, ok)
    assert m.label_map() == {"card_lost": "card_lost", "card_stolen": "card_lost", "other": "other"}
    assert m.changes()[0] == Change("merge", ("card_lost", "card_stolen"), ("card_lost",))
    implicit = taxonomy(
        "v2", ["card_lost", "other"], "v1", {"merge": {"card_lost": ["card_stolen"]}}
    )
    with pytest.raises(
        InputError, match=r"mapping\.merge\.card_lost: 'card_lost' is also the successor of keep"
    ):
        step_mapping(v1, implicit)


def test_split_targets_may_be_kept_labels_and_retired_labels_may_be_re_added():
    v1 = taxonomy("v1", ["access", "password_reset", "promo"])
    v2 = taxonomy(
        "v2",
        ["password_reset", "account_locked", "promo"],
        "v1",
        {
            "split": {
                "access": {
                    "into": ["password_reset", "account_locked"],
                    "rules": [{"label": "account_locked", "keywords": ["locked"]}],
                }
            },
            "retire": ["promo"],
            "add": ["promo"],
        },
    )
    m = step_mapping(v1, v2)
    assert m.map_label("password_reset", "x") == "password_reset"
    assert m.map_label("access", "it is locked") == "account_locked"
    assert m.map_label("promo", "x") == RETIRED
    assert Change("add", (), ("promo",)) in m.changes()


def test_mapping_without_previous_is_rejected(tax_dir):
    doc = read_doc(tax_dir, "v2")
    del doc["previous"]
    path = write_doc(tax_dir, doc)
    with pytest.raises(InputError, match=re.escape(f"{path}: mapping: a mapping needs `previous`")):
        validate_taxonomy_dir(tax_dir)


def test_previous_without_mapping_keeps_every_label(tmp_path):
    write_doc(tmp_path, {"name": "demo", "version": "v1", "labels": [{"name": "a"}, {"name": "b"}]})
    write_doc(
        tmp_path,
        {
            "name": "demo",
            "version": "v2",
            "previous": "v1",
            "labels": [{"name": "b"}, {"name": "a"}],
        },
    )
    m = load_chain(tmp_path, "demo", "v1", "v2")
    assert m.label_map() == {"a": "a", "b": "b"}
    assert [c.kind for c in m.changes()] == ["keep", "keep"]


# --------------------------------------------------------------------------- chains and files


def test_load_chain_missing_file_broken_chain_and_cycle(tax_dir):
    with pytest.raises(InputError, match=r"demo/v7\.yaml: file not found"):
        load_chain(tax_dir, "demo", "v1", "v7")
    with pytest.raises(InputError, match=r"demo/v1\.yaml: previous: the chain back from v1 ends"):
        load_chain(tax_dir, "demo", "v3", "v1")  # backwards: v1 has no previous

    doc = read_doc(tax_dir, "v2")
    doc["previous"] = "v0"
    v2 = write_doc(tax_dir, doc)
    with pytest.raises(
        InputError, match=rf"{re.escape(str(v2))}: previous: 'v0': .*v0\.yaml not found"
    ):
        load_chain(tax_dir, "demo", "v1", "v3")

    labels = [{"name": "a"}, {"name": "b"}]
    v2 = write_doc(tax_dir, {"name": "demo", "version": "v2", "previous": "v3", "labels": labels})
    write_doc(tax_dir, {"name": "demo", "version": "v3", "previous": "v2", "labels": labels})
    with pytest.raises(InputError, match=rf"{re.escape(str(v2))}: previous: cycle: v3 -> v2 -> v3"):
        load_chain(tax_dir, "demo", "v1", "v3")
    with pytest.raises(InputError, match=r"previous: cycle: v2 -> v3 -> v2"):
        validate_taxonomy_dir(tax_dir)


def test_identity_chain(tax_dir):
    m = load_chain(tax_dir, "demo", "v2", "v2")
    assert (m.source, m.target) == ("demo:v2", "demo:v2")
    assert all(m.map_label(lab, "t") == lab for lab in m.source_labels)
    assert {c.kind for c in m.changes()} == {"keep"}


def test_validate_dir_lists_every_version_in_order(tax_dir):
    labels = [{"name": "x"}, {"name": "y"}]
    write_doc(
        tax_dir, {"name": "other", "version": "v10", "previous": "v9", "labels": labels}, "other"
    )
    write_doc(tax_dir, {"name": "other", "version": "v9", "labels": labels}, "other")
    refs = [t.ref for t in validate_taxonomy_dir(tax_dir)]
    assert refs == ["demo:v1", "demo:v2", "demo:v3", "other:v9", "other:v10"]


def test_repository_taxonomies_validate():
    refs = [t.ref for t in validate_taxonomy_dir(REPO / "taxonomies")]
    assert "demo_intents:v1" in refs


# --------------------------------------------------------------------------- algebra


def stepwise(mappings: list[LabelMapping], label: str, text: str) -> frozenset[str]:
    """Apply each one-step mapping in turn to every possible outcome so far."""
    current = frozenset((label,))
    for m in mappings:
        current = frozenset().union(
            *({RETIRED} if o == RETIRED else m.outcomes(o, text) for o in current)
        )
    return current


TEXTS = ["forgot my password", "account locked", "cannot log in", "", "RESET it"]


def test_composition_equals_step_by_step(tax_dir):
    m12 = load_chain(tax_dir, "demo", "v1", "v2")
    m23 = load_chain(tax_dir, "demo", "v2", "v3")
    m13 = load_chain(tax_dir, "demo", "v1", "v3")
    assert m13.fingerprint() == m12.then(m23).fingerprint()
    for label in m13.source_labels:
        for text in TEXTS:
            assert m13.outcomes(label, text) == stepwise([m12, m23], label, text)
            first = m12.map_label(label, text)
            if first not in (REVIEW, RETIRED):
                assert m13.map_label(label, text) == m23.map_label(first, text)
    # the split of v2 is merged again in v3: no review end to end, even without rules matching
    assert m12.map_label("account_access", "cannot log in") == REVIEW
    assert m13.map_label("account_access", "cannot log in") == "account_help"
    assert m13.label_map()["account_access"] == "account_help"
    assert m13.label_map()["card_lost"] == "card_lost"
    assert Change("keep", ("card_lost",), ("card_lost",)) in m13.changes()


def test_composing_mismatched_versions_raises(tax_dir):
    m12 = load_chain(tax_dir, "demo", "v1", "v2")
    with pytest.raises(MappingError, match="cannot compose"):
        m12.then(m12)


def test_inverse_of_a_rename_chain_composes_to_identity():
    v1 = taxonomy("v1", ["a", "b", "c"])
    v2 = taxonomy("v2", ["b", "a", "c2"], "v1", {"rename": {"a": "b", "b": "a", "c": "c2"}})
    v3 = taxonomy("v3", ["b", "a3", "c2", "d"], "v2", {"rename": {"a": "a3"}, "add": ["d"]})
    m = step_mapping(v1, v2).then(step_mapping(v2, v3))
    inv = m.inverse()
    assert (inv.source, inv.target) == ("t:v3", "t:v1")
    assert m.map_label("a", "x") == "b" and inv.map_label("b", "x") == "a"
    for label in m.source_labels:
        assert m.then(inv).map_label(label, "x") == label
    for label in ("b", "a3", "c2"):
        assert inv.then(m).map_label(label, "x") == label
    assert inv.map_label("d", "x") == RETIRED  # added in v3: nothing to go back to
    assert inv.inverse().fingerprint() == m.fingerprint()


def test_inverse_swaps_retire_and_add():
    v1 = taxonomy("v1", ["a", "b", "gone"])
    v2 = taxonomy("v2", ["a", "b", "new"], "v1", {"retire": ["gone"], "add": ["new"]})
    m = step_mapping(v1, v2)
    round_trip = m.then(m.inverse())
    assert [round_trip.map_label(x, "t") for x in ("a", "b", "gone")] == ["a", "b", RETIRED]
    assert m.inverse().changes()[-2:] == [
        Change("retire", ("new",), ()),
        Change("add", (), ("gone",)),
    ]


def test_merge_and_split_are_not_invertible(tax_dir):
    m = load_chain(tax_dir, "demo", "v1", "v2")
    with pytest.raises(MappingError) as info:
        m.inverse()
    path = tax_dir / "demo" / "v2.yaml"
    assert str(info.value) == (
        f"{path}: mapping.merge.billing_problem: not invertible: 'billing_double_charge' and "
        "'payment_failed' both become 'billing_problem'"
    )
    v1 = taxonomy("v1", ["a", "b"])
    v2 = taxonomy("v2", ["a1", "a2", "b"], "v1", {"split": {"a": {"into": ["a1", "a2"]}}})
    with pytest.raises(MappingError, match=r"mapping\.split\.a: not invertible: 'a' is split"):
        step_mapping(v1, v2).inverse()


# --------------------------------------------------------------------------- properties

WORDS = ["card", "lost", "password", "reset", "locked", "refund", "late", "order"]
OPS = ("keep", "rename", "merge", "split", "retire")


@st.composite
def next_version(draw, old: Taxonomy, ops=OPS, with_adds=True) -> Taxonomy:
    """A random valid successor of ``old`` with a mapping using ``ops``."""
    number = int(old.version[1:]) + 1
    fresh = iter(f"n{number}_{i}" for i in range(1000))
    op_of = {label: draw(st.sampled_from(ops)) for label in old.label_names}
    by_op = {op: [lab for lab in old.label_names if op_of[lab] == op] for op in OPS}
    labels = list(by_op["keep"])
    mapping: dict[str, Any] = {"rename": {}, "merge": {}, "split": {}, "retire": by_op["retire"]}
    renamed = by_op["rename"]
    if len(renamed) >= 2 and draw(st.booleans()):  # a cycle of renames among old names
        targets = renamed[1:] + renamed[:1]
    else:
        targets = [next(fresh) for _ in renamed]
    mapping["rename"] = dict(zip(renamed, targets, strict=True))
    labels += targets
    merged = by_op["merge"]
    if merged:
        groups = draw(st.lists(st.integers(0, 2), min_size=len(merged), max_size=len(merged)))
        for g in sorted(set(groups)):
            sources = [lab for lab, k in zip(merged, groups, strict=True) if k == g]
            target = sources[0] if draw(st.booleans()) else next(fresh)
            mapping["merge"][target] = sources
            labels.append(target)
    for label in by_op["split"]:
        into = [next(fresh) for _ in range(draw(st.integers(1, 3)))]
        if by_op["keep"] and draw(st.booleans()):
            into.append(draw(st.sampled_from(by_op["keep"])))
        if len(into) < 2:
            into.append(next(fresh))
        rules = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "label": st.sampled_from(into),
                        "keywords": st.lists(st.sampled_from(WORDS), min_size=1, max_size=2),
                    }
                ),
                max_size=3,
            )
        )
        mapping["split"][label] = {"into": into, "rules": rules}
        labels += into
    adds = [next(fresh) for _ in range(draw(st.integers(0, 2) if with_adds else st.just(0)))]
    while len(set(labels) | set(adds)) < 2:
        adds.append(next(fresh))
    mapping["add"] = adds
    labels = list(dict.fromkeys(labels + adds))
    labels = draw(st.permutations(labels))
    return taxonomy(f"v{number}", labels, old.version, mapping)


first_version = st.integers(2, 6).map(lambda n: taxonomy("v1", [f"a{i}" for i in range(n)]))
texts = st.lists(
    st.lists(st.sampled_from(WORDS + ["PASSWORD", "Lost"]), max_size=4).map(" ".join),
    min_size=1,
    max_size=4,
)


@st.composite
def chains(draw, length=3, ops=OPS, with_adds=True) -> list[Taxonomy]:
    versions = [draw(first_version)]
    for _ in range(length):
        versions.append(draw(next_version(versions[-1], ops, with_adds)))
    return versions


def oracle(new: Taxonomy, label: str, text: str) -> frozenset[str]:
    """One step read straight from the spec, independently of the implementation."""
    spec = new.mapping
    assert spec is not None
    if label in spec.rename:
        return frozenset((spec.rename[label],))
    for target, sources in spec.merge.items():
        if label in sources:
            return frozenset((target,))
    if label in spec.split:
        words = normalize_text(text).split(" ")
        for rule in spec.split[label].rules:
            if any(k in words for k in rule.keywords):
                return frozenset((rule.label,))
        return frozenset(spec.split[label].into)
    if label in spec.retire:
        return frozenset((RETIRED,))
    assert label in new.label_names, f"{label} unaccounted for"
    return frozenset((label,))


PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(versions=chains(), texts=texts)
def test_property_composition_is_associative_and_stepwise(versions, texts):
    m12, m23, m34 = (step_mapping(a, b) for a, b in zip(versions, versions[1:], strict=False))
    left, right = m12.then(m23).then(m34), m12.then(m23.then(m34))
    assert left.fingerprint() == right.fingerprint()
    for label in versions[0].label_names:
        for text in texts:
            assert left.map_label(label, text) == right.map_label(label, text)
            expected = frozenset((label,))
            for new in versions[1:]:
                expected = frozenset().union(
                    *({RETIRED} if o == RETIRED else oracle(new, o, text) for o in expected)
                )
            assert left.outcomes(label, text) == expected
            assert left.map_label(label, text) == (
                next(iter(expected)) if len(expected) == 1 else REVIEW
            )


@PROPERTY
@given(versions=chains(length=2), texts=texts)
def test_property_every_label_is_accounted_for(versions, texts):
    m = step_mapping(versions[0], versions[1]).then(step_mapping(versions[1], versions[2]))
    targets = set(versions[2].label_names)
    for label in versions[0].label_names:
        assert m.outcomes(label) <= targets | {RETIRED}
        assert m.outcomes(label)
        for text in texts:
            assert m.outcomes(label, text) <= m.outcomes(label)
            assert m.map_label(label, text) in targets | {REVIEW, RETIRED}
    changes = m.changes()
    olds = [old for c in changes for old in c.old_labels]
    assert sorted(olds) == sorted(versions[0].label_names)  # each old label exactly once
    assert {new for c in changes for new in c.new_labels} - {RETIRED} == targets
    frame = pd.DataFrame(
        [(t, lab) for lab in versions[0].label_names for t in texts], columns=["text", "label"]
    )
    relabelled, review, retired = m.map_frame(frame)
    assert len(relabelled) + len(review) + len(retired) == len(frame)
    assert set(relabelled["label"]) <= targets


@PROPERTY
@given(versions=chains(length=3, ops=("keep", "rename")), text=st.sampled_from(WORDS))
def test_property_rename_then_inverse_is_identity(versions, text):
    m = step_mapping(versions[0], versions[1])
    for a, b in zip(versions[1:], versions[2:], strict=False):
        m = m.then(step_mapping(a, b))
    round_trip = m.then(m.inverse())
    assert (round_trip.source, round_trip.target) == (m.source, m.source)
    for label in versions[0].label_names:
        assert round_trip.map_label(label, text) == label
    assert m.inverse().inverse().fingerprint() == m.fingerprint()


@PROPERTY
@given(versions=chains(length=1), data=st.data())
def test_property_validation_rejects_a_dropped_old_label(versions, data):
    old, new = versions
    spec = new.mapping.model_dump()
    droppable = [
        lab
        for lab in old.label_names
        if lab not in new.label_names  # else dropping it would keep it
    ]
    assume(droppable)
    label = data.draw(st.sampled_from(droppable))
    spec["rename"].pop(label, None)
    spec["split"].pop(label, None)
    spec["retire"] = [lab for lab in spec["retire"] if lab != label]
    spec["merge"] = {t: [s for s in sources if s != label] for t, sources in spec["merge"].items()}
    spec["merge"] = {t: s for t, s in spec["merge"].items() if s}
    mutated = taxonomy(new.version, new.label_names, old.version, spec)
    with pytest.raises(InputError) as info:
        step_mapping(old, mutated)
    assert str(info.value).startswith("t:v2: mapping: ")
    assert f"old label {label!r} of t:v1 is not accounted for" in str(info.value)


@PROPERTY
@given(versions=chains(length=1))
def test_property_validation_rejects_unlisted_new_label_and_unknown_target(versions):
    old, new = versions
    extra = taxonomy(
        new.version, [*new.label_names, "zz_new"], old.version, new.mapping.model_dump()
    )
    with pytest.raises(InputError, match=r"mapping\.add: new label 'zz_new' of t:v2 is neither"):
        step_mapping(old, extra)
    spec = new.mapping.model_dump()
    spec["rename"][old.label_names[0]] = "zz_missing"
    for other in ("merge", "split"):
        spec[other].pop(old.label_names[0], None)
    spec["merge"] = {
        t: kept
        for t, v in spec["merge"].items()
        if (kept := [s for s in v if s != old.label_names[0]])
    }
    spec["retire"] = [lab for lab in spec["retire"] if lab != old.label_names[0]]
    with pytest.raises(InputError, match=r"'zz_missing' is not among the labels of t:v2"):
        step_mapping(old, taxonomy(new.version, new.label_names, old.version, spec))
