"""Email notifications for agents who opt in (AgentPresence.notify_left_messages / notify_waiting): a customer left a
message, or a conversation has waited in the queue longer than NOTIFY_WAITING_AFTER seconds.

Each agent is emailed at most once per conversation and kind (AgentNotification, recorded in the transaction that
sends it, so a failed send is retried by the task and a second run sends nothing). Only active users with the
console permission and an email address are notified.
"""

import datetime
import logging
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from chat.email.compose import sender
from chat.metrics import EMAILS_SENT
from chat.models import Conversation, Message
from helpdesk.models import AgentNotification, AgentPresence

logger = logging.getLogger(__name__)

CONSOLE_PERMISSION = "helpdesk.use_console"
# At most this many conversations in one waiting email (the rest come in the next pass).
WAITING_BATCH = 20
Kind = AgentNotification.Kind


def _recipients(flag: str) -> list:
    """Active users opted in to `flag` who may use the console and have an email address."""
    users = get_user_model().objects.filter(is_active=True, **{f"presence__{flag}": True}).exclude(email="")
    return [user for user in users if user.has_perm(CONSOLE_PERMISSION)]


def _line(conversation: Conversation, now: datetime.datetime) -> dict:
    first = (
        conversation.messages.filter(role=Message.Role.CUSTOMER).order_by("-seq").values_list("content", flat=True)
    ).first() or ""
    waited = ""
    if conversation.handed_off_at is not None:
        waited = f"{max(1, int((now - conversation.handed_off_at).total_seconds() // 60))} min"
    return {
        "customer": conversation.customer_name or conversation.customer_email or "A customer",
        "preview": first[:200],
        "waiting": waited,
        "link": f"{settings.HELPDESK_PUBLIC_URL}{reverse('console')}#conversation={conversation.id}",
    }


def _send(user, *, subject: str, intro: str, lines: list[dict], kind: str) -> None:
    context = {
        "company": settings.COMPANY_NAME,
        "agent_name": user.first_name or user.get_username(),
        "intro": intro,
        "conversations": lines,
        "console_url": settings.HELPDESK_PUBLIC_URL + reverse("console"),
        "settings_url": settings.HELPDESK_PUBLIC_URL + reverse("console-notifications"),
        "lang": "en",
    }
    email = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("email/agent_notification.txt", context),
        from_email=sender(),
        to=[user.email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    email.attach_alternative(render_to_string("email/agent_notification.html", context), "text/html")
    email.send()
    EMAILS_SENT.labels(kind=f"agent_{kind}").inc()


def _record(user, conversation_id: uuid.UUID, kind: str) -> bool:
    """Record the notification; False if this agent already had it."""
    try:
        with transaction.atomic():
            AgentNotification.objects.create(user=user, conversation_id=conversation_id, kind=kind)
    except IntegrityError:
        return False
    return True


def left_message_notify(*, conversation_id: uuid.UUID) -> int:
    """Email the opted-in agents that a customer left a message; how many were emailed."""
    conversation = Conversation.objects.get(pk=conversation_id)
    sent = 0
    for user in _recipients("notify_left_messages"):
        with transaction.atomic():
            if not _record(user, conversation.id, Kind.LEFT_MESSAGE):
                continue
            _send(
                user,
                subject=f"New message from {conversation.customer_name or conversation.customer_email or 'a customer'}",
                intro="A customer left a message while no one was available:",
                lines=[_line(conversation, timezone.now())],
                kind=Kind.LEFT_MESSAGE,
            )
        sent += 1
    return sent


def waiting_notify_run(now: datetime.datetime | None = None) -> int:
    """Email each opted-in agent the queued conversations that waited past NOTIFY_WAITING_AFTER and that they were
    not told about yet (one email per agent and pass); how many emails were sent."""
    now = now or timezone.now()
    threshold = now - datetime.timedelta(seconds=settings.NOTIFY_WAITING_AFTER)
    waiting = list(
        Conversation.objects.filter(status=Conversation.Status.QUEUED, handed_off_at__lte=threshold).order_by(
            "handed_off_at"
        )[:500]
    )
    if not waiting:
        return 0
    sent = 0
    for user in _recipients("notify_waiting"):
        told = set(
            AgentNotification.objects.filter(
                user=user, kind=Kind.WAITING, conversation_id__in=[c.id for c in waiting]
            ).values_list("conversation_id", flat=True)
        )
        fresh = [c for c in waiting if c.id not in told][:WAITING_BATCH]
        if not fresh:
            continue
        with transaction.atomic():
            fresh = [c for c in fresh if _record(user, c.id, Kind.WAITING)]
            if not fresh:
                continue
            _send(
                user,
                subject=f"{len(fresh)} conversation{'s' if len(fresh) > 1 else ''} waiting for an agent",
                intro=f"These customers have waited in the queue for more than "
                f"{max(1, settings.NOTIFY_WAITING_AFTER // 60)} min:",
                lines=[_line(c, now) for c in fresh],
                kind=Kind.WAITING,
            )
        sent += 1
    return sent


@transaction.atomic
def agent_notifications_set(*, agent, left_messages: bool, waiting: bool) -> AgentPresence:
    """Turn an agent's notification emails on or off."""
    presence, _ = AgentPresence.objects.select_for_update().get_or_create(user=agent)
    presence.notify_left_messages = bool(left_messages)
    presence.notify_waiting = bool(waiting)
    presence.save(update_fields=["notify_left_messages", "notify_waiting"])
    return presence
