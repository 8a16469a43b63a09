import pytest
from django.core.cache import cache

from chat import services, session_cache
from chat.generation import prompt_build
from chat.models import Conversation, Message
from chat.reply import reply_generation_request
from inference.tests.fakes import FakeEngine
from inference.types import SamplingParams

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def long_conversation(turns: int) -> tuple[Conversation, Message]:
    """A conversation of `turns` stored messages, alternating customer and bot, and the bot reply now starting."""
    conversation, _ = services.conversation_start(language="en")
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            seq=i,
            role=Message.Role.CUSTOMER if i % 2 else Message.Role.BOT,
            content=f"turn {i} " + "words " * (5 + i % 7),
        )
        for i in range(1, turns + 1)
    )
    reply = Message.objects.create(
        conversation=conversation, seq=turns + 1, role=Message.Role.BOT, state=Message.State.STREAMING
    )
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=turns + 1)
    return conversation, reply


def test_cold_path_equals_warm_path(settings):
    settings.SESSION_CACHE_TURNS = 10
    conversation, reply = long_conversation(199)
    cold, cold_hit = session_cache.turns_before(conversation_id=conversation.id, seq=reply.seq)
    warm, warm_hit = session_cache.turns_before(conversation_id=conversation.id, seq=reply.seq)
    assert (cold_hit, warm_hit) == (False, True)
    assert cold == warm
    assert len(cold) == 10 and cold[-1][1].startswith("turn 199 ")
    assert [int(content.split()[1]) for _role, content in cold] == list(range(190, 200))


def test_a_200_turn_conversation_stays_within_the_token_budget_in_order(settings):
    settings.SESSION_CACHE_TURNS = 200
    _conversation, reply = long_conversation(199)
    engine = FakeEngine(max_model_len=300)
    params = SamplingParams(max_tokens=100)
    turns = prompt_build(engine, reply_generation_request(reply), params)  # the reply's history, trimmed
    assert engine.count_tokens(turns) + params.max_tokens <= engine.max_model_len
    assert turns[0].role == "system" and turns[1].role == "user"
    numbers = [int(t.content.split()[1]) for t in turns[1:]]
    assert numbers == sorted(numbers) and numbers[-1] == 199  # the newest question is never dropped
    assert numbers == list(range(numbers[0], 200))  # a contiguous run of the newest turns


def test_live_messages_keep_the_cache_warm_and_equal_to_the_database(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)
    conversation, _ = services.conversation_start()
    stats = services.ReplyStats(engine="fake", prompt_tokens=1, completion_tokens=1, ttft_ms=1, tokens_per_s=None)

    def committed(service, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):  # run what the service does after commit
            return service(**kwargs)

    for i in range(3):
        question, _ = committed(services.message_post_customer, conversation_id=conversation.id, content=f"q{i}")
        reply = committed(services.reply_start, customer_message_id=question.pk)
        history, hit = session_cache.turns_before(conversation_id=conversation.id, seq=reply.seq)
        assert hit == (i > 0)  # the first read fills the cache; later ones find it extended by the services
        cache.delete(session_cache._key(conversation.id))
        from_db, _ = session_cache.turns_before(conversation_id=conversation.id, seq=reply.seq)
        assert history == from_db
        committed(services.reply_complete, reply_id=reply.pk, content=f"a{i}", stats=stats)
    final, hit = session_cache.turns_before(conversation_id=conversation.id, seq=conversation.messages.count() + 1)
    assert hit and [content for _role, content in final] == ["q0", "a0", "q1", "a1", "q2", "a2"]
