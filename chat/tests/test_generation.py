"""The one generation pipeline (chat.generation), driven with the spec'd fake engine: prompt, deadlines, the handoff
signal, punctuation, the rule fallback, stopping, refusals and metrics; and every kind of bot output going
through it."""

import pytest
from prometheus_client import REGISTRY

from chat.generation import (
    GenerationRefused,
    GenerationRequest,
    GenerationStopped,
    Outcome,
    Publisher,
    generate,
)
from inference.engines import EngineError
from inference.models import FallbackRule
from inference.types import ChatTurn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ungrounded")]


class Recorder(Publisher):
    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.deltas: list[str] = []
        self.started_with: dict | None = None
        self.checks = 0
        self.stop_after = stop_after

    def started(self, *, engine_name, engine, params) -> None:
        self.started_with = {"engine": engine_name, "model": engine.model_name, "params": params}

    def delta(self, text: str) -> None:
        self.deltas.append(text)

    def still_wanted(self) -> None:
        self.checks += 1
        if self.stop_after is not None and self.checks >= self.stop_after:
            raise GenerationStopped("nobody reads it")


def request(text: str = "Where is my parcel?", **fields) -> GenerationRequest:
    return GenerationRequest(**{"purpose": "reply", "history": [ChatTurn("user", text)], **fields})


def counted(purpose: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("helpdesk_generations_total", {"purpose": purpose, "outcome": outcome}) or 0.0


def test_an_answer_is_published_in_gathered_pieces_the_first_at_once(fake_engine, settings):
    settings.CHAT_STREAM_COALESCE_MS = 10_000  # everything after the first piece waits for the end
    fake_engine.script = ["Your ", "parcel ", "left ", "today."]
    publisher = Recorder()
    result = generate(request(), publisher)
    assert result.outcome == Outcome.ANSWERED and result.text == "Your parcel left today."
    assert publisher.deltas == ["Your ", "parcel left today."]
    assert result.stats.completion_tokens == 4 and result.stats.finish_reason == "stop"
    assert publisher.started_with["engine"] == "default"


def test_the_prompt_is_the_active_template_with_the_customers_variables_then_the_history(fake_engine, settings):
    settings.COMPANY_NAME = "Acme"
    history = [ChatTurn("user", "hi"), ChatTurn("assistant", "Hello!"), ChatTurn("user", "你好")]
    generate(GenerationRequest(purpose="reply", history=history, language="zh-CN", region="Asia/Shanghai"))
    turns, params = fake_engine.calls[-1]
    assert turns[0].role == "system" and "Acme" in turns[0].content and "Asia/Shanghai" in turns[0].content
    assert "Chinese (简体中文)" in turns[0].content
    assert turns[1:] == history
    assert params.max_tokens == settings.INFERENCE_MAX_TOKENS


def test_overrides_are_clamped_and_reach_the_engine(fake_engine, settings):
    generate(request(overrides={"temperature": 9, "max_tokens": 7}))
    _turns, params = fake_engine.calls[-1]
    assert (params.temperature, params.max_tokens) == (2.0, 7)


def test_the_handoff_signal_is_cut_out_and_ends_the_output(fake_engine):
    fake_engine.script = ["I can't", " help. [[HAND", "OFF]] and more"]
    publisher = Recorder()
    result = generate(request(), publisher)
    assert result.outcome == Outcome.DEFERRED and result.text == "I can't help."
    assert "[" not in "".join(publisher.deltas) and "more" not in "".join(publisher.deltas)


def test_chinese_gets_full_width_punctuation_as_it_streams(fake_engine):
    fake_engine.script = ["您好,", "订单已发货!"]
    publisher = Recorder()
    result = generate(request(language="zh"), publisher)
    assert result.text == "您好，订单已发货！" and "".join(publisher.deltas) == result.text


def test_a_reply_stopped_by_the_token_limit_ends_at_its_last_sentence(fake_engine, monkeypatch):
    monkeypatch.setattr(fake_engine, "finish_reason", "length")
    fake_engine.script = ["Your parcel left on Monday. ", "It arrives within three days. ", "If it does not, we"]
    publisher = Recorder()
    result = generate(request(), publisher)
    assert result.outcome == Outcome.ANSWERED and result.stats.finish_reason == "length"
    assert result.text == "Your parcel left on Monday. It arrives within three days."
    assert "".join(publisher.deltas).endswith("If it does not, we")  # streamed; the final text replaces it


def test_a_chinese_reply_stopped_by_the_token_limit_ends_at_its_last_sentence(fake_engine, monkeypatch):
    monkeypatch.setattr(fake_engine, "finish_reason", "length")
    fake_engine.script = ["您的包裹周一已发出.", "预计三天内送达!", "如果没有"]
    result = generate(request(language="zh-CN"), Recorder())
    assert result.text == "您的包裹周一已发出。预计三天内送达！"


def test_a_reply_cut_mid_sentence_says_that_it_was_cut(fake_engine, monkeypatch):
    monkeypatch.setattr(fake_engine, "finish_reason", "length")
    fake_engine.script = ["To change the address, ", "open the order page, ", "choose the parcel, then"]
    publisher = Recorder()
    result = generate(request(), publisher)
    expected = "To change the address, open the order page, choose the parcel, then… (reply cut short)"
    assert result.text == expected and "".join(publisher.deltas) == expected  # the note is streamed too


def test_a_chinese_reply_cut_mid_sentence_says_that_it_was_cut(fake_engine, monkeypatch):
    monkeypatch.setattr(fake_engine, "finish_reason", "length")
    fake_engine.script = ["要修改地址,", "请打开订单页面,", "然后"]
    publisher = Recorder()
    result = generate(request(language="zh"), publisher)
    assert result.text == "要修改地址，请打开订单页面，然后…（回复已截断）"
    assert "".join(publisher.deltas) == result.text


def test_a_customer_reads_the_cut_reply_as_the_stored_message(fake_engine, monkeypatch):
    from chat import services
    from chat.reply import reply_generate

    monkeypatch.setattr(fake_engine, "finish_reason", "length")
    fake_engine.script = ["It left on Monday. ", "It arrives soon. ", "Track it on"]
    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="Where is my parcel?")
    assert reply_generate(customer_message_id=message.pk).content == "It left on Monday. It arrives soon."


