"""Signals that are never stored: typing indicators, and the model's draft reply for an agent."""

import uuid

from chat import broadcast, tasks
from chat.models import Conversation
from chat.services.base import enqueue_quietly


def typing_signal(*, conversation_id: uuid.UUID, role: str, on: bool) -> None:
    """Tell the other side that someone is (or stopped) typing."""
    conversation = Conversation(id=uuid.UUID(str(conversation_id)))
    broadcast.group_send(
        conversation.group_name,
        {"type": "chat.typing", "conversation": str(conversation_id), "role": role, "on": on},
    )


def reply_suggest_request(*, conversation_id: uuid.UUID, agent) -> None:
    """Ask the model for a draft reply; it arrives on the staff group as a `staff.suggestion` event."""
    enqueue_quietly(tasks.reply_suggest_task, str(conversation_id), agent.get_username())


def reply_suggestion_send(*, conversation_id: uuid.UUID, agent_username: str, text: str) -> None:
    """Hand a drafted reply to the staff side (the requesting agent's console fills it in)."""
    conversation = Conversation(id=uuid.UUID(str(conversation_id)))
    event = {"type": "staff.suggestion", "conversation": str(conversation.id), "for": agent_username, "text": text}
    broadcast.group_send(conversation.staff_group_name, event)
