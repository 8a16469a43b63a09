"""The bot's replies: asked for after a customer message commits, opened, streamed, then completed or failed.

The protocol that keeps the bot silent once a person has the conversation: every bot write (start, finish, fail)
takes the conversation's row lock and re-checks that the bot still has it; a handoff takes the same lock and
withdraws the replies still streaming. So a reply either lands before the handoff, or never.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.utils import timezone

from chat import broadcast, dispatch, session_cache, tasks
from chat.models import Conversation, Message
from chat.serializers import message_to_dict
from chat.services import reporting
from chat.services.base import broadcast_on_commit, conversation_lock, seq_take
from inference.generation import GenerationStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyStats:
    """Figures of one finished generation, stored on the bot message."""

    engine: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: int | None
    tokens_per_s: float | None

    @classmethod
    def from_generation(cls, stats: GenerationStats) -> "ReplyStats":
        return cls(
            engine=stats.engine,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            ttft_ms=stats.ttft_ms,
            tokens_per_s=stats.tokens_per_s,
        )


def reply_enqueue(*, conversation_id: uuid.UUID, message_id: int, overrides: dict | None = None) -> None:
    """Have the bot answer a committed customer message, without waiting for it.

    If the generation backend cannot take the job (broker down), the customer message stays stored and the
    customer is told at once through a failed reply, instead of waiting for an answer that never comes.
    """
    try:
        dispatch.task_enqueue(tasks.reply_generate_task, message_id, overrides or None, time.time())
    except ValueError:  # an unknown GENERATION_BACKEND: a configuration error, not an outage
        raise
    except Exception as exc:  # kombu/redis raise assorted errors when the broker is down
        logger.error(
            "could not enqueue the reply to message %s in conversation %s: %r", message_id, conversation_id, exc
        )
        reply_unavailable(customer_message_id=message_id, error=f"generation backend unavailable: {exc!r}")


def _bot_reply_get_or_create(conversation: Conversation, customer_message: Message, **fields) -> tuple[Message, bool]:
    """The bot's one reply to a customer message (conversation locked by the caller), created with `fields`."""
    reply = Message.objects.filter(in_reply_to=customer_message, role=Message.Role.BOT).first()
    if reply is not None:
        return reply, False
    reply = Message.objects.create(
        conversation=conversation,
        seq=seq_take(conversation),
        role=Message.Role.BOT,
        in_reply_to=customer_message,
        **fields,
    )
    return reply, True


@transaction.atomic
def reply_start(*, customer_message_id: int) -> Message | None:
    """Open (or, on a retried task, reopen) the bot's streaming reply to a customer message.

    Returns None when the bot must not answer: the conversation is no longer with the bot, a newer customer
    message supersedes this one (its own reply will answer both), or the reply was already completed.
    """
    customer_message = Message.objects.get(pk=customer_message_id)
    conversation = conversation_lock(customer_message.conversation_id)
    if conversation.status != Conversation.Status.BOT:
        return None
    newer = conversation.messages.filter(role=Message.Role.CUSTOMER, seq__gt=customer_message.seq).exists()
    if newer:
        return None
    reply, created = _bot_reply_get_or_create(conversation, customer_message, state=Message.State.STREAMING)
    if not created:
        if reply.state == Message.State.COMPLETE:
            return None
        # A retry (worker died mid-stream, or the broker was down): start the same message over.
        reply.content, reply.state, reply.error, reply.completed_at = "", Message.State.STREAMING, "", None
        reply.save(update_fields=["content", "state", "error", "completed_at"])
    broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(reply)})
    return reply


@transaction.atomic
def reply_unavailable(*, customer_message_id: int, error: str) -> Message | None:
    """Record that no reply could even be started (generation backend down) and tell the customer.

    The customer's message stays stored. The failed reply is the same row a later retry of the reply reopens.
    """
    customer_message = Message.objects.get(pk=customer_message_id)
    conversation = conversation_lock(customer_message.conversation_id)
    reply, created = _bot_reply_get_or_create(
        conversation, customer_message, state=Message.State.FAILED, error=error[:255], completed_at=timezone.now()
    )
    if not created:
        return None
    broadcast_on_commit(conversation, {"type": "chat.done", "message": message_to_dict(reply)})
    transaction.on_commit(partial(session_cache.turn_append, reply))
    return reply