def test_a_reply_that_ends_by_itself_is_left_whole(fake_engine):
    fake_engine.script = ["It left on Monday, ", "and"]
    assert generate(request()).text == "It left on Monday, and"


def test_an_engine_failure_is_answered_by_the_first_matching_rule(fake_engine):
    FallbackRule.objects.create(name="parcel", keywords="parcel", answer="Parcels take 3 days.", language="en")
    fake_engine.script = ["Let me", EngineError("engine down")]
    result = generate(request(language="en-GB"))
    assert result.outcome == Outcome.RULES and result.text == "Parcels take 3 days."
    assert result.stats.engine == "rules" and result.engine_failed and "engine down" in result.error


def test_with_no_rule_the_failure_keeps_what_streamed(fake_engine):
    fake_engine.script = ["Let me ", "check", EngineError("engine down")]
    before = REGISTRY.get_sample_value("helpdesk_engine_failures_total", {"answered_by": "nobody"}) or 0
    result = generate(request())
    assert result.outcome == Outcome.FAILED and result.text == "Let me check" and result.error == "engine down"
    assert REGISTRY.get_sample_value("helpdesk_engine_failures_total", {"answered_by": "nobody"}) == before + 1


def test_outputs_for_agents_get_no_rule_answer(fake_engine):
    FallbackRule.objects.create(name="parcel", keywords="parcel", answer="Parcels take 3 days.")
    fake_engine.script = [EngineError("engine down")]
    result = generate(request(rules_fallback=False, purpose="summary"))
    assert result.outcome == Outcome.FAILED and result.text == ""


def test_an_empty_reply_counts_as_an_engine_failure(fake_engine):
    fake_engine.script = ["  ", "\n"]
    assert generate(request()).outcome == Outcome.FAILED


def test_a_reply_nobody_wants_any_more_stops_with_what_streamed(fake_engine, settings):
    settings.CHAT_STREAM_COALESCE_MS = 0
    fake_engine.script = ["word "] * 100
    from inference.engines import engine_get

    engine_get().delay_s = 0.02  # two seconds in all: the first check (after 1 s) stops it
    result = generate(request(), Recorder(stop_after=1))
    assert result.outcome == Outcome.STOPPED and result.error == "nobody reads it"
    assert 0 < result.text.count("word") < 100


def test_unknown_engines_and_templates_are_refused(fake_engine):
    with pytest.raises(GenerationRefused) as unknown:
        generate(request(engine="nope"))
    assert unknown.value.code == "unknown_engine"
    with pytest.raises(GenerationRefused) as bad:
        generate(request(template="Hello {{customer_shoe_size}}"))
    assert bad.value.code == "invalid_prompt" and fake_engine.calls == []


