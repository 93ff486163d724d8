"""Generated customer-support requests for the embedded demo (no third-party text).

Each row is a short message a customer might send, labelled with its intent. Messages are
built from several templates per intent, slot fillers (cards, products, plans, amounts,
dates, order numbers, addresses), politeness openers and closers, and optional context
sentences. Related intents share vocabulary and a share of rows comes from phrasings that
fit two intents (``where is my card?``), so a bag-of-words baseline learns the task but
does not solve it. Knobs add typos, unseen intents, shifted vocabulary and label-prior
shifts for the drift scenario. The same knobs always give the same rows.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas
import yaml

from modelops.config.errors import InputError

# --- the intents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Intent:
    description: str
    templates: tuple[str, ...]
    shifted: tuple[str, ...]
    """The same intent in another register (slang, new product names)."""


_INTENTS: dict[str, _Intent] = {
    "card_lost": _Intent(
        "The customer lost a card or it was stolen and wants it blocked or replaced.",
        (
            "I {lost} my {card}",
            "I think I {lost} my {card} {when}",
            "my {card} was stolen {when}",
            "someone stole my wallet with my {card} in it",
            "I can't find my {card} anywhere",
            "please block my {card}, I {lost} it",
            "I left my {card} at a {place} and now it's gone",
            "how do I freeze my {card}? it's missing",
            "I need to report a {lost} {card} and get a new one",
            "my {card} is gone, I need a replacement",
        ),
        (
            "my {card} got nicked at the {place} lol",
            "lost my {card} smh, block it asap",
            "{card} gone missing after the gig {when}",
        ),
    ),
    "card_not_arrived": _Intent(
        "A new or replacement card was ordered but has not arrived.",
        (
            "my new {card} hasn't arrived yet",
            "I ordered a {card} {when} and it still hasn't come",
            "still waiting for my {card} in the mail",
            "the replacement {card} you sent never arrived",
            "when will my new {card} be delivered?",
            "it has been {days} days and no {card} in my mailbox",
            "my {card} was supposed to arrive {when} but nothing came",
            "did you actually send my new {card}?",
            "the {card} I requested is missing, it never showed up",
        ),
        (
            "still no {card} in the post box fr",
            "{card} ain't showed up yet, been {days} days",
            "where's my new {card} at, ordered it {when}",
        ),
    ),
    "refund_request": _Intent(
        "The customer wants money back for a purchase or a return.",
        (
            "I would like a refund for the {product}",
            "can I get my money back for order {order}?",
            "please refund the {amount} I paid for the {product}",
            "I returned the {product} {when}, where is my refund?",
            "how long does a refund take to show up on my {card}?",
            "I want to return the {product} and get a refund",
            "the {product} broke after {days} days, I want a refund",
            "you charged me {amount} for the {product} I never received, refund it",
        ),
        (
            "gimme my cash back for the {product}",
            "want a refund on the {product}, it's trash",
            "send back my {amount}, the {product} is busted",
        ),
    ),
    "billing_double_charge": _Intent(
        "The customer was charged twice or more for the same thing.",
        (
            "I was charged twice for the {product}",
            "there are two charges of {amount} on my {card}",
            "you billed me twice this month",
            "I see a duplicate payment of {amount} from {date}",
            "my {card} statement shows the same charge two times",
            "why did you take {amount} from my account twice?",
            "double charge on order {order}, please fix it and refund the extra",
            "I paid once but the charge for the {product} appears twice",
        ),
        (
            "got hit twice for the {product}, wtf",
            "yall took {amount} two times from my {card}",
            "seeing a double charge on my {card} from {date} fr",
        ),
    ),
    "cancel_subscription": _Intent(
        "The customer wants to stop a recurring subscription or its renewal.",
        (
            "I want to cancel my {plan} subscription",
            "please stop my subscription before the next billing date",
            "how do I cancel my membership?",
            "don't renew my {plan} plan",
            "turn off auto renewal on my subscription",
            "I no longer want the {plan} plan, cancel it please",
            "cancel the subscription on my account, I don't use it",
            "stop charging me every month for the {plan} plan",
        ),
        (
            "kill my sub, not using it anymore",
            "ditch the {plan} sub pls, no more renewals",
            "unsub me from the monthly thing",
        ),
    ),
    "close_account": _Intent(
        "The customer wants to close or delete the whole account.",
        (
            "I want to close my account",
            "please delete my account and all my data",
            "how do I permanently close my {brand} account?",
            "remove my profile, I won't use your service anymore",
            "close my account and cancel everything",
            "I'd like to terminate my account today",
            "I am leaving {brand}, please shut down my account",
        ),
        (
            "nuke my acct and all my stuff",
            "done with {brand}, wipe my acct",
            "delete me from {brand} for good",
        ),
    ),
    "password_reset": _Intent(
        "The customer forgot the password or needs a reset link.",
        (
            "I forgot my password",
            "how do I reset my password?",
            "the password reset email never arrived",
            "I need to change my password, I can't remember it",
            "the reset link says it expired",
            "can you send me a new password link?",
            "I can't log in because I forgot my password",
        ),
        (
            "forgot my pw again lol, need a new one",
            "pw reset mail never came thru",
            "the reset thingy link is dead",
        ),
    ),
    "account_locked": _Intent(
        "The account is locked, blocked or suspended and the customer cannot get in.",
        (
            "my account is locked",
            "I entered the wrong password too many times and now I'm locked out",
            "it says my account has been suspended",
            "your system blocked my account after {count} attempts",
            "unlock my account please",
            "I'm locked out of my account since {date}",
            "I can't log in, it says the account is blocked",
        ),
        (
            "acct got frozen outta nowhere",
            "app says im locked out, wtf",
            "yall blocked my acct for no reason",
        ),
    ),
    "change_address": _Intent(
        "The customer moved and wants to update the postal or delivery address.",
        (
            "I moved and need to update my address",
            "please change my shipping address to {address}",
            "how do I update my delivery address for order {order}?",
            "my address changed, can you update it on my account",
            "send my order to {address} instead",
            "I have a new home address, {address}",
        ),
        (
            "new crib at {address}, update it",
            "moved house, ship stuff to {address} now",
            "my addy changed to {address}",
        ),
    ),
    "delivery_delayed": _Intent(
        "An order is late or its delivery is delayed.",
        (
            "my order {order} is late",
            "the package was supposed to arrive {when} but it's delayed",
            "why is my delivery taking so long?",
            "order {order} still hasn't arrived after {days} days",
            "my {product} delivery is delayed again",
            "the delivery date for the {product} keeps getting pushed back",
        ),
        (
            "parcel still stuck, {days} days now",
            "my {product} is mega late",
            "courier keeps ghosting me on order {order}",
        ),
    ),
    "track_order": _Intent(
        "The customer asks where an order is or for its tracking number.",
        (
            "where can I track my order {order}?",
            "can you give me the tracking number for the {product}",
            "what's the status of order {order}?",
            "has my order shipped yet?",
            "how do I see where my package is?",
            "is my {product} on its way?",
        ),
        (
            "got a tracking link for the {product}?",
            "where my parcel at, order {order}",
            "did the {product} ship or nah",
        ),
    ),
    "wrong_item": _Intent(
        "The customer received a different item than the one ordered.",
        (
            "I received the wrong item",
            "I ordered the {product} but got some {product} instead",
            "the package had someone else's order in it",
            "you sent me the wrong {variant} of the {product}",
            "order {order} contained the wrong product",
            "this isn't what I ordered, I got the {product}",
        ),
        (
            "bruh you sent the wrong the {product}",
            "box had a random {product} in it, not mine",
            "got the wrong {variant}, not what i picked",
        ),
    ),
    "upgrade_plan": _Intent(
        "The customer wants a bigger or better plan.",
        (
            "I want to upgrade to the {plan} plan",
            "how do I switch to a bigger plan?",
            "can I move from {plan} to {plan}?",
            "what does it cost to upgrade my subscription?",
            "I need more storage, please upgrade my account",
            "change my subscription to the {plan} plan",
        ),
        (
            "wanna bump my sub up to {plan}",
            "level up my plan to {plan} pls",
            "need the beefier plan, how much",
        ),
    ),
    "invoice_copy": _Intent(
        "The customer needs an invoice or receipt.",
        (
            "can you send me a copy of my invoice for {date}?",
            "I need the invoice for order {order}",
            "where can I download my invoices?",
            "please email me a receipt for {amount}",
            "I need an invoice with my company name for the {plan} plan",
            "my accountant needs last month's bill",
        ),
        (
            "need a receipt for my taxes for the {product}",
            "shoot me the invoice pdf for {date}",
            "bookkeeper wants the bill for order {order}",
        ),
    ),
    "payment_failed": _Intent(
        "A payment was declined or failed at checkout.",
        (
            "my payment didn't go through",
            "the payment for the {product} was declined",
            "I keep getting an error when I try to pay",
            "why was my {card} declined?",
            "checkout fails every time with my {card}",
            "the payment failed but the money left my account",
        ),
        (
            "checkout keeps bugging out on me",
            "my {card} got rejected at checkout, why",
            "pay button just spins and errors out",
        ),
    ),
    "update_payment_method": _Intent(
        "The customer wants to change or add the card or payment method on file.",
        (
            "I want to update my {card} details",
            "how do I change the {card} on file?",
            "please add a new payment method",
            "my {card} expired, I need to put the new one on my account",
            "remove my old {card} and use {wallet} instead",
            "I got a new {card}, how do I add it for my {plan} plan?",
        ),
        (
            "swap my {card} for {wallet} pls",
            "wanna pay with {wallet} from now on",
            "new {card}, how do i plug it in",
        ),
    ),
    # --- extra intents: absent from the base taxonomy, for the drift scenario -----------------
    "crypto_transfer": _Intent(
        "The customer wants to send, receive or withdraw cryptocurrency.",
        (
            "can I send bitcoin to my account?",
            "how do I transfer crypto to an external wallet?",
            "my ethereum withdrawal has been pending since {date}",
            "I want to buy {amount} of bitcoin with my {card}",
            "the crypto transfer I made {when} is not showing",
        ),
        (
            "moving my btc out, how",
            "eth withdrawal stuck, wen",
            "wanna cash out my coins to my {card}",
        ),
    ),
    "gift_card": _Intent(
        "The customer wants to buy or redeem a gift card.",
        (
            "how do I redeem a gift card?",
            "my gift card code {code} doesn't work",
            "can I buy a gift card for a friend?",
            "what is the balance on my gift card?",
            "I want to pay for the {product} with a gift card",
        ),
        (
            "gift card {code} says invalid, help",
            "got a gift card for my bday, how to use it",
            "giftcard balance check pls",
        ),
    ),
    "loyalty_points": _Intent(
        "The customer asks about reward or loyalty points.",
        (
            "how many reward points do I have?",
            "my loyalty points didn't show up after order {order}",
            "can I use my points to pay for the {product}?",
            "do my reward points expire?",
            "I should have earned points for the {amount} I spent",
        ),
        (
            "where my reward points at",
            "points missing from the {product} purchase",
            "cash in my loyalty stash on the {product}",
        ),
    ),
    "pause_subscription": _Intent(
        "The customer wants to pause a subscription for a while without cancelling it.",
        (
            "can I pause my subscription for {count} months?",
            "put my membership on hold while I'm traveling",
            "I want to freeze my {plan} plan for the summer",
            "is there a way to skip a month of my subscription?",
            "pause billing on my {plan} plan until {date}",
        ),
        (
            "pause my sub for a bit, broke this month",
            "hold the {plan} sub, back in {count} months",
            "snooze my membership for a while",
        ),
    ),
}

BASE_INTENTS: tuple[str, ...] = (
    "card_lost",
    "card_not_arrived",
    "refund_request",
    "billing_double_charge",
    "cancel_subscription",
    "close_account",
    "password_reset",
    "account_locked",
    "change_address",
    "delivery_delayed",
    "track_order",
    "wrong_item",
    "upgrade_plan",
    "invoice_copy",
    "payment_failed",
    "update_payment_method",
)
"""The intents of the base taxonomy (``taxonomies/demo_intents/v1.yaml``)."""

EXTRA_INTENTS: tuple[str, ...] = (
    "crypto_transfer",
    "gift_card",
    "loyalty_points",
    "pause_subscription",
)
"""Intents the initial data lacks; ``DemoKnobs.new_intents`` draws from these."""

LAUNCH_INTENTS: tuple[str, ...] = ("crypto_transfer", "gift_card")
"""Extra intents the demo taxonomy already lists (products about to launch) though the
initial data has no example of them: production traffic and feedback bring them, and
retraining learns them (the continuous-adaptation scenario)."""

TAXONOMY_INTENTS: tuple[str, ...] = BASE_INTENTS + LAUNCH_INTENTS

# Phrasings that fit every intent of their group: the row keeps the label drawn for it,
# so these rows are ambiguous on purpose.
_AMBIGUOUS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("card_lost", "card_not_arrived"),
        (
            "I don't have my {card}, what should I do?",
            "where is my {card}?",
            "I need a new {card} sent to me",
            "can you send me a replacement {card}?",
            "I still have no {card} and need to pay for things",
        ),
    ),
    (
        ("refund_request", "billing_double_charge"),
        (
            "I want my money back for the {amount} charge",
            "there is a charge of {amount} I need returned",
            "please give back the {amount} you took on {date}",
            "I was overcharged for the {product}, refund me",
        ),
    ),
    (
        ("password_reset", "account_locked"),
        (
            "I can't log in to my account",
            "I can't get into my account since {date}",
            "the app won't let me sign in",
            "help me get back into my account",
        ),
    ),
    (
        ("cancel_subscription", "close_account"),
        (
            "I want to stop everything with {brand}",
            "please cancel my account",
            "I'm done with {brand}, how do I leave?",
            "no more charges, I want out",
        ),
    ),
    (
        ("delivery_delayed", "track_order"),
        (
            "where is my order {order}?",
            "any news about order {order}?",
            "my {product} hasn't come yet, where is it?",
        ),
    ),
    (
        ("payment_failed", "update_payment_method"),
        (
            "my {card} isn't working for the {plan} plan",
            "there's a problem with my payment method",
            "I can't pay with my {card} anymore",
        ),
    ),
    (
        ("upgrade_plan", "cancel_subscription"),
        ("I want to change my plan", "I'm not happy with my {plan} plan"),
    ),
    (
        ("invoice_copy", "billing_double_charge"),
        ("I have a question about my bill from {date}", "something is off on my invoice"),
    ),
    (
        ("change_address", "delivery_delayed"),
        ("my package is going to my old address", "the order {order} went to the wrong address"),
    ),
    (
        ("wrong_item", "refund_request"),
        ("the {product} I got is not right, what now?", "I got the {product} and I don't want it"),
    ),
)

# --- slot fillers -------------------------------------------------------------------------

_SLOTS: dict[str, tuple[str, ...]] = {
    "lost": ("lost", "misplaced", "dropped"),
    "card": ("card", "debit card", "credit card", "bank card", "visa card", "mastercard"),
    "when": (
        "yesterday",
        "this morning",
        "last night",
        "last week",
        "on {date}",
        "{days} days ago",
    ),
    "place": ("restaurant", "bar", "train station", "supermarket", "gym", "taxi"),
    "product": (
        "wireless headphones",
        "coffee grinder",
        "running shoes",
        "phone case",
        "desk lamp",
        "blue jacket",
        "kitchen scale",
        "yoga mat",
        "backpack",
        "smart watch",
    ),
    "variant": ("size", "color", "model", "version"),
    "plan": ("basic", "standard", "premium", "family", "business", "pro"),
    "brand": ("your company", "your service", "this app", "you guys"),
    "wallet": ("paypal", "apple pay", "google pay", "a bank transfer"),
}
_SHIFTED_SLOTS: dict[str, tuple[str, ...]] = {
    "card": ("plastic", "virtual card", "metal card", "contactless card", "neocard"),
    "place": ("club", "festival", "skatepark", "food truck"),
    "product": (
        "zephyr earbuds",
        "nimbus hoodie",
        "quantumfit band",
        "lumen kettle",
        "vortex sneakers",
        "polaris drone",
    ),
    "plan": ("ultra", "plus max", "creator", "starter lite"),
    "brand": ("yall", "this outfit"),
    "wallet": ("venmo", "cashapp", "klarna"),
}
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_STREETS = ("Oak", "Maple", "Station", "Harbor", "Mill", "Church", "Park", "Elm", "Bridge")
_STREET_KINDS = ("Street", "Road", "Avenue", "Lane")
_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd"}
_CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Kingsbridge", "Millbrook")
_DYNAMIC_WORDS = (
    *_MONTHS, *_WEEKDAYS, *_STREETS, *_STREET_KINDS, *_CITIES,
    "last", "the", "of", "st", "nd", "rd", "th", "dollars", "euros", "order", "ord", "gc", "apt",
)  # fmt: skip


def _amount(rng: random.Random) -> str:
    value = rng.randint(5, 400)
    return rng.choice(
        (f"${value}.{rng.choice(('00', '99', '50', '49'))}", f"{value} dollars",
         f"€{value}", f"{value} euros")
    )  # fmt: skip


def _date(rng: random.Random) -> str:
    month, day = rng.choice(_MONTHS), rng.randint(1, 28)
    nth = f"{day}{_ORDINAL_SUFFIX.get(day % 10 if day not in (11, 12, 13) else 0, 'th')}"
    return rng.choice((f"{month} {day}", f"the {nth} of {month}", f"last {rng.choice(_WEEKDAYS)}"))


def _order(rng: random.Random) -> str:
    number = rng.randint(100000, 999999)
    return rng.choice((f"#{number}", f"ORD-{number}", f"{number}"))


def _address(rng: random.Random) -> str:
    street = f"{rng.randint(1, 250)} {rng.choice(_STREETS)} {rng.choice(_STREET_KINDS)}"
    if rng.random() < 0.3:
        street += f" apt {rng.randint(1, 40)}"
    return f"{street}, {rng.choice(_CITIES)}"


_DYNAMIC_SLOTS: dict[str, Callable[[random.Random], str]] = {
    "amount": _amount,
    "date": _date,
    "order": _order,
    "address": _address,
    "days": lambda rng: str(rng.randint(2, 21)),
    "count": lambda rng: str(rng.randint(2, 6)),
    "code": lambda rng: f"GC-{rng.randint(10000000, 99999999)}",
}

# --- the frame around the request -----------------------------------------------------------

_OPENERS = (
    "Hi,", "Hello,", "Hello there,", "Good morning,", "Good afternoon,", "Hey,", "Dear support,",
    "Hi team,", "Excuse me,", "Sorry to bother you,", "Quick question:", "Urgent:",
)  # fmt: skip
_CLOSERS = (
    "Thanks.", "Thank you!", "Thanks in advance.", "Please help.", "Kind regards.",
    "Appreciate it.", "Any help is welcome.", "Cheers.", "Please get back to me soon.",
    "Thank you for your help.",
)  # fmt: skip
_CONTEXT = (
    "I've been a customer for {count} years.",
    "This is the second time I'm writing about this.",
    "I'm on the {plan} plan.",
    "I tried the app first but it didn't help.",
    "My account email is the one I'm writing from.",
    "I called yesterday but nobody answered.",
    "I'm travelling at the moment.",
    "I already checked the help page.",
)
_SHIFTED_OPENERS = ("yo", "hiya", "sup team,", "ok so", "heyyy", "oi,")
_SHIFTED_CLOSERS = ("thx", "ty", "cheers m8", "pls halp", "kthxbye", "asap pls")

# --- knobs ----------------------------------------------------------------------------------

_SOURCE = "demo data knobs"


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
            raise InputError(_SOURCE, "n", f"must be a positive integer, got {self.n!r}")
        for name in ("typo_rate", "new_intent_share", "vocabulary_shift"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(_SOURCE, name, f"must be between 0 and 1, got {value!r}")
        for i, intent in enumerate(self.new_intents):
            if intent not in EXTRA_INTENTS:
                raise InputError(
                    _SOURCE, f"new_intents[{i}]",
                    f"{intent!r} is not one of {', '.join(EXTRA_INTENTS)}",
                )  # fmt: skip
        if self.new_intent_share > 0 and not self.new_intents:
            raise InputError(_SOURCE, "new_intent_share", "is > 0 but new_intents is empty")
        active = set(BASE_INTENTS) | set(self.new_intents)
        for intent, weight in (self.label_priors or {}).items():
            if intent not in active:
                raise InputError(_SOURCE, f"label_priors.{intent}", "not an intent generated")
            if not weight >= 0:
                raise InputError(_SOURCE, f"label_priors.{intent}", f"must be >= 0, got {weight}")
        if sum(_weights(BASE_INTENTS, self.label_priors)) <= 0:
            raise InputError(_SOURCE, "label_priors", "every base intent has weight 0")
        if self.new_intents and sum(_weights(self.new_intents, self.label_priors)) <= 0:
            raise InputError(_SOURCE, "label_priors", "every new intent has weight 0")


def _weights(intents: Sequence[str], priors: Mapping[str, float] | None) -> list[float]:
    return [float((priors or {}).get(intent, 1.0)) for intent in intents]


# --- generation -----------------------------------------------------------------------------

_AMBIGUOUS_RATE = 0.25
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
        if slot in _DYNAMIC_SLOTS:
            return _DYNAMIC_SLOTS[slot](rng)
        values = _SHIFTED_SLOTS.get(slot, _SLOTS[slot]) if shifted else _SLOTS[slot]
        return _fill(rng.choice(values), rng, shifted)  # a filler may hold slots too

    return _SLOT.sub(replace, template)


def _sentence(text: str, rng: random.Random, last: bool, capital: bool) -> str:
    if text[-1] not in "?.!":
        text += rng.choice((".", ".", "!", "") if last else (".", ".", "!"))
    return text[0].upper() + text[1:] if capital and rng.random() < 0.85 else text


def _body_template(intent: str, rng: random.Random, shifted: bool) -> str:
    spec = _INTENTS[intent]
    if shifted and rng.random() < 0.6:
        return rng.choice(spec.shifted)
    pools = [templates for group, templates in _AMBIGUOUS if intent in group]
    if pools and rng.random() < _AMBIGUOUS_RATE:
        return rng.choice(rng.choice(pools))
    return rng.choice(spec.templates)


def _message(intent: str, rng: random.Random, shifted: bool) -> str:
    opener = rng.choice(_SHIFTED_OPENERS if shifted else _OPENERS) if rng.random() < 0.45 else ""
    body = _fill(_body_template(intent, rng, shifted), rng, shifted)
    context = _fill(rng.choice(_CONTEXT), rng, shifted) if rng.random() < _CONTEXT_RATE else ""
    closer = rng.choice(_SHIFTED_CLOSERS if shifted else _CLOSERS) if rng.random() < 0.4 else ""
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
    pieces: list[str] = [*_OPENERS, *_CLOSERS, *_CONTEXT, *_DYNAMIC_WORDS]
    for intent in intents:
        pieces.extend(_INTENTS[intent].templates)
    for group, templates in _AMBIGUOUS:
        if set(group) & set(intents):
            pieces.extend(templates)
    for values in _SLOTS.values():
        pieces.extend(values)
    if knobs.vocabulary_shift > 0:
        pieces.extend([*_SHIFTED_OPENERS, *_SHIFTED_CLOSERS])
        for intent in intents:
            pieces.extend(_INTENTS[intent].shifted)
        for values in _SHIFTED_SLOTS.values():
            pieces.extend(values)
    return frozenset(_words_of(pieces))


_ALL_WORDS = vocabulary(
    DemoKnobs(new_intents=EXTRA_INTENTS, new_intent_share=0.1, vocabulary_shift=1.0)
)

# --- files ----------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; this is a plain shared data file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_demo_dataset(path: Path, knobs: DemoKnobs = DemoKnobs()) -> Path:
    """Write ``generate(knobs)`` as a UTF-8 CSV (header ``text,label``), atomically."""
    buffer = io.StringIO()
    generate(knobs).to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return _write_atomic(Path(path), buffer.getvalue().encode("utf-8"))


def taxonomy_document(
    name: str = "demo_intents", version: str = "v1", intents: Sequence[str] = TAXONOMY_INTENTS
) -> dict:
    """The taxonomy YAML document for ``intents`` (the base intents and the launch ones
    by default)."""
    unknown = [intent for intent in intents if intent not in _INTENTS]
    if unknown:
        raise InputError(_SOURCE, "intents", f"unknown intents: {', '.join(unknown)}")
    return {
        "name": name,
        "version": version,
        "labels": [
            {"name": intent, "description": _INTENTS[intent].description} for intent in intents
        ],
    }


TAXONOMY_HEADER = (
    "# Generated by `modelops demo-data --taxonomy` from modelops.demo.data;\n"
    "# edit the generator, not this file.\n"
)


def write_taxonomy(path: Path, name: str = "demo_intents", version: str = "v1") -> Path:
    """Write ``taxonomy_document(name, version)`` as YAML with a header, atomically."""
    body = yaml.safe_dump(taxonomy_document(name, version), sort_keys=False, allow_unicode=True)
    return _write_atomic(Path(path), (TAXONOMY_HEADER + body).encode("utf-8"))
