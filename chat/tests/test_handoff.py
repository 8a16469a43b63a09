"""Handing a conversation to a person: the triggers, the ticket, and the bot's silence afterwards."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.models import Conversation, HandoffReason, Message
from chat.tests.test_consumers import hello, receive_until
from helpdesk.models import Ticket
from inference.engines import EngineError, engine_get, engine_reset

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ungrounded")]


def reply_calls(fake_engine) -> list:
    """The engine calls that were bot replies (not handoff summaries)."""
    return [call for call in fake_engine.calls if not call[0][0].content.startswith("Summarize")]


def conversation_row(conversation_id) -> Conversation:
    return Conversation.objects.select_related("handoff_message").get(pk=conversation_id)


@database_sync_to_async
def bot_messages(conversation_id) -> list[tuple[str, str]]:
    return list(Message.objects.filter(conversation_id=conversation_id, role="bot").values_list("state", "content"))


@pytest.mark.parametrize("text", ["转人工", "Can I talk to an agent?", "human"])
async def test_asking_for_a_person_hands_off_without_a_bot_reply(text, fake_engine, in_process_generation):
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": text})
    frames = await receive_until(communicator, "status")
    assert frames[-1]["status"] == "queued"
    notice = next(f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "system")
    assert "member of our team" in notice["content"]
    await asyncio.sleep(0.5)
    assert await bot_messages(conv.id) == [] and reply_calls(fake_engine) == []
    row = await database_sync_to_async(conversation_row)(conv.id)
    assert row.status == "queued" and row.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert row.handoff_message.content == text
    ticket = await database_sync_to_async(Ticket.objects.get)(conversation_id=conv.id)
    assert ticket.status == Ticket.Status.NEW and ticket.subject == text
    await communicator.disconnect()


async def test_the_models_handoff_signal_never_reaches_the_customer(fake_engine, in_process_generation):
    fake_engine.script = ["I'm sorry", ", I can't", " help with that. [[HAND", "OFF]]", " extra"]
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "Can you change my contract terms?"})
    frames = await receive_until(communicator, "status")
    shown = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert "[" not in shown and "HANDOFF" not in shown
    assert any(f["type"] == "withdrawn" for f in frames)  # the partial bot bubble is taken back
    assert await bot_messages(conv.id) == []
    row = await database_sync_to_async(conversation_row)(conv.id)
    assert row.status == "queued" and row.handoff_reason == HandoffReason.MODEL_DEFERRED
    await communicator.disconnect()


async def test_bot_stays_silent_after_handoff_even_for_a_reply_mid_stream(fake_engine, in_process_generation):
    fake_engine.script = ["word "] * 200
    engine = await database_sync_to_async(engine_get)()
    engine.delay_s = 0.03  # a 6-second reply
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "Tell me everything about shipping"})
    frames = []
    while not any(f["type"] == "delta" for f in frames):
        frames.append(await communicator.receive_json_from(5))

    handed_off = await database_sync_to_async(services.conversation_hand_off)(
        conversation_id=conv.id, reason=HandoffReason.CUSTOMER_REQUEST
    )
    assert handed_off
    frames += await receive_until(communicator, "status")
    assert any(f["type"] == "withdrawn" for f in frames)
    # Deltas already on their way may still arrive until the streamer's next check (1 s); then nothing.
    await asyncio.sleep(1.5)
    while not await communicator.receive_nothing(0.1):
        await communicator.receive_json_from()
    # The customer keeps writing; the bot must not answer, and the stopped reply must never be stored.
    await communicator.send_json_to({"type": "message", "content": "hello? anyone?"})
    await asyncio.sleep(2.5)  # longer than the streamer's check interval
    assert await bot_messages(conv.id) == []
    late = []
    while not await communicator.receive_nothing(0.2):
        late.append(await communicator.receive_json_from())
    assert not [f for f in late if f["type"] in ("delta", "done")]
    assert len(reply_calls(fake_engine)) == 1  # no reply was even attempted for the second message
    await communicator.disconnect()


async def test_an_engine_failure_without_a_rule_hands_off(fake_engine, in_process_generation):
    fake_engine.script = [EngineError("engine down")]
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "Where is my parcel?"})
    frames = await receive_until(communicator, "status")
    assert frames[-1]["status"] == "queued"
    row = await database_sync_to_async(conversation_row)(conv.id)
    assert row.handoff_reason == HandoffReason.ENGINE_FAILURE
    await communicator.disconnect()


def test_a_second_handoff_changes_nothing(db):
    conv, _ = services.conversation_start()
    assert services.conversation_hand_off(conversation_id=conv.id, reason=HandoffReason.CUSTOMER_REQUEST)
    assert not services.conversation_hand_off(conversation_id=conv.id, reason=HandoffReason.MODEL_DEFERRED)
    row = conversation_row(conv.id)
    assert row.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert Ticket.objects.filter(conversation_id=conv.id).count() == 1
    notices = Message.objects.filter(conversation_id=conv.id, role="system", content__startswith="Connecting you")
    assert notices.count() == 1


async def test_the_agent_gets_a_summary_of_the_handed_off_conversation(fake_engine, in_process_generation):
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "My order 4521 never arrived"})
    await receive_until(communicator, "done")
    fake_engine.script = ["Customer's order 4521", " has not arrived."]
    await communicator.send_json_to({"type": "message", "content": "I want a human"})
    await receive_until(communicator, "status")
    for _ in range(50):
        row = await database_sync_to_async(conversation_row)(conv.id)
        if row.handoff_summary:
            break
        await asyncio.sleep(0.1)
    assert row.handoff_summary == "Customer's order 4521 has not arrived."
    summary_turns = [call[0] for call in fake_engine.calls if call[0][0].content.startswith("Summarize")][-1]
    assert "order 4521 never arrived" in summary_turns[1].content  # the transcript reached the model
    await communicator.disconnect()


async def test_with_no_agent_online_the_customer_is_told_and_can_leave_an_email(fake_engine, in_process_generation):
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "转人工"})
    frames = await receive_until(communicator, "contact_request")
    assert any("No one from our team is available" in f["message"]["content"] for f in frames if f["type"] == "message")
    await communicator.send_json_to({"type": "contact", "name": "Li", "email": "not-an-email"})
    assert (await communicator.receive_json_from())["code"] == "invalid_email"
    await communicator.send_json_to({"type": "contact", "name": "Li", "email": "li@example.com"})
    await receive_until(communicator, "contact_saved")
    row = await database_sync_to_async(conversation_row)(conv.id)
    assert (row.customer_name, row.customer_email) == ("Li", "li@example.com")
    assert await database_sync_to_async(Ticket.objects.filter(conversation_id=conv.id).exists)()
    await communicator.disconnect()


async def test_a_message_too_long_for_the_window_fails_its_own_conversation_not_the_bot(
    fake_engine, in_process_generation, settings
):
    """One customer's oversized message used to mark the bot as failing for every site (widgets went offline)."""
    from django.core.cache import cache

    from chat.availability import availability

    settings.INFERENCE_MAX_MODEL_LEN = 600  # the fake counts words: 700 words cannot fit
    engine_reset()  # the fake is built again from the settings, with the small window
    await database_sync_to_async(cache.clear)()
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "why " * 700})
    frames = await receive_until(communicator, "status")
    assert frames[-1]["status"] == "queued"  # this customer goes to a person
    row = await database_sync_to_async(conversation_row)(conv.id)
    assert row.handoff_reason == HandoffReason.ENGINE_FAILURE
    assert not (await database_sync_to_async(availability)(None)).bot_failing  # everyone else keeps the bot
    await communicator.disconnect()

    # A real engine failure still marks it, so widgets offer leave-a-message while the bot is down.
    fake_engine.script = [EngineError("engine down")]
    conv, secret = await database_sync_to_async(services.conversation_start)()
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "Where is my parcel?"})
    await receive_until(communicator, "status")
    assert (await database_sync_to_async(availability)(None)).bot_failing
    await communicator.disconnect()
