"""The intents of the generated support requests: per intent its taxonomy description,
its message templates and the same intent in a shifted register (slang, new product names);
and which intents the base taxonomy, the drift scenario and the launch hold.

Templates hold ``{slot}`` placeholders, filled from ``modelops.demo.phrases``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Intent:
    description: str
    templates: tuple[str, ...]
    shifted: tuple[str, ...]
    """The same intent in another register (slang, new product names)."""


INTENTS: dict[str, Intent] = {
    "card_lost": Intent(
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
    "card_not_arrived": Intent(
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
    "refund_request": Intent(
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
    "billing_double_charge": Intent(
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
    "cancel_subscription": Intent(
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
    "close_account": Intent(
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
    "password_reset": Intent(
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
    "account_locked": Intent(
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
    "change_address": Intent(
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
    "delivery_delayed": Intent(
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
    "track_order": Intent(
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
    "wrong_item": Intent(
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
    "upgrade_plan": Intent(
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
    "invoice_copy": Intent(
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
    "payment_failed": Intent(
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
    "update_payment_method": Intent(
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
    "crypto_transfer": Intent(
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
    "gift_card": Intent(
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
    "loyalty_points": Intent(
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
    "pause_subscription": Intent(
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
