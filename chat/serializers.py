"""Plain-dict shapes of chat objects as clients see them (websocket frames, JSON views)."""

from chat.models import Conversation, Message, Site


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
