"""What the model is told about a conversation: the prompt's variables and how stored messages become turns.

The one place that maps message roles to model roles, so every bot output sees a conversation the same way.
"""

import re
from collections.abc import Iterable

from django.conf import settings

from chat.models import Message
from chat.serializers import ATTACHMENTS_ATTR
from inference.language import language_name
from inference.types import ChatTurn

# Whose words the model sees as the user's and as its own: an agent's replies read as the assistant's.
MODEL_ROLES = {Message.Role.CUSTOMER: "user", Message.Role.BOT: "assistant", Message.Role.AGENT: "assistant"}


def prompt_variables(*, language: str, region: str) -> dict[str, str]:
    """The system prompt's {{variables}} for a customer ({{current_time}} is filled in when it is rendered)."""
    return {"company_name": settings.COMPANY_NAME, "user_region": region, "language": language_name(language)}


def history_turns(history: Iterable[tuple[str, str]]) -> list[ChatTurn]:
    """Stored (role, content) pairs, oldest first (the session cache's shape), as the model's turns."""
    return [ChatTurn(MODEL_ROLES[role], content) for role, content in history]


_NOTE_LINE = re.compile(r"^\[The (?:customer attached a file|support agent sent the customer a file): .*\]$\n?", re.M)


def without_attachment_notes(text: str) -> str:
    """A turn's words without the notes of attachment_note: what the knowledge base is searched for, and what the
    language is told from."""
    return _NOTE_LINE.sub("", text).strip()


_CUSTOMER_NOTE = re.compile(r"\[The customer attached a file: (.*) \([^()]*\)\. You cannot see it\.\]")


def attachment_notes_for_staff(text: str) -> str:
    """A customer turn as the agents read it (the handoff summary): each file note of attachment_note shortened to
    the file's name, without what only the model needs telling."""
    return _CUSTOMER_NOTE.sub(r"[file: \1]", text)


def attachment_note(*, role: str, name: str, content_type: str) -> str:
    """What the model is told of a file in the conversation: that it came, its name and type, and, for the customer's,
    that the model cannot see it (so that it never describes what it was not shown)."""
    if role == Message.Role.CUSTOMER:
        return f"[The customer attached a file: {name} ({content_type}). You cannot see it.]"
    return f"[The support agent sent the customer a file: {name} ({content_type}).]"


def message_turn_text(message: Message) -> str:
    """A stored message as the model reads it: its text, then a note for each file sent with it. The files must have
    been read with the message (chat.serializers.attachments_prefetch, or set by the service that stored them)."""
    notes = [
        attachment_note(role=message.role, name=attachment.name, content_type=attachment.content_type)
        for attachment in getattr(message, ATTACHMENTS_ATTR, None) or ()
    ]
    return "\n".join([message.content, *notes] if message.content else notes)
