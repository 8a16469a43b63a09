"""Writes to chat data. Every change that clients should hear about is broadcast here, after commit."""

import secrets
import uuid
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import broadcast, session_cache
from chat.models import Conversation, Message
from chat.selectors import secret_hash
from chat.serializers import message_to_dict


class MessageRejected(ValueError):
    """A customer message that is not accepted; `code` is machine-readable, the text is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReplyStats:
    """Figures of one finished generation, stored on the bot message."""

    engine: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: int | None
    tokens_per_s: float | None


def _broadcast_on_commit(conversation: Conversation, event: dict) -> None:
    transaction.on_commit(partial(broadcast.group_send, conversation.group_name, event))


def _conversation_lock(conversation_id: uuid.UUID) -> Conversation:
    """The conversation, its row locked until the caller's transaction ends: writers of one conversation queue."""
    return Conversation.objects.select_for_update().get(pk=conversation_id)


def _seq_take(conversation: Conversation) -> int:
    """The next sequence number of a locked conversation."""
    conversation.last_seq += 1
    conversation.save(update_fields=["last_seq", "updated_at"])
    return conversation.last_seq


def conversation_start(
    *, language: str = "en", region: str = "", customer_name: str = "", customer_email: str = ""
) -> tuple[Conversation, str]:
    """Open a conversation in bot mode. Returns it with its secret, which is shown once and stored hashed."""
    secret = secrets.token_urlsafe(32)
    conversation = Conversation.objects.create(
        secret_hash=secret_hash(secret),
        language=language[:16] or "en",
        region=region[:64],
        customer_name=customer_name[:120],
        customer_email=customer_email,
    )
    return conversation, secret


def message_clean(content) -> str:
    """The message text as it will be stored, or MessageRejected saying why not."""
    if not isinstance(content, str):
        raise MessageRejected("invalid_message", "The message must be text.")
    content = content.strip()
    if not content:
        raise MessageRejected("empty_message", "The message is empty.")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(content) > limit:
        raise MessageRejected("message_too_long", f"The message is {len(content)} characters; the limit is {limit}.")
    return content


@transaction.atomic
def message_post_customer(*, conversation_id: uuid.UUID, content, client_id: str = "") -> tuple[Message, bool]:
    """Store a customer message and, in bot mode, have the bot answer it once the message is committed.

    A resend with the same `client_id` returns the stored message and `created=False` instead of a duplicate.
    """
    content = message_clean(content)
    client_id = client_id if isinstance(client_id, str) else ""
    if len(client_id) > 64:
        raise MessageRejected("invalid_client_id", "client_id is at most 64 characters.")
    conversation = _conversation_lock(conversation_id)
    # Checked under the row lock, so two concurrent resends cannot both get through.
    if client_id:
        existing = Message.objects.filter(conversation_id=conversation_id, client_id=client_id).first()
        if existing is not None:
            return existing, False
    seq = _seq_take(conversation)
    if conversation.status == Conversation.Status.RESOLVED:
        # A customer writing again reopens the conversation with the bot.
        conversation.status = Conversation.Status.BOT
        conversation.resolved_at = None
        conversation.save(update_fields=["status", "resolved_at", "updated_at"])
    message = Message.objects.create(
        conversation=conversation, seq=seq, role=Message.Role.CUSTOMER, content=content, client_id=client_id
    )
    _broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(message)})
    transaction.on_commit(partial(session_cache.turn_append, message))
    if conversation.status == Conversation.Status.BOT:
        from chat.dispatch import reply_enqueue

        transaction.on_commit(partial(reply_enqueue, conversation_id=conversation.id, message_id=message.id))
    return message, True


def _bot_reply_get_or_create(conversation: Conversation, customer_message: Message, **fields) -> tuple[Message, bool]:
    """The bot's one reply to a customer message (conversation locked by the caller), created with `fields`."""
    reply = Message.objects.filter(in_reply_to=customer_message, role=Message.Role.BOT).first()
    if reply is not None:
        return reply, False
    reply = Message.objects.create(
        conversation=conversation,
        seq=_seq_take(conversation),
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
    conversation = _conversation_lock(customer_message.conversation_id)
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
    _broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(reply)})
    return reply


@transaction.atomic
def reply_unavailable(*, customer_message_id: int, error: str) -> Message | None:
    """Record that no reply could even be started (generation backend down) and tell the customer.

    The customer's message stays stored. The failed reply is the same row a later retry of the reply reopens.
    """
    customer_message = Message.objects.get(pk=customer_message_id)
    conversation = _conversation_lock(customer_message.conversation_id)
    reply, created = _bot_reply_get_or_create(
        conversation, customer_message, state=Message.State.FAILED, error=error[:255], completed_at=timezone.now()
    )
    if not created:
        return None
    _broadcast_on_commit(conversation, {"type": "chat.done", "message": message_to_dict(reply)})
    transaction.on_commit(partial(session_cache.turn_append, reply))
    return reply


def reply_delta_publish(*, reply: Message, text: str) -> None:
    """Send a piece of a streaming reply to the conversation's sockets (not stored until the reply ends)."""
    broadcast.group_send(reply.conversation.group_name, {"type": "chat.delta", "seq": reply.seq, "text": text})


@transaction.atomic
def reply_complete(*, reply_id: int, content: str, stats: ReplyStats) -> Message:
    """Store the finished bot reply with its token counts and timing, and tell the clients."""
    reply = Message.objects.select_for_update().select_related("conversation").get(pk=reply_id)
    reply.content = content
    reply.state = Message.State.COMPLETE
    reply.engine = stats.engine
    reply.prompt_tokens = stats.prompt_tokens
    reply.completion_tokens = stats.completion_tokens
    reply.ttft_ms = stats.ttft_ms
    reply.tokens_per_s = stats.tokens_per_s
    reply.completed_at = timezone.now()
    reply.save()
    _broadcast_on_commit(reply.conversation, {"type": "chat.done", "message": message_to_dict(reply)})
    transaction.on_commit(partial(session_cache.turn_append, reply))
    return reply


@transaction.atomic
def reply_fail(*, reply_id: int, content: str, error: str) -> Message:
    """Mark a reply failed, keeping what was streamed, and tell the customer."""
    reply = Message.objects.select_for_update().select_related("conversation").get(pk=reply_id)
    reply.content = content
    reply.state = Message.State.FAILED
    reply.error = error[:255]
    reply.completed_at = timezone.now()
    reply.save()
    _broadcast_on_commit(reply.conversation, {"type": "chat.done", "message": message_to_dict(reply)})
    transaction.on_commit(partial(session_cache.turn_append, reply))
    return reply
