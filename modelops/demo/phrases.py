"""The words around the intents of the generated support requests: phrasings that fit two
intents, slot fillers (fixed lists and drawn values such as amounts, dates, order numbers and
addresses), and the frame around a request (openers, closers, context sentences), each with
its shifted register for the drift scenario."""

from __future__ import annotations

import random
from collections.abc import Callable

# Phrasings that fit every intent of their group: the row keeps the label drawn for it,
# so these rows are ambiguous on purpose.
AMBIGUOUS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
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

SLOTS: dict[str, tuple[str, ...]] = {
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
SHIFTED_SLOTS: dict[str, tuple[str, ...]] = {
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
DYNAMIC_WORDS = (
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


DYNAMIC_SLOTS: dict[str, Callable[[random.Random], str]] = {
    "amount": _amount,
    "date": _date,
    "order": _order,
    "address": _address,
    "days": lambda rng: str(rng.randint(2, 21)),
    "count": lambda rng: str(rng.randint(2, 6)),
    "code": lambda rng: f"GC-{rng.randint(10000000, 99999999)}",
}

# --- the frame around the request -----------------------------------------------------------

OPENERS = (
    "Hi,", "Hello,", "Hello there,", "Good morning,", "Good afternoon,", "Hey,", "Dear support,",
    "Hi team,", "Excuse me,", "Sorry to bother you,", "Quick question:", "Urgent:",
)  # fmt: skip
CLOSERS = (
    "Thanks.", "Thank you!", "Thanks in advance.", "Please help.", "Kind regards.",
    "Appreciate it.", "Any help is welcome.", "Cheers.", "Please get back to me soon.",
    "Thank you for your help.",
)  # fmt: skip
CONTEXT = (
    "I've been a customer for {count} years.",
    "This is the second time I'm writing about this.",
    "I'm on the {plan} plan.",
    "I tried the app first but it didn't help.",
    "My account email is the one I'm writing from.",
    "I called yesterday but nobody answered.",
    "I'm travelling at the moment.",
    "I already checked the help page.",
)
SHIFTED_OPENERS = ("yo", "hiya", "sup team,", "ok so", "heyyy", "oi,")
SHIFTED_CLOSERS = ("thx", "ty", "cheers m8", "pls halp", "kthxbye", "asap pls")
