"""Everything that matches patterns against a customer's message stays linear in its length.

The handoff phrases took a second on "want" and 4,000 tabs (two quantifiers competing for the same whitespace), and
ran inside the conversation's row lock. Every matcher that reads customer text is fed crafted worst cases at the
message limit: each keyword of the patterns followed by long runs of the characters they quantify over. The bound
is loose (a tenth of a second each, where the linear code takes a few milliseconds and the quadratic one took up to
a second): it catches a catastrophic pattern, not a slow machine.
"""

import time

import pytest

from chat.services.reporting import customer_confirms
from inference.deferral import customer_asks_for_human
from inference.language import language_guess
from knowledge.grounding import customer_specific, small_talk_kind

MATCHERS = [customer_asks_for_human, customer_confirms, customer_specific, small_talk_kind, language_guess]
KEYWORDS = ["want", "need a", "give me", "talk", "connect me", "real", "human", "a", "that", "problem is", "got it,"]
RUNS = [" ", "\t", "\n", " a", "a ", "x", ",", ".", "#", "1", "人", "了 "]
LIMIT = 4000


def crafted() -> list[str]:
    texts = []
    for keyword in KEYWORDS:
        for run in RUNS:
            body = keyword + run * ((LIMIT - len(keyword)) // len(run))
            texts += [body[:LIMIT], (body[: LIMIT - 1] + "!")]
        texts.append((keyword + " ") * (LIMIT // (len(keyword) + 1)))
    return texts


@pytest.mark.parametrize("matcher", MATCHERS, ids=lambda m: m.__name__)
def test_no_crafted_message_makes_a_matcher_slow(matcher):
    worst, worst_text = 0.0, ""
    for text in crafted():
        start = time.perf_counter()
        matcher(text)
        took = time.perf_counter() - start
        if took > worst:
            worst, worst_text = took, text
    assert worst < 0.1, f"{matcher.__name__} took {worst * 1000:.0f} ms on {worst_text[:30]!r}... ({len(worst_text)})"


def test_whitespace_does_not_change_what_asks_for_a_person():
    assert customer_asks_for_human("I  want\ta\n human")
    assert customer_asks_for_human("can I talk\n\nto an   agent")
    assert not customer_asks_for_human("want" + "\t" * 3990 + "x")
