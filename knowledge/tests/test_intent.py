"""knowledge.intent: the nearest-neighbour handoff check on the sentence encoder (no database)."""

import json

import pytest

from knowledge import intent


@pytest.mark.parametrize(
    "text",
    [
        "Let me speak to whoever is in charge",  # no person noun the rules know
        "我不要跟机器说话",  # 机器, not 机器人
        "你是不是机器人啊，我想和人说",
    ],
)
def test_a_request_for_a_person_in_new_words_is_recognised(text):
    assert intent.asks_for_person(text)


@pytest.mark.parametrize(
    "text",
    [
        "Does this chair suit a person over 190cm?",
        "What time does your customer support team work on Sundays?",
        "人工安装收费吗",
        "这个扫地机器人能连手机吗",
        "thank you so much, you've been a great help",
    ],
)
def test_questions_that_mention_people_or_robots_are_not_requests(text):
    assert not intent.asks_for_person(text)


def test_an_empty_message_is_not_a_request():
    assert not intent.asks_for_person("   ")


def test_the_examples_are_the_development_phrases_only():
    """The held-out phrases measure the check: none of them may be one of its examples."""
    examples = json.loads(intent.EXAMPLES.read_text())
    phrases = json.loads((intent.EXAMPLES.parent.parent / "bench" / "handoff_intent_phrases.json").read_text())
    held_out = {p["text"] for p in phrases["phrases"] if p.get("split") == "held_out"}
    development = {p["text"]: p["handoff"] for p in phrases["phrases"] if p.get("split") == "development"}
    labelled = {text: True for text in examples["handoff"]} | {text: False for text in examples["not_handoff"]}
    assert not held_out & set(labelled)
    assert labelled == development


def test_an_example_scores_against_the_others_when_left_out():
    """Leaving a phrase out lowers a handoff example's score: it no longer finds itself at cosine 1."""
    example = json.loads(intent.EXAMPLES.read_text())["handoff"][0]
    assert intent.handoff_score(example, leave_out=True) < intent.handoff_score(example)


def test_the_example_vectors_are_embedded_once(monkeypatch):
    intent.handoff_score("warm")
    calls = []
    original = intent.semantic.embed
    monkeypatch.setattr(intent.semantic, "embed", lambda texts: calls.append(len(texts)) or original(texts))
    intent.handoff_score("can I talk to someone")
    assert calls == [1]  # the message only: the examples' vectors are cached
