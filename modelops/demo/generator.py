"""Generated customer-support requests for the embedded demo (no third-party text).

Each row is a short message a customer might send, labelled with its intent. Messages are
built from several templates per intent, slot fillers (cards, products, plans, amounts,
dates, order numbers, addresses), politeness openers and closers, and optional context
sentences. Related intents share vocabulary, and two kinds of rows make it hard the way
real support traffic is:

* a message with two requests of related intents (``my card was stolen. also, where is
  my order?``) is routed by the one it opens with, so the order of the words decides,
  which an average of frozen word embeddings (the linear probe) cannot see but an adapted
  encoder can learn;
* a few phrasings fit two intents (``where is my card?``) and their label is either: truly
  ambiguous messages that no model can get right every time.

A bag-of-words baseline learns the task but does not solve it. Knobs add typos, unseen
intents, shifted vocabulary and label-prior shifts for the drift scenario. The same knobs
always give the same rows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas

from modelops.config.errors import InputError
from modelops.demo.intents import BASE_INTENTS, EXTRA_INTENTS, INTENTS
from modelops.demo.phrases import (
    AMBIGUOUS,
    CLOSERS,
    CONTEXT,
    DYNAMIC_SLOTS,
    DYNAMIC_WORDS,
    OPENERS,
    SHIFTED_CLOSERS,
    SHIFTED_OPENERS,
    SHIFTED_SLOTS,
    SLOTS,
)

# --- knobs ----------------------------------------------------------------------------------

SOURCE = "demo data knobs"
"""What ``InputError`` names as the source of a bad knob (or taxonomy intent)."""


@dataclass(frozen=True)
class DemoKnobs:
    """What to generate; the same knobs always give the same rows."""

    n: int = 3000
    """Number of rows."""
    seed: int = 7
    typo_rate: float = 0.05
    """Chance per row of one or more typos (character swap, drop or duplication)."""
    new_intents: tuple[str, ...] = ()
    """Intents from ``EXTRA_INTENTS`` to add (unknown to the base taxonomy)."""
    new_intent_share: float = 0.0
    """Share of rows drawn from ``new_intents``."""
    vocabulary_shift: float = 0.0
    """0..1: chance a row uses shifted vocabulary (new products, slang), same intent."""
    label_priors: Mapping[str, float] | None = None
    """Relative weight per intent (missing intents weigh 1.0)."""

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise InputError(SOURCE, "n", f"must be a positive integer, got {self.n!r}")
        for name in ("typo_rate", "new_intent_share", "vocabulary_shift"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(SOURCE, name, f"must be between 0 and 1, got {value!r}")
        for i, intent in enumerate(self.new_intents):
            if intent not in EXTRA_INTENTS:
                raise InputError(
                    SOURCE, f"new_intents[{i}]",
                    f"{intent!r} is not one of {', '.join(EXTRA_INTENTS)}",
                )  # fmt: skip
        if self.new_intent_share > 0 and not self.new_intents:
            raise InputError(SOURCE, "new_intent_share", "is > 0 but new_intents is empty")
        active = set(BASE_INTENTS) | set(self.new_intents)
        for intent, weight in (self.label_priors or {}).items():
            if intent not in active:
                raise InputError(SOURCE, f"label_priors.{intent}", "not an intent generated")
            if not weight >= 0:
                raise InputError(SOURCE, f"label_priors.{intent}", f"must be >= 0, got {weight}")
        if sum(_weights(BASE_INTENTS, self.label_priors)) <= 0:
            raise InputError(SOURCE, "label_priors", "every base intent has weight 0")
        if self.new_intents and sum(_weights(self.new_intents, self.label_priors)) <= 0:
            raise InputError(SOURCE, "label_priors", "every new intent has weight 0")


def _weights(intents: Sequence[str], priors: Mapping[str, float] | None) -> list[float]:
    return [float((priors or {}).get(intent, 1.0)) for intent in intents]


# --- generation -----------------------------------------------------------------------------

_AMBIGUOUS_RATE = 0.08
_TWO_REQUEST_RATE = 0.3
CONNECTORS = ("also,", "and another thing:", "oh and", "plus", "one more thing:", "btw")
_CONTEXT_RATE = 0.2
_SLOT = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_TYPO_TARGET = re.compile(r"[A-Za-z]{4,}")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (letters and inner apostrophes; digits dropped)."""
    return _WORD.findall(text.lower())


