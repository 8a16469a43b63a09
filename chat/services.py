"""Writes to chat data. Every change that clients should hear about is broadcast here, after commit."""

import logging
import secrets
import uuid
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import broadcast, ratelimit, session_cache, signals, strings
from chat.models import ApiKey, Conversation, HandoffReason, Message, Rating, Site
from chat.selectors import secret_hash
from chat.serializers import message_to_dict, staff_message_to_dict
from inference.deferral import customer_asks_for_human

logger = logging.getLogger(__name__)


class MessageRejected(ValueError):
    """A customer message that is not accepted; `code` is machine-readable, the text is for people.

    `retry_after` (seconds) is set when the same message will be accepted later (a rate limit).
    """

    def __init__(self, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


# Messages per minute per conversation when it has no site (opened through the API).
MESSAGES_PER_MINUTE_DEFAULT = 20


@dataclass(frozen=True)
class ReplyStats:
    """Figures of one finished generation, stored on the bot message."""

    engine: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: int | None
    tokens_per_s: float | None


def _broadcast_on_commit(conversation: Conversation, event: dict) -> None:
    event = {**event, "conversation": str(conversation.id)}
    transaction.on_commit(partial(broadcast.group_send, conversation.group_name, event))


def _conversation_lock(conversation_id: uuid.UUID) -> Conversation:
    """The conversation, its row locked until the caller's transaction ends: writers of one conversation queue."""
    return Conversation.objects.select_for_update().get(pk=conversation_id)


def _seq_take(conversation: Conversation) -> int:
    """The next sequence number of a locked conversation."""
    conversation.last_seq += 1
    conversation.save(update_fields=["last_seq", "updated_at"])
    return conversation.last_seq


class ConversationRefused(ValueError):
    """A new conversation that is not opened (rate limit); `retry_after` says when to try again, in seconds."""

    def __init__(self, code: str, message: str, retry_after: int):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


def conversation_start(
    *,
    site: Site | None = None,
    language: str = "en",
    region: str = "",
    customer_name: str = "",
    customer_email: str = "",
    page_url: str = "",
    client_ip: str | None = None,
) -> tuple[Conversation, str]:
    """Open a conversation in bot mode. Returns it with its secret, which is shown once and stored hashed.

    With a site and the customer's IP address, the site's limit of new conversations per IP applies
    (ConversationRefused when it is reached).
    """
    if site is not None and client_ip:
        verdict = ratelimit.hit(
            f"conv:{site.pk}:{client_ip}",
            limit=site.conversations_per_ip,
            window_s=site.conversations_window_hours * 3600,
        )
        if not verdict.allowed:
            raise ConversationRefused(
                "rate_limited",
                "Too many new conversations from your network; please try again later.",
                verdict.retry_after,
            )
    secret = secrets.token_urlsafe(32)
    conversation = Conversation.objects.create(
        site=site,
        secret_hash=secret_hash(secret),
        language=language[:16] or "en",
        region=region[:64],
        customer_name=customer_name[:120],
        customer_email=customer_email,
        page_url=page_url[:500],
    )
    return conversation, secret


def conversation_for_api_session(
    *,
    api_key: ApiKey,
    session_id: str,
    language: str = "en",
    region: str = "",
    customer_name: str = "",
    customer_email: str = "",
) -> Conversation:
    """The conversation an integration's `session_id` stands for (per API key), opened on first use."""
    conversation = Conversation.objects.filter(api_key=api_key, session_id=session_id).first()
    if conversation is not None:
        return conversation
    try:
        with transaction.atomic():
            conversation, _secret = conversation_start(
                language=language, region=region, customer_name=customer_name, customer_email=customer_email
            )
            conversation.api_key, conversation.session_id = api_key, session_id
            conversation.save(update_fields=["api_key", "session_id", "updated_at"])
            return conversation
    except IntegrityError:  # two first requests of one session at once: the other one opened it
        return Conversation.objects.get(api_key=api_key, session_id=session_id)


@transaction.atomic
def message_leave(
    *,
    site: Site,
    content,
    customer_name: str,
    customer_email: str,
    language: str = "en",
    region: str = "",
    page_url: str = "",
    client_ip: str | None = None,
) -> tuple[Conversation, str]:
    """Nobody can answer now: store the customer's message as a conversation waiting for the team (a ticket).

    Returns the conversation and its secret, so the customer can come back to it and read the answer there.
    """
    content = message_clean(content)
    conversation, secret = conversation_start(
        site=site,
        language=language,
        region=region,
        customer_name=customer_name,
        customer_email=customer_email,
        page_url=page_url,
        client_ip=client_ip,
    )
    conversation = _conversation_lock(conversation.id)
    message = Message.objects.create(
        conversation=conversation, seq=_seq_take(conversation), role=Message.Role.CUSTOMER, content=content
    )
    conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.OFFLINE_MESSAGE, message_id=message.id)
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
def message_post_customer(
    *, conversation_id: uuid.UUID, content, client_id: str = "", overrides: dict | None = None
) -> tuple[Message, bool]:
    """Store a customer message and, in bot mode, have the bot answer it once the message is committed.

    A resend with the same `client_id` returns the stored message and `created=False` instead of a duplicate.
    `overrides` (sampling parameters from an API request) go with the reply job to the engine.
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
    per_minute = conversation.site.messages_per_minute if conversation.site_id else MESSAGES_PER_MINUTE_DEFAULT
    verdict = ratelimit.hit(f"msg:{conversation.id}", limit=per_minute, window_s=60)
    if not verdict.allowed:
        raise MessageRejected(
            "rate_limited",
            f"You are sending messages too quickly. Your message will be sent in {verdict.retry_after} s.",
            verdict.retry_after,
        )
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
        if conversation.site_id and not conversation.site.bot_enabled:
            conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.BOT_OFF, message_id=message.id)
        elif customer_asks_for_human(content):
            conversation_hand_off(
                conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST, message_id=message.id
            )
        else:
            from chat.dispatch import reply_enqueue

            transaction.on_commit(
                partial(reply_enqueue, conversation_id=conversation.id, message_id=message.id, overrides=overrides)
            )
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
    conversation = reply.conversation
    broadcast.group_send(
        conversation.group_name,
        {"type": "chat.delta", "conversation": str(conversation.id), "seq": reply.seq, "text": text},
    )


def _reply_locked_if_bot_may_speak(reply_id: int) -> Message | None:
    """The reply, its conversation locked, if the bot still has the conversation; else the reply is withdrawn.

    This re-check under the row lock is what keeps the bot silent after a handoff, even for a reply that was
    streaming when it happened.
    """
    reply = Message.objects.select_related("conversation").filter(pk=reply_id).first()
    if reply is None:  # already withdrawn by the handoff
        return None
    conversation = _conversation_lock(reply.conversation_id)
    if not Message.objects.filter(pk=reply_id).exists():  # withdrawn while we waited for the lock
        return None
    if conversation.status == Conversation.Status.BOT:
        reply.conversation = conversation
        return reply
    _reply_withdraw(reply)
    return None


def _reply_withdraw(reply: Message) -> None:
    """Delete an unfinished bot reply and tell the clients to remove what they showed of it."""
    seq, conversation = reply.seq, reply.conversation
    reply.delete()
    _broadcast_on_commit(conversation, {"type": "chat.withdrawn", "seq": seq})


@transaction.atomic
def reply_complete(*, reply_id: int, content: str, stats: ReplyStats) -> Message | None:
    """Store the finished bot reply with its token counts and timing, and tell the clients.

    None if the conversation was handed off meanwhile: then the reply is withdrawn instead.
    """
    reply = _reply_locked_if_bot_may_speak(reply_id)
    if reply is None:
        return None
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
def reply_fail(*, reply_id: int, content: str, error: str) -> Message | None:
    """Mark a reply failed, keeping what was streamed, and tell the customer (withdrawn if handed off meanwhile)."""
    reply = _reply_locked_if_bot_may_speak(reply_id)
    if reply is None:
        return None
    reply.content = content
    reply.state = Message.State.FAILED
    reply.error = error[:255]
    reply.completed_at = timezone.now()
    reply.save()
    _broadcast_on_commit(reply.conversation, {"type": "chat.done", "message": message_to_dict(reply)})
    transaction.on_commit(partial(session_cache.turn_append, reply))
    return reply


@transaction.atomic
def conversation_hand_off(*, conversation_id: uuid.UUID, reason: str, message_id: int | None = None) -> bool:
    """Move a bot conversation to the agents' queue. False if it was not with the bot (already handed off).

    From here the bot never speaks until an agent hands the conversation back: replies not yet finished are
    withdrawn now, and every later bot write re-checks the status under this same row lock.
    """
    conversation = _conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.BOT:
        return False
    for reply in conversation.messages.filter(role=Message.Role.BOT, state=Message.State.STREAMING):
        reply.conversation = conversation
        _reply_withdraw(reply)
    conversation.status = Conversation.Status.QUEUED
    conversation.handoff_reason = reason
    conversation.handoff_message_id = message_id
    conversation.handoff_summary = ""
    conversation.handed_off_at = timezone.now()
    conversation.assignee = None
    conversation.save()
    if reason == HandoffReason.OFFLINE_MESSAGE:
        _system_message(conversation, "offline_received", email=conversation.customer_email)
    else:
        _system_message(conversation, "handoff")
    _broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status})
    signals.conversation_handed_off.send(sender=Conversation, conversation=conversation, reason=reason)
    transaction.on_commit(partial(_enqueue_quietly, "handoff_summary_task", str(conversation.id)))
    return True


def _enqueue_quietly(task_name: str, *args) -> None:
    """Start a helper task; if the backend is down, log it (the summary or draft is a nicety, not a promise)."""
    from chat import dispatch, tasks

    try:
        dispatch.task_enqueue(getattr(tasks, task_name), *args)
    except Exception:
        logger.exception("could not start %s%r", task_name, args)


def reply_suggest_request(*, conversation_id: uuid.UUID, agent) -> None:
    """Ask the model for a draft reply; it arrives on the staff group as a `staff.suggestion` event."""
    _enqueue_quietly("reply_suggest_task", str(conversation_id), agent.get_username())


@transaction.atomic
def conversation_summary_set(*, conversation_id: uuid.UUID, summary: str) -> None:
    """Store the model's summary of a handed-off conversation and show it to the staff."""
    conversation = _conversation_lock(conversation_id)
    conversation.handoff_summary = summary[:2000]
    conversation.save(update_fields=["handoff_summary", "updated_at"])
    event = {"type": "staff.summary", "conversation": str(conversation.id), "summary": conversation.handoff_summary}
    transaction.on_commit(partial(broadcast.group_send, conversation.staff_group_name, event))


