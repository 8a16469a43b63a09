"""A conversation's life: opened (widget or API session), handed to the agents, assigned, handed back, resolved;
and what the customer leaves for a later answer (contact details)."""

import re
import secrets
import uuid
from functools import partial

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import ratelimit, signals, tasks
from chat.models import ApiKey, Conversation, HandoffReason, Rating, Site
from chat.selectors import secret_hash
from chat.services import reporting
from chat.services.base import (
    broadcast_on_commit,
    conversation_lock,
    enqueue_quietly,
    page_address,
    staff_broadcast_on_commit,
    storable,
    system_message,
)
from chat.services.errors import ActionRefused, ConversationRefused
from chat.services.replies import replies_withdraw_unfinished
from inference.language import language_tag_clean

# A region as browsers (time zone: "Asia/Shanghai", "America/Argentina/Buenos_Aires") and proxies (country:
# "CN") give it. It reaches the system prompt, so free text (spaces, line breaks) is not a region.
_REGION = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/.]{0,63}")


def region_clean(region) -> str:
    """The region if it is one (control characters dropped first), else empty: the prompt then leaves it out."""
    region = storable(region) if isinstance(region, str) else ""
    return region if _REGION.fullmatch(region) else ""


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
        language=language_tag_clean(storable(language) if isinstance(language, str) else ""),
        region=region_clean(region),
        customer_name=storable(customer_name)[:120],
        customer_email=storable(customer_email),
        page_url=page_address(page_url),
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
def conversation_hand_off(*, conversation_id: uuid.UUID, reason: str, message_id: int | None = None) -> bool:
    """Move a bot conversation to the agents' queue. False if it was not with the bot (already handed off).

    From here the bot never speaks until an agent hands the conversation back: replies not yet finished are
    withdrawn now, and every later bot write re-checks the status under this same row lock.
    """
    conversation = conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.BOT:
        return False
    replies_withdraw_unfinished(conversation)
    conversation.status = Conversation.Status.QUEUED
    conversation.handoff_reason = reason
    conversation.handoff_message_id = message_id
    conversation.handoff_summary = ""
    conversation.handed_off_at = timezone.now()
    conversation.assignee = None
    reporting.on_handoff(conversation)
    conversation.save()
    if reason == HandoffReason.OFFLINE_MESSAGE:
        system_message(conversation, "offline_received", email=conversation.customer_email)
    else:
        system_message(conversation, "handoff")
    broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status})
    signals.conversation_handed_off.send(sender=Conversation, conversation=conversation, reason=reason)
    transaction.on_commit(partial(enqueue_quietly, tasks.handoff_summary_task, str(conversation.id)))
    return True


@transaction.atomic
def conversation_summary_set(*, conversation_id: uuid.UUID, summary: str) -> None:
    """Store the model's summary of a handed-off conversation and show it to the staff."""
    conversation = conversation_lock(conversation_id)
    conversation.handoff_summary = summary[:2000]
    conversation.save(update_fields=["handoff_summary", "updated_at"])
    staff_broadcast_on_commit(
        conversation,
        {"type": "staff.summary", "conversation": str(conversation.id), "summary": conversation.handoff_summary},
    )


@transaction.atomic
def conversation_assign(*, conversation_id: uuid.UUID, agent, expected_status: str) -> bool:
    """Give the conversation to `agent` if its status is still `expected_status`; exactly one caller wins a race."""
    conversation = conversation_lock(conversation_id)
    if conversation.status != expected_status:
        return False
    conversation.status = Conversation.Status.AGENT
    conversation.assignee = agent
    reporting.on_claim(conversation, timezone.now())
    conversation.save(update_fields=["status", "assignee", "claimed_at", "queue_wait_s", "updated_at"])
    broadcast_on_commit(
        conversation, {"type": "chat.status", "status": conversation.status, "assignee": agent.get_username()}
    )
    return True