def test_a_question_too_long_for_the_window_fails_instead_of_being_cut(fake_engine, settings):
    settings.INFERENCE_MAX_MODEL_LEN = 64
    result = generate(request("word " * 200))
    assert result.outcome == Outcome.FAILED and "exceeds" in result.error and fake_engine.calls == []


def test_every_outcome_is_counted_by_purpose(fake_engine):
    before = counted("suggestion", Outcome.ANSWERED)
    generate(request(purpose="suggestion"))
    assert counted("suggestion", Outcome.ANSWERED) == before + 1


def test_every_kind_of_bot_output_goes_through_the_pipeline(fake_engine):
    from chat import services
    from chat.assist import handoff_summary_generate, reply_suggest
    from chat.completions import completion_generate, completion_job_new
    from chat.reply import reply_generate

    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="Where is my parcel?")
    purposes = ("reply", "completion", "summary", "suggestion")
    before = {purpose: counted(purpose, Outcome.ANSWERED) for purpose in purposes}
    assert reply_generate(customer_message_id=message.pk).content == "Hello there!"
    completion_generate(completion_job_new(turns=[["user", "hi"]], overrides={}))
    assert handoff_summary_generate(conversation_id=conversation.id) == "Hello there!"
    assert reply_suggest(conversation_id=conversation.id, agent_username="ann") == "Hello there!"
    assert {purpose: counted(purpose, Outcome.ANSWERED) - before[purpose] for purpose in purposes} == dict.fromkeys(
        purposes, 1.0
    )
    system_prompts = [turns[0].content for turns, _params in fake_engine.calls]
    assert system_prompts[2].startswith("Summarize") and "draft replies" in system_prompts[3]


def test_a_reply_stores_when_each_stage_before_its_first_text_ended(fake_engine, monkeypatch):
    """Message.timings: ms after the customer's message was stored, in the order the stages happen."""
    import time

    from chat import services
    from chat.metrics import REPLY_MARKS
    from chat.reply import reply_generate

    fake_engine.script = ["Standard shipping ", "takes three days."]
    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="How long is shipping?")
    queued_at = message.created_at.timestamp()  # queued as it was stored
    reply = reply_generate(customer_message_id=message.pk, queued_at=queued_at)
    reply.refresh_from_db()
    timings = reply.timings
    assert set(timings) == set(REPLY_MARKS)  # every stage happened (retrieval too: the plan found no passage)
    assert timings["queued"] == 0
    in_order = [timings[name] for name in REPLY_MARKS]
    assert in_order == sorted(in_order)
    assert timings["first_publish"] <= (time.time() - message.created_at.timestamp()) * 1000


def test_deltas_say_where_they_start_so_a_socket_sees_a_gap(fake_engine, monkeypatch):
    from chat import services
    from chat.reply import reply_generate

    published = []
    monkeypatch.setattr(services, "reply_delta_publish", lambda **kwargs: published.append(kwargs))
    monkeypatch.setattr("django.conf.settings.CHAT_STREAM_COALESCE_MS", 0)
    fake_engine.script = ["Standard shipping ", "takes three days."]
    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="How long is shipping?")
    reply_generate(customer_message_id=message.pk)
    offsets = [(call["offset"], call["text"]) for call in published]
    assert offsets == [(0, "Standard shipping "), (18, "takes three days.")]


def test_a_reply_that_cannot_be_stored_ends_failed_not_streaming_for_ever(fake_engine, monkeypatch):
    from chat import services
    from chat.models import Message
    from chat.reply import reply_generate

    def broken(**_kwargs):
        raise IndexError("a bug while storing")

    monkeypatch.setattr(services, "reply_complete", broken)
    fake_engine.script = ["Standard shipping takes three days."]
    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="How long is shipping?")
    with pytest.raises(IndexError):
        reply_generate(customer_message_id=message.pk)
    reply = Message.objects.get(in_reply_to=message)
    assert reply.state == Message.State.FAILED and reply.error == "internal error: IndexError"
    assert reply.content == "Standard shipping takes three days."  # what the customer saw stays


def test_a_database_blip_during_the_once_a_second_check_does_not_stop_the_reply(monkeypatch):
    from django.db import OperationalError

    from chat import services
    from chat.reply import ReplyPublisher

    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="How long is shipping?")
    reply = services.reply_start(customer_message_id=message.pk)

    class Blip:
        def filter(self, **_kwargs):
            raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr("chat.reply.Conversation.objects", Blip())
    ReplyPublisher(reply).still_wanted()  # no exception: streaming goes on, the check comes again