def reply_delta_publish(*, reply: Message, text: str, offset: int = 0) -> None:
    """Send a piece of a streaming reply to the conversation's sockets (not stored until the reply ends).

    `offset` is how many characters of the reply came before this piece: a socket that receives a piece not
    starting where the last one ended knows it missed one (the channel layer drops when full) and resumes from the
    database (chat.consumers). The first piece carries its wall-clock publish time, so the socket can time its own
    delivery stage.
    """
    conversation = reply.conversation
    event = {
        "type": "chat.delta",
        "conversation": str(conversation.id),
        "seq": reply.seq,
        "text": text,
        "offset": offset,
    }
    if offset == 0:
        event["published_at"] = time.time()
    broadcast.group_send(conversation.group_name, event)


def _reply_locked_if_bot_may_speak(reply_id: int) -> Message | None:
    """The reply, its conversation locked, if the bot still has the conversation; else the reply is withdrawn.

    This re-check under the row lock is what keeps the bot silent after a handoff, even for a reply that was
    streaming when it happened.
    """
    conversation_id = Message.objects.filter(pk=reply_id).values_list("conversation_id", flat=True).order_by().first()
    if conversation_id is None:  # already withdrawn by the handoff
        return None
    conversation = conversation_lock(conversation_id)
    reply = Message.objects.filter(pk=reply_id).first()
    if reply is None:  # withdrawn while we waited for the lock
        return None
    reply.conversation = conversation
    if conversation.status == Conversation.Status.BOT:
        return reply
    reply_withdraw(reply)
    return None


def reply_withdraw(reply: Message) -> None:
    """Delete an unfinished bot reply and tell the clients to remove what they showed of it."""
    seq, conversation = reply.seq, reply.conversation
    reply.delete()
    broadcast_on_commit(conversation, {"type": "chat.withdrawn", "seq": seq})


def replies_withdraw_unfinished(conversation: Conversation) -> None:
    """Withdraw every bot reply still streaming in a locked conversation (a person takes over, or it ends)."""
    for reply in conversation.messages.filter(role=Message.Role.BOT, state=Message.State.STREAMING):
        reply.conversation = conversation
        reply_withdraw(reply)


def _reply_finish(reply: Message, **fields) -> Message:
    for name, value in fields.items():
        setattr(reply, name, value)
    reply.completed_at = timezone.now()
    reply.save(update_fields=[*fields, "completed_at"])
    if reply.state == Message.State.COMPLETE:
        reporting.on_bot_reply(reply.conversation, reply)
    broadcast_on_commit(reply.conversation, {"type": "chat.done", "message": message_to_dict(reply)})
    transaction.on_commit(partial(session_cache.turn_append, reply))
    return reply


@transaction.atomic
def reply_complete(
    *,
    reply_id: int,
    content: str,
    stats: ReplyStats,
    grounding: str = "",
    sources: list[dict] | None = None,
    fact_guard_tripped: bool = False,
    timings: dict[str, int] | None = None,
) -> Message | None:
    """Store the finished bot reply with its token counts, timing and sources, and tell the clients.

    `timings`: when each stage before its first text ended (Message.timings).

    None if the conversation was handed off meanwhile: then the reply is withdrawn instead.
    """
    reply = _reply_locked_if_bot_may_speak(reply_id)
    if reply is None:
        return None
    return _reply_finish(
        reply,
        content=content,
        state=Message.State.COMPLETE,
        engine=stats.engine,
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        ttft_ms=stats.ttft_ms,
        tokens_per_s=stats.tokens_per_s,
        grounding=grounding,
        sources=sources or [],
        fact_guard_tripped=fact_guard_tripped,
        timings=timings or {},
    )


@transaction.atomic
def reply_fail(*, reply_id: int, content: str, error: str, timings: dict[str, int] | None = None) -> Message | None:
    """Mark a reply failed, keeping what was streamed, and tell the customer (withdrawn if handed off meanwhile)."""
    reply = _reply_locked_if_bot_may_speak(reply_id)
    if reply is None:
        return None
    return _reply_finish(reply, content=content, state=Message.State.FAILED, error=error[:255], timings=timings or {})
