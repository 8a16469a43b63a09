import pytest

from inference.deferral import HANDOFF_SIGNAL, DeferralFilter, customer_asks_for_human


@pytest.mark.parametrize(
    "text",
    [
        "转人工",
        "我要人工客服",
        "human",
        "Human please!",
        "agent",
        "Can I talk to an agent?",
        "I want to speak with a real person",
        "please connect me to someone from staff",
        "I want a human",
        "I need an agent now",
    ],
)
def test_requests_for_a_person_are_recognised(text):
    assert customer_asks_for_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I reset my password?",
        "My user agent string is wrong in the app",
        "Is this product safe for human consumption?",
        "人工智能是什么",
    ],
)
def test_ordinary_questions_are_not_requests_for_a_person(text):
    assert not customer_asks_for_human(text)


def run(pieces: list[str]) -> tuple[str, bool]:
    stream = DeferralFilter()
    shown = "".join(stream.feed(p) for p in pieces) + stream.flush()
    return shown, stream.deferred


def test_the_signal_is_cut_out_even_when_split_across_pieces():
    shown, deferred = run(["I'm sorry, ", "[[HAND", "OFF]] and more"])
    assert deferred and shown == "I'm sorry, "
    assert "[" not in shown


def test_the_signal_alone_shows_nothing_at_all():
    stream = DeferralFilter()
    shown = [stream.feed(c) for c in HANDOFF_SIGNAL]
    assert stream.deferred and shown == [""] * len(HANDOFF_SIGNAL)


def test_text_that_only_looks_like_the_start_is_released():
    assert run(["a [[ list ", "[[HAND but not quite"]) == ("a [[ list [[HAND but not quite", False)
    assert run(["ends with [["]) == ("ends with [[", False)