def _fill(template: str, rng: random.Random, shifted: bool) -> str:
    def replace(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot in DYNAMIC_SLOTS:
            return DYNAMIC_SLOTS[slot](rng)
        values = SHIFTED_SLOTS.get(slot, SLOTS[slot]) if shifted else SLOTS[slot]
        return _fill(rng.choice(values), rng, shifted)  # a filler may hold slots too

    return _SLOT.sub(replace, template)


def _sentence(text: str, rng: random.Random, last: bool, capital: bool) -> str:
    if text[-1] not in "?.!":
        text += rng.choice((".", ".", "!", "") if last else (".", ".", "!"))
    return text[0].upper() + text[1:] if capital and rng.random() < 0.85 else text


def _body_template(intent: str, rng: random.Random, shifted: bool) -> str:
    spec = INTENTS[intent]
    if shifted and rng.random() < 0.6:
        return rng.choice(spec.shifted)
    pools = [templates for group, templates in AMBIGUOUS if intent in group]
    if pools and rng.random() < _AMBIGUOUS_RATE:
        return rng.choice(rng.choice(pools))
    return rng.choice(spec.templates)


def _second_request(intent: str, rng: random.Random, shifted: bool) -> str:
    """Sometimes a second request, of an intent related to ``intent``, after a connector
    ("" otherwise): the message is still routed by its first request."""
    related = sorted({i for group, _ in AMBIGUOUS if intent in group for i in group} - {intent})
    if not related or rng.random() >= _TWO_REQUEST_RATE:
        return ""
    other = _fill(rng.choice(INTENTS[rng.choice(related)].templates), rng, shifted)
    return f"{rng.choice(CONNECTORS)} {_sentence(other, rng, last=True, capital=False)}"


def _message(intent: str, rng: random.Random, shifted: bool) -> str:
    opener = rng.choice(SHIFTED_OPENERS if shifted else OPENERS) if rng.random() < 0.45 else ""
    body = _fill(_body_template(intent, rng, shifted), rng, shifted)
    second = _second_request(intent, rng, shifted)
    if second:
        body = f"{_sentence(body, rng, last=False, capital=not opener.endswith(','))} {second}"
    context = _fill(rng.choice(CONTEXT), rng, shifted) if rng.random() < _CONTEXT_RATE else ""
    closer = rng.choice(SHIFTED_CLOSERS if shifted else CLOSERS) if rng.random() < 0.4 else ""
    last = not (context or closer)
    body = _sentence(body, rng, last=last, capital=not opener.endswith(","))
    text = " ".join(part for part in (opener, body, context, closer) if part)
    return text.lower() if shifted and rng.random() < 0.5 else text


def _misspell(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word) - 1)
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _add_typos(text: str, rng: random.Random) -> str:
    """One or two misspelt words; each misspelling is a word no template can produce."""
    targets = list(_TYPO_TARGET.finditer(text))
    if not targets:
        return text
    count = min(len(targets), 1 if rng.random() < 0.7 else 2)
    chosen = sorted(rng.sample(targets, count), key=lambda m: m.start(), reverse=True)
    for match in chosen:
        for _ in range(10):
            typo = _misspell(match.group(), rng)
            if typo.lower() not in _ALL_WORDS:
                text = text[: match.start()] + typo + text[match.end() :]
                break
    return text


def generate(knobs: DemoKnobs = DemoKnobs()) -> pandas.DataFrame:
    """``knobs.n`` generated support requests: columns ``text`` and ``label``."""
    rng = random.Random(knobs.seed)
    base_weights = _weights(BASE_INTENTS, knobs.label_priors)
    new_weights = _weights(knobs.new_intents, knobs.label_priors)
    texts, labels = [], []
    for _ in range(knobs.n):
        if knobs.new_intents and rng.random() < knobs.new_intent_share:
            intent = rng.choices(knobs.new_intents, new_weights)[0]
        else:
            intent = rng.choices(BASE_INTENTS, base_weights)[0]
        shifted = rng.random() < knobs.vocabulary_shift
        text = _message(intent, rng, shifted)
        if rng.random() < knobs.typo_rate:
            text = _add_typos(text, rng)
        texts.append(text)
        labels.append(intent)
    return pandas.DataFrame({"text": texts, "label": labels})


# --- vocabulary -----------------------------------------------------------------------------


def _words_of(pieces: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for piece in pieces:
        out.update(words(_SLOT.sub(" ", piece)))
    return out


def vocabulary(knobs: DemoKnobs = DemoKnobs()) -> frozenset[str]:
    """Every word (see ``words``) that rows generated with ``knobs`` can hold without typos."""
    intents = (*BASE_INTENTS, *knobs.new_intents)
    pieces: list[str] = [*OPENERS, *CLOSERS, *CONTEXT, *DYNAMIC_WORDS, *CONNECTORS]
    for intent in intents:
        pieces.extend(INTENTS[intent].templates)
    for group, templates in AMBIGUOUS:
        if set(group) & set(intents):
            pieces.extend(templates)
    for values in SLOTS.values():
        pieces.extend(values)
    if knobs.vocabulary_shift > 0:
        pieces.extend([*SHIFTED_OPENERS, *SHIFTED_CLOSERS])
        for intent in intents:
            pieces.extend(INTENTS[intent].shifted)
        for values in SHIFTED_SLOTS.values():
            pieces.extend(values)
    return frozenset(_words_of(pieces))


_ALL_WORDS = vocabulary(
    DemoKnobs(new_intents=EXTRA_INTENTS, new_intent_share=0.1, vocabulary_shift=1.0)
)
