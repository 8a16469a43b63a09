"""Messages: the customer's (live or left for later), the agents' replies and their private notes."""

import uuid
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import ratelimit, session_cache
from chat.email import schedule as email_schedule
from chat.models import Conversation, HandoffReason, Message, Site
from chat.serializers import message_to_dict, staff_message_to_dict
from chat.services import replies, reporting
from chat.services.base import (
    broadcast_on_commit,
    conversation_lock,
    seq_take,
    staff_broadcast_on_commit,
    storable,
)
from chat.services.conversations import conversation_hand_off, conversation_start
from chat.services.errors import ActionRefused, MessageRejected
from chat.services.lifecycle import customer_returns
from inference.deferral import customer_asks_for_human

# Messages per minute per conversation when it has no site (opened through the API).
MESSAGES_PER_MINUTE_DEFAULT = 20


def message_clean(content, *, empty_ok: bool = False) -> str:
    """The message text as it will be stored, or MessageRejected saying why not. `empty_ok`: a caption, which a
    file may go without."""
    if empty_ok and content is None:
        content = ""
    if not isinstance(content, str):
        raise MessageRejected("invalid_message", "The message must be text.")
    content = storable(content).strip()
    if not content and not empty_ok:
        raise MessageRejected("empty_message", "The message is empty.")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(content) > limit:
        raise MessageRejected("message_too_long", f"The message is {len(content)} characters; the limit is {limit}.")
    return content


@transaction.atomic
def message_post_customer(
    *,
    conversation_id: uuid.UUID,
    content,
    client_id: str = "",
    overrides: dict | None = None,
    via: str = "",
    attach: Callable[[Message], None] | None = None,
) -> tuple[Message, bool]:
    """Store a customer message and, in bot mode, have the bot answer it once the message is committed.

    A message to a resolved or snoozed conversation reopens it (chat.services.lifecycle.customer_returns): to the
    team if an agent had it, with no bot reply; to the bot otherwise.

    A resend with the same `client_id` returns the stored message and `created=False` instead of a duplicate.
    `overrides` (sampling parameters from an API request) go with the reply job to the engine.
    `via="email"`: a reply to one of our emails (chat.email.inbound); in bot mode it goes to the team, as whoever
    answers by email expects a person.
    `attach` (chat.services.attachments) stores the message's files in the same transaction, before anything about
    it is sent; the content is then a caption and may be empty.
    """
    content = message_clean(content, empty_ok=attach is not None)
    client_id = client_id if isinstance(client_id, str) else ""
    if len(client_id) > 64:
        raise MessageRejected("invalid_client_id", "client_id is at most 64 characters.")
    # Read before the row lock: the lock is held for as little as the writes need.
    asks_for_human = customer_asks_for_human(content)
    conversation = conversation_lock(conversation_id, with_site=True)
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
    was_resolved = conversation.status == Conversation.Status.RESOLVED
    now = timezone.now()
    fields = reporting.on_customer_message(conversation, content, now, was_resolved=was_resolved)
    message = Message.objects.create(
        conversation=conversation,
        seq=seq_take(conversation, *fields),
        role=Message.Role.CUSTOMER,
        content=content,
        client_id=client_id,
        via=via,
    )
    if attach is not None:
        attach(message)
    broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(message)})
    transaction.on_commit(partial(session_cache.turn_append, message))
    if was_resolved or conversation.status == Conversation.Status.SNOOZED:
        # Back to its last agent (or the queue) if an agent had it, else to the bot: the message goes there.
        customer_returns(conversation)
    if conversation.status == Conversation.Status.BOT:
        if conversation.site_id and not conversation.site.bot_enabled:
            conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.BOT_OFF, message_id=message.id)
        elif asks_for_human or via == "email":
            conversation_hand_off(
                conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST, message_id=message.id
            )
        else:
            transaction.on_commit(
                partial(
                    replies.reply_enqueue, conversation_id=conversation.id, message_id=message.id, overrides=overrides
                )
            )
    return message, True


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
    conversation = conversation_lock(conversation.id)
    now = timezone.now()
    fields = reporting.on_customer_message(conversation, content, now, was_resolved=False)
    message = Message.objects.create(
        conversation=conversation,
        seq=seq_take(conversation, *fields),
        role=Message.Role.CUSTOMER,
        content=content,
    )
    conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.OFFLINE_MESSAGE, message_id=message.id)
    transaction.on_commit(partial(email_schedule.left_message_ack_schedule, conversation.id))
    return conversation, secret


@transaction.atomic
def message_post_agent(
    *, conversation_id: uuid.UUID, agent, content, client_id: str = "", attach: Callable[[Message], None] | None = None
) -> Message:
    """An agent's reply to the customer; only the conversation's assignee may send it. `attach`: as for
    message_post_customer."""
    content = message_clean(content, empty_ok=attach is not None)
    conversation = conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.AGENT or conversation.assignee_id != agent.pk:
        raise ActionRefused("not_assigned", "Claim the conversation before replying.")
    if client_id:
        existing = conversation.messages.filter(client_id=client_id[:64]).first()
        if existing is not None:
            return existing
    now = timezone.now()
    message = Message.objects.create(
        conversation=conversation,
        seq=seq_take(conversation, *reporting.on_agent_message(conversation, now)),
        role=Message.Role.AGENT,
        content=content,
        client_id=client_id[:64],
        author=agent,
    )
    if attach is not None:
        attach(message)
    broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(message)})
    transaction.on_commit(partial(session_cache.turn_append, message))
    if conversation.customer_email or conversation.contact_id:  # emailed if the customer is not there to read it
        transaction.on_commit(partial(email_schedule.agent_reply_email_schedule, conversation.id))
    return message


@transaction.atomic
def note_post(*, conversation_id: uuid.UUID, agent, content, client_id: str = "") -> Message:
    """A private note for the staff. It is sent only to the staff group: customers never receive it. A resend with
    the same `client_id` (the agent API's) returns the stored note instead of a duplicate."""
    content = message_clean(content)
    conversation = conversation_lock(conversation_id)
    if client_id:
        existing = conversation.messages.filter(client_id=client_id[:64], role=Message.Role.NOTE).first()
        if existing is not None:
            return existing
    note = Message.objects.create(
        conversation=conversation,
        seq=seq_take(conversation),
        role=Message.Role.NOTE,
        content=content,
        author=agent,
        client_id=client_id[:64],
    )
    staff_broadcast_on_commit(
        conversation,
        {"type": "staff.note", "conversation": str(conversation.id), "message": staff_message_to_dict(note)},
    )
    return note
