"""The customer emails: what each one sends and when it is not sent. Run by chat.tasks (retries live there).

Each is idempotent, as a task may run twice: an agent's replies are marked `emailed_at` in the transaction that
sends them; a left message's acknowledgement is sent once per conversation.
"""

import logging
import uuid

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from chat import presence, ratelimit
from chat.email import schedule
from chat.email.compose import customer_email_build
from chat.email.suppression import email_suppressed
from chat.metrics import EMAILS_SENT
from chat.models import Conversation, Message
from chat.services.errors import ActionRefused

logger = logging.getLogger(__name__)

# The transcript on request: this many emails per conversation per hour.
TRANSCRIPTS_PER_HOUR = 3
ACKNOWLEDGED_TTL_S = 7 * 24 * 3600


def customer_email_address(conversation: Conversation) -> str:
    """Where the customer is emailed: the address they gave in the chat, else their contact's; "" if none."""
    if conversation.customer_email:
        return conversation.customer_email
    return conversation.contact.email if conversation.contact_id else ""


def _conversation(conversation_id) -> Conversation:
    return Conversation.objects.select_related("site", "contact").get(pk=conversation_id)


def _emailable(conversation: Conversation) -> str:
    address = customer_email_address(conversation)
    if not address or email_suppressed(address):
        return ""
    return address


def agent_replies_email(*, conversation_id: uuid.UUID) -> int:
    """Email the agent's replies the customer has not seen, if no socket of theirs is open; how many were sent.

    Unseen: not emailed yet and written after the customer was last seen (their socket's last open or close).
    """
    conversation = _conversation(conversation_id)
    if presence.customer_online(conversation.id):
        return 0
    address = _emailable(conversation)
    if not address:
        return 0
    with transaction.atomic():
        # Locked (skipping rows a concurrent run holds), so two runs never email one reply twice.
        pending = Message.objects.select_for_update(skip_locked=True).filter(
            conversation=conversation, role=Message.Role.AGENT, emailed_at__isnull=True
        )
        if conversation.customer_last_seen_at is not None:
            pending = pending.filter(created_at__gt=conversation.customer_last_seen_at)
        messages = list(pending.order_by("seq"))
        if not messages:
            return 0
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(emailed_at=timezone.now())
        messages = list(
            Message.objects.select_related("author")
            .prefetch_related("attachments")
            .filter(pk__in=[m.pk for m in messages])
            .order_by("seq")
        )
        # Sent inside the transaction: a failure rolls the marks back, and the task's retry sends them again.
        customer_email_build(conversation=conversation, kind="agent_reply", to=address, messages=messages).send()
    EMAILS_SENT.labels(kind="agent_reply").inc()
    return len(messages)


def left_message_acknowledge(*, conversation_id: uuid.UUID) -> bool:
    """Email the customer who left a message that it was received (once); whether it was sent."""
    conversation = _conversation(conversation_id)
    address = _emailable(conversation)
    if not address:
        return False
    key = f"chat:email:acknowledged:{conversation.id}"
    if not cache.add(key, 1, ACKNOWLEDGED_TTL_S):
        return False
    messages = list(
        conversation.messages.filter(role=Message.Role.CUSTOMER).prefetch_related("attachments").order_by("seq")[:1]
    )
    try:
        customer_email_build(conversation=conversation, kind="left_message", to=address, messages=messages).send()
    except Exception:
        cache.delete(key)  # not sent: the retry sends it
        raise
    EMAILS_SENT.labels(kind="left_message").inc()
    return True


def transcript_messages(conversation: Conversation) -> list[Message]:
    """What the customer saw: their messages, the bot's and the agents' (never private notes or system lines)."""
    roles = [Message.Role.CUSTOMER, Message.Role.BOT, Message.Role.AGENT]
    rows = conversation.messages.filter(role__in=roles).exclude(state=Message.State.FAILED)
    rows = rows.select_related("author").prefetch_related("attachments").order_by("seq")
    return [m for m in rows if m.content or m.attachments.all()]  # a file sent without a caption is still said


def transcript_email(*, conversation_id: uuid.UUID) -> bool:
    """Email the conversation's transcript to its customer; whether it was sent."""
    conversation = _conversation(conversation_id)
    address = _emailable(conversation)
    if not address:
        return False
    messages = transcript_messages(conversation)
    customer_email_build(conversation=conversation, kind="transcript", to=address, messages=messages).send()
    EMAILS_SENT.labels(kind="transcript").inc()
    return True


def transcript_request(*, conversation_id: uuid.UUID) -> str:
    """The customer asks for the transcript by email: queued, or ActionRefused (no address known, unsubscribed,
    asked too often). Returns the address it goes to."""
    conversation = _conversation(conversation_id)
    address = customer_email_address(conversation)
    if not address:
        raise ActionRefused("no_email", "We don't know your email address yet: leave it first, then ask again.")
    if email_suppressed(address):
        raise ActionRefused("email_unsubscribed", "This email address unsubscribed from our emails.")
    verdict = ratelimit.hit(f"transcript:{conversation.id}", limit=TRANSCRIPTS_PER_HOUR, window_s=3600)
    if not verdict.allowed:
        raise ActionRefused("rate_limited", f"The transcript was sent recently; try again in {verdict.retry_after} s.")
    schedule.transcript_email_schedule(conversation.id)
    return address
