"""Reads of the staff side."""

from django.db.models import Q
from django.utils import timezone

from chat.models import Conversation, Message
from chat.serializers import staff_message_to_dict


def queue_for_agent(*, agent) -> list[dict]:
    """Waiting conversations (oldest first) and the agent's own, as the console lists them."""
    rows = (
        Conversation.objects.filter(
            Q(status=Conversation.Status.QUEUED) | Q(status=Conversation.Status.AGENT, assignee=agent)
        )
        .select_related("ticket")
        .order_by("handed_off_at")
    )
    now = timezone.now()
    return [
        {
            "id": str(c.id),
            "status": c.status,
            "customer": c.customer_name or "Customer",
            "reason": c.handoff_reason,
            "subject": getattr(getattr(c, "ticket", None), "subject", ""),
            "waiting_s": int((now - c.handed_off_at).total_seconds()) if c.handed_off_at else 0,
        }
        for c in rows
    ]


def conversation_for_staff(*, conversation_id) -> dict:
    """The whole conversation, bot turns and notes included, with the handoff reason and summary."""
    conversation = Conversation.objects.select_related("assignee").get(pk=conversation_id)
    messages = Message.objects.filter(conversation=conversation).select_related("author").order_by("seq")
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "customer": conversation.customer_name or "Customer",
        "email": conversation.customer_email,
        "language": conversation.language,
        "region": conversation.region,
        "reason": conversation.handoff_reason,
        "reason_label": conversation.get_handoff_reason_display() if conversation.handoff_reason else "",
        "summary": conversation.handoff_summary,
        "assignee": conversation.assignee.get_username() if conversation.assignee_id else None,
        "messages": [staff_message_to_dict(m) for m in messages],
    }