def reply_suggestion_send(*, conversation_id: uuid.UUID, agent_username: str, text: str) -> None:
    """Hand a drafted reply to the staff side (the requesting agent's console fills it in). Nothing is stored."""
    conversation = Conversation(id=uuid.UUID(str(conversation_id)))
    event = {"type": "staff.suggestion", "conversation": str(conversation.id), "for": agent_username, "text": text}
    broadcast.group_send(conversation.staff_group_name, event)


@transaction.atomic
def conversation_assign(*, conversation_id: uuid.UUID, agent, expected_status: str) -> bool:
    """Give the conversation to `agent` if its status is still `expected_status`; exactly one caller wins a race."""
    conversation = _conversation_lock(conversation_id)
    if conversation.status != expected_status:
        return False
    conversation.status = Conversation.Status.AGENT
    conversation.assignee = agent
    conversation.save(update_fields=["status", "assignee", "updated_at"])
    _broadcast_on_commit(
        conversation, {"type": "chat.status", "status": conversation.status, "assignee": agent.get_username()}
    )
    return True


class ActionRefused(ValueError):
    """A staff or customer action that the conversation's state does not allow; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@transaction.atomic
def message_post_agent(*, conversation_id: uuid.UUID, agent, content, client_id: str = "") -> Message:
    """An agent's reply to the customer; only the conversation's assignee may send it."""
    content = message_clean(content)
    conversation = _conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.AGENT or conversation.assignee_id != agent.pk:
        raise ActionRefused("not_assigned", "Claim the conversation before replying.")
    if client_id:
        existing = conversation.messages.filter(client_id=client_id[:64]).first()
        if existing is not None:
            return existing
    message = Message.objects.create(
        conversation=conversation,
        seq=_seq_take(conversation),
        role=Message.Role.AGENT,
        content=content,
        client_id=client_id[:64],
        author=agent,
    )
    _broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(message)})
    transaction.on_commit(partial(session_cache.turn_append, message))
    return message


@transaction.atomic
def note_post(*, conversation_id: uuid.UUID, agent, content) -> Message:
    """A private note for the staff. It is sent only to the staff group: customers never receive it."""
    content = message_clean(content)
    conversation = _conversation_lock(conversation_id)
    note = Message.objects.create(
        conversation=conversation, seq=_seq_take(conversation), role=Message.Role.NOTE, content=content, author=agent
    )
    event = {"type": "staff.note", "conversation": str(conversation.id), "message": staff_message_to_dict(note)}
    transaction.on_commit(partial(broadcast.group_send, conversation.staff_group_name, event))
    return note


@transaction.atomic
def conversation_hand_back(*, conversation_id: uuid.UUID, agent) -> None:
    """The assignee gives the conversation back to the bot."""
    conversation = _conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.AGENT or conversation.assignee_id != agent.pk:
        raise ActionRefused("not_assigned", "Only the assigned agent can hand the conversation back.")
    conversation.status = Conversation.Status.BOT
    conversation.assignee = None
    conversation.save(update_fields=["status", "assignee", "updated_at"])
    _system_message(conversation, "handback")
    _broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status})


@transaction.atomic
def conversation_resolve(*, conversation_id: uuid.UUID, agent=None, by_customer: bool = False) -> None:
    """Close the conversation (an agent, or the customer ending the chat); the customer is then asked to rate it."""
    conversation = _conversation_lock(conversation_id)
    if agent is not None and conversation.assignee_id not in (None, agent.pk):
        raise ActionRefused("not_assigned", "Another agent has this conversation.")
    if conversation.status == Conversation.Status.RESOLVED:
        return
    for reply in conversation.messages.filter(role=Message.Role.BOT, state=Message.State.STREAMING):
        reply.conversation = conversation
        _reply_withdraw(reply)
    conversation.status = Conversation.Status.RESOLVED
    conversation.resolved_at = timezone.now()
    conversation.save(update_fields=["status", "resolved_at", "updated_at"])
    _system_message(conversation, "ended_by_customer" if by_customer else "resolved")
    _broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status})
    signals.conversation_resolved.send(sender=Conversation, conversation=conversation)


@transaction.atomic
def rating_create(*, conversation_id: uuid.UUID, score, comment="") -> Rating:
    """The customer's one rating of a resolved conversation (1-5 stars and an optional comment)."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise ActionRefused("invalid_rating", "A rating is a whole number of stars from 1 to 5.")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise ActionRefused("invalid_rating", "The comment must be text of at most 2000 characters.")
    conversation = _conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.RESOLVED:
        raise ActionRefused("not_resolved", "A conversation can be rated once it is resolved.")
    if Rating.objects.filter(conversation=conversation).exists():
        raise ActionRefused("already_rated", "This conversation has already been rated. Thank you!")
    rating = Rating.objects.create(conversation=conversation, score=score, comment=comment.strip())
    signals.conversation_rated.send(sender=Conversation, conversation=conversation, rating=rating)
    return rating