@transaction.atomic
def conversation_reassign(*, conversation_id: uuid.UUID, from_agent, to_agent) -> None:
    """Move a conversation from its assignee to another agent."""
    conversation = conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.AGENT or conversation.assignee_id != from_agent.pk:
        raise ActionRefused("not_assigned", "Only the assigned agent can transfer the conversation.")
    conversation.assignee = to_agent
    conversation.save(update_fields=["assignee", "updated_at"])
    system_message(conversation, "transferred")
    broadcast_on_commit(
        conversation, {"type": "chat.status", "status": conversation.status, "assignee": to_agent.get_username()}
    )


@transaction.atomic
def conversation_hand_back(*, conversation_id: uuid.UUID, agent) -> None:
    """The assignee gives the conversation back to the bot."""
    conversation = conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.AGENT or conversation.assignee_id != agent.pk:
        raise ActionRefused("not_assigned", "Only the assigned agent can hand the conversation back.")
    conversation.status = Conversation.Status.BOT
    conversation.assignee = None
    reporting.on_release(conversation, timezone.now())
    conversation.save(update_fields=["status", "assignee", "released_at", "updated_at"])
    system_message(conversation, "handback")
    broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status})
    signals.conversation_handed_back.send(sender=Conversation, conversation=conversation, agent=agent)


@transaction.atomic
def conversation_resolve(*, conversation_id: uuid.UUID, agent=None, by_customer: bool = False) -> None:
    """Close the conversation (an agent, or the customer ending the chat); the customer is then asked to rate it,
    unless they were asked before (see rating_due)."""
    conversation = conversation_lock(conversation_id)
    if agent is not None and conversation.assignee_id not in (None, agent.pk):
        raise ActionRefused("not_assigned", "Another agent has this conversation.")
    if conversation.status == Conversation.Status.RESOLVED:
        return
    resolve_locked(conversation, key="ended_by_customer" if by_customer else "resolved")


def rating_due(conversation: Conversation) -> bool:
    """Whether resolving the conversation asks the customer for a rating: once per conversation (never again after
    it was asked or rated, however often it is reopened)."""
    return conversation.rating_requested_at is None and not Rating.objects.filter(conversation=conversation).exists()


def resolve_locked(conversation: Conversation, *, key: str, may_ask: bool = True) -> None:
    """Resolve a conversation whose row the caller locked, with the system message `key` (its "_quiet" variant when
    no rating is asked: see rating_due; never if not `may_ask`). It keeps its assignee, the last agent, who gets it
    back if the customer writes again."""
    replies_withdraw_unfinished(conversation)
    conversation.status = Conversation.Status.RESOLVED
    conversation.resolved_at = timezone.now()
    conversation.snoozed_until = None
    reporting.on_resolve(conversation)
    fields = ["status", "resolved_at", "snoozed_until", *reporting.RESOLVE_FIELDS, "updated_at"]
    ask = may_ask and rating_due(conversation)
    if ask:
        conversation.rating_requested_at = conversation.resolved_at
        fields.append("rating_requested_at")
    conversation.save(update_fields=fields)
    system_message(conversation, key if ask else f"{key}_quiet")
    broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status, "rate": ask})
    signals.conversation_resolved.send(sender=Conversation, conversation=conversation)


@transaction.atomic
def conversation_contact_request(*, conversation_id: uuid.UUID) -> None:
    """No one can answer now: tell the customer, and ask for contact details so the team can reply later (or, if
    the conversation has the customer's email already, say that the reply will go there)."""
    conversation = conversation_lock(conversation_id)
    if conversation.customer_email:  # given in the pre-chat form (or before): not asked twice
        system_message(conversation, "contact_known", email=conversation.customer_email)
        return
    system_message(conversation, "contact_request")
    broadcast_on_commit(conversation, {"type": "chat.contact_request"})


@transaction.atomic
def conversation_contact_set(*, conversation_id: uuid.UUID, name, email) -> None:
    """The customer left contact details for a reply later."""
    if not isinstance(email, str) or not isinstance(name or "", str):
        raise ActionRefused("invalid_contact", "Name and email must be text.")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ActionRefused("invalid_email", "That email address is not valid.") from exc
    conversation = conversation_lock(conversation_id)
    conversation.customer_email = email
    if name:
        conversation.customer_name = storable(name).strip()[:120]
    conversation.save(update_fields=["customer_email", "customer_name", "updated_at"])
    system_message(conversation, "contact_saved", email=email)
