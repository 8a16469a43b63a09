"""Plain-dict shapes of chat objects as clients see them (websocket frames, JSON views)."""

from django.db.models import Prefetch
from django.urls import reverse

from chat.models import Attachment, Conversation, Message, Site

# Where a message's attachments are kept once read with it: attachments_prefetch() in the query, or set by the
# service that stored them. A message read without it is serialized without attachments, never with a query each.
ATTACHMENTS_ATTR = "attachment_list"


def attachments_prefetch() -> Prefetch:
    """For .prefetch_related() on messages that are serialized: their attachments in one query."""
    return Prefetch("attachments", queryset=Attachment.objects.order_by("created_at"), to_attr=ATTACHMENTS_ATTR)


def attachment_to_dict(attachment: Attachment) -> dict:
    """An attachment as clients see it. Its URLs answer only the conversation's customer (the conversation's secret
    in the X-Conversation-Secret header) and signed-in staff (chat.attachment_views)."""
    url = reverse("chat:attachment", args=[attachment.conversation_id, attachment.id])
    return {
        "id": str(attachment.id),
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "is_image": attachment.is_image,
        "url": url,
        "thumbnail_url": f"{url}?thumb=1" if attachment.thumbnail else None,
    }


def message_to_dict(message: Message) -> dict:
    """A message as the customer sees it. Never used for private notes."""
    data = {
        "seq": message.seq,
        "role": message.role,
        "content": message.content,
        "state": message.state,
        "created_at": message.created_at.isoformat(),
    }
    if message.client_id:
        data["client_id"] = message.client_id
    if message.via:
        data["via"] = message.via  # "email": a reply to one of our emails (chat.email.inbound)
    attachments = getattr(message, ATTACHMENTS_ATTR, None)
    if attachments:
        data["attachments"] = [attachment_to_dict(attachment) for attachment in attachments]
    if message.role == Message.Role.BOT and message.state != Message.State.STREAMING:
        data["stats"] = {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "ttft_ms": message.ttft_ms,
            "tokens_per_s": message.tokens_per_s,
        }
        if message.sources:
            data["sources"] = [{"title": s.get("title", ""), "url": s.get("url", "")} for s in message.sources]
    return data


def conversation_to_dict(conversation: Conversation) -> dict:
    """A conversation as its customer sees it. `rate`: the widget shows the rating form (this resolution asked for a
    rating, not given yet; a conversation is asked once, see chat.services.conversations.rating_due)."""
    rated = hasattr(conversation, "rating")
    asked = conversation.rating_requested_at
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "language": conversation.language,
        "last_seq": conversation.last_seq,
        "rated": rated,
        "rate": conversation.status == Conversation.Status.RESOLVED
        and not rated
        and asked is not None
        and conversation.resolved_at is not None
        and asked >= conversation.resolved_at,
    }


def staff_message_to_dict(message: Message) -> dict:
    """A message as the staff see it: notes included, with the author."""
    data = message_to_dict(message)
    data["author"] = message.author.get_username() if message.author_id else None
    if message.role == Message.Role.BOT and message.state != Message.State.STREAMING:
        data["sources"] = message.sources  # with the article, passage and score, for the agent
        data["grounding"] = message.grounding
        data["fact_guard_tripped"] = message.fact_guard_tripped
    return data


def site_to_widget_dict(site: Site) -> dict:
    """A site's widget settings, as any page may read them (nothing secret)."""
    return {
        "key": site.key,
        "name": site.name,
        "theme_color": site.theme_color,
        "welcome_message": site.welcome_message,
        "welcome_message_zh": site.welcome_message_zh or site.welcome_message,
        "language": site.language,
        "prechat": {"name": site.prechat_name, "email": site.prechat_email},
    }
