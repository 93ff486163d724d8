"""The demo data generator: determinism, knobs, difficulty, files and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pandas
import pytest
import yaml

from modelops.cli import main
from modelops.config.errors import InputError
from modelops.demo.files import taxonomy_document, write_demo_dataset
from modelops.demo.generator import DemoKnobs, generate, vocabulary, words
from modelops.demo.intents import BASE_INTENTS, EXTRA_INTENTS, LAUNCH_INTENTS

REPO = Path(__file__).resolve().parents[2]


def _oov_share(frame: pandas.DataFrame, knobs: DemoKnobs) -> float:
    vocab = vocabulary(knobs)
    return frame["text"].map(lambda text: any(w not in vocab for w in words(text))).mean()


def test_same_knobs_same_rows_and_other_seed_differs():
    knobs = DemoKnobs(n=400, seed=11, typo_rate=0.3, vocabulary_shift=0.2)
    first, again = (
        generate(knobs),
        generate(DemoKnobs(n=400, seed=11, typo_rate=0.3, vocabulary_shift=0.2)),
    )
    pandas.testing.assert_frame_equal(first, again)
    assert list(first.columns) == ["text", "label"]
    other = generate(DemoKnobs(n=400, seed=12, typo_rate=0.3, vocabulary_shift=0.2))
    assert (first["text"] != other["text"]).mean() > 0.9


def test_base_intents_all_present_and_balanced():
    frame = generate(DemoKnobs(n=3000))
    assert len(BASE_INTENTS) >= 14
    counts = frame["label"].value_counts()
    assert set(counts.index) == set(BASE_INTENTS)
    expected = len(frame) / len(BASE_INTENTS)
    assert counts.min() > 0.6 * expected
    assert counts.max() < 1.4 * expected
    assert frame["text"].nunique() > 0.85 * len(frame)  # varied phrasings, few repeats
    assert frame["text"].str.len().min() > 5


def test_no_typos_means_every_word_is_in_the_vocabulary():
    knobs = DemoKnobs(n=1500, seed=3, typo_rate=0.0)
    assert _oov_share(generate(knobs), knobs) == 0.0


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_typos_appear_at_about_the_configured_rate(rate):
    knobs = DemoKnobs(n=2000, seed=5, typo_rate=rate)
    assert _oov_share(generate(knobs), knobs) == pytest.approx(rate, abs=0.04)


def test_new_intents_only_when_asked_and_at_about_the_share():
    plain = generate(DemoKnobs(n=1500, seed=2))
    assert not plain["label"].isin(EXTRA_INTENTS).any()

    asked = ("gift_card", "crypto_transfer")
    knobs = DemoKnobs(n=2000, seed=2, new_intents=asked, new_intent_share=0.25, typo_rate=0.0)
    frame = generate(knobs)
    new = frame["label"].isin(EXTRA_INTENTS)
    assert new.mean() == pytest.approx(0.25, abs=0.04)
    assert set(frame.loc[new, "label"]) == set(asked)
    assert _oov_share(frame, knobs) == 0.0  # their words are in the vocabulary of those knobs
    assert not set(BASE_INTENTS) & set(EXTRA_INTENTS)


def test_vocabulary_shift_brings_words_unseen_without_it():
    base = generate(DemoKnobs(n=2000, seed=4, typo_rate=0.0))
    base_words = {w for text in base["text"] for w in words(text)}
    shifted = generate(DemoKnobs(n=2000, seed=4, typo_rate=0.0, vocabulary_shift=0.5))
    unseen = shifted["text"].map(lambda text: any(w not in base_words for w in words(text)))
    assert unseen.mean() > 0.2
    assert shifted["label"].value_counts().index.isin(BASE_INTENTS).all()  # same intents


def test_label_priors_shift_the_label_distribution():
    even = generate(DemoKnobs(n=3000, seed=9))["label"].value_counts(normalize=True)
    priors = {"card_lost": 5.0, "refund_request": 0.2}
    tilted = generate(DemoKnobs(n=3000, seed=9, label_priors=priors))
    shares = tilted["label"].value_counts(normalize=True)
    assert shares["card_lost"] > 2.5 * even["card_lost"]
    assert shares.get("refund_request", 0.0) < 0.5 * even["refund_request"]


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"n": 0}, "n"),
        ({"typo_rate": 1.5}, "typo_rate"),
        ({"new_intents": ("card_lost",)}, "new_intents[0]"),
        ({"new_intent_share": 0.2}, "new_intent_share"),
        ({"label_priors": {"no_such_intent": 1.0}}, "label_priors.no_such_intent"),
        ({"label_priors": {"card_lost": -1.0}}, "label_priors.card_lost"),
    ],
)
def test_bad_knobs_name_the_field(knobs, field):
    with pytest.raises(InputError) as caught:
        DemoKnobs(**knobs)
    assert caught.value.where == field


def test_learnable_but_not_trivially_separable():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = generate(DemoKnobs(n=3000, seed=21))
    train, test = frame.iloc[:2000], frame.iloc[2000:]
    model = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=1000))
    model.fit(train["text"], train["label"])
    accuracy = (model.predict(test["text"]) == test["label"]).mean()
    assert 0.6 < accuracy < 0.97


def test_csv_round_trips(tmp_path):
    knobs = DemoKnobs(n=300, seed=1, typo_rate=0.2, vocabulary_shift=0.3)
    path = write_demo_dataset(tmp_path / "nested" / "dir" / "demo.csv", knobs)
    assert path.read_bytes().startswith(b"text,label\n")
    back = pandas.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    pandas.testing.assert_frame_equal(back, generate(knobs))
    assert [p.name for p in path.parent.iterdir()] == ["demo.csv"]  # no temp file left


def test_taxonomy_file_matches_the_generator():
    path = REPO / "taxonomies" / "demo_intents" / "v1.yaml"
    text = path.read_text(encoding="utf-8")
    assert "modelops demo-data --taxonomy" in text.splitlines()[0]
    document = taxonomy_document()
    assert yaml.safe_load(text) == document
    assert document["name"] == "demo_intents" and document["version"] == "v1"
    names = [label["name"] for label in document["labels"]]
    assert names == list(BASE_INTENTS) + list(LAUNCH_INTENTS)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in names)
    assert all(label["description"] for label in document["labels"])


def test_cli_writes_then_keeps_an_existing_file(tmp_path, capsys):
    out = tmp_path / "demo" / "support.csv"
    assert main(["demo-data", "--out", str(out), "--rows", "200", "--seed", "3"]) == 0
    line = capsys.readouterr().out.strip()
    intents = pandas.read_csv(out)["label"].nunique()
    assert str(out) in line and "200 rows" in line and f"{intents} intents" in line
    written = out.read_bytes()

    assert main(["demo-data", "--out", str(out), "--rows", "50", "--seed", "4"]) == 0
    assert "kept" in capsys.readouterr().out
    assert out.read_bytes() == written

    assert main(["demo-data", "--out", str(out), "--rows", "50", "--force"]) == 0
    assert len(pandas.read_csv(out)) == 50


def test_cli_writes_the_taxonomy(tmp_path):
    path = tmp_path / "v1.yaml"
    assert main(["demo-data", "--taxonomy", str(path)]) == 0
    assert path.read_bytes() == (REPO / "taxonomies/demo_intents/v1.yaml").read_bytes()