def _system_message(conversation: Conversation, key: str, **values: str) -> Message:
    """A system message (chat.strings[key]) in the conversation's language."""
    message = Message.objects.create(
        conversation=conversation,
        seq=_seq_take(conversation),
        role=Message.Role.SYSTEM,
        content=strings.text(key, conversation.language, **values),
    )
    _broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(message)})
    return message


def typing_signal(*, conversation_id: uuid.UUID, role: str, on: bool) -> None:
    """Tell the other side that someone is (or stopped) typing. Nothing is stored."""
    conversation = Conversation(id=uuid.UUID(str(conversation_id)))
    broadcast.group_send(
        conversation.group_name,
        {"type": "chat.typing", "conversation": str(conversation_id), "role": role, "on": on},
    )


@transaction.atomic
def conversation_reassign(*, conversation_id: uuid.UUID, from_agent, to_agent) -> None:
    """Move a conversation from its assignee to another agent."""
    conversation = _conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.AGENT or conversation.assignee_id != from_agent.pk:
        raise ActionRefused("not_assigned", "Only the assigned agent can transfer the conversation.")
    conversation.assignee = to_agent
    conversation.save(update_fields=["assignee", "updated_at"])
    _system_message(conversation, "transferred")
    _broadcast_on_commit(
        conversation, {"type": "chat.status", "status": conversation.status, "assignee": to_agent.get_username()}
    )


@transaction.atomic
def conversation_contact_request(*, conversation_id: uuid.UUID) -> None:
    """No one can answer now: tell the customer, and ask for contact details so the team can reply later."""
    conversation = _conversation_lock(conversation_id)
    _system_message(conversation, "contact_request")
    _broadcast_on_commit(conversation, {"type": "chat.contact_request"})


@transaction.atomic
def conversation_contact_set(*, conversation_id: uuid.UUID, name, email) -> None:
    """The customer left contact details for a reply later."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    if not isinstance(email, str) or not isinstance(name or "", str):
        raise ActionRefused("invalid_contact", "Name and email must be text.")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ActionRefused("invalid_email", "That email address is not valid.") from exc
    conversation = _conversation_lock(conversation_id)
    conversation.customer_email = email
    if name:
        conversation.customer_name = name.strip()[:120]
    conversation.save(update_fields=["customer_email", "customer_name", "updated_at"])
    _system_message(conversation, "contact_saved", email=email)
