"""What the model is told about a conversation: the prompt's variables and how stored messages become turns.

The one place that maps message roles to model roles, so every bot output sees a conversation the same way.
"""

from collections.abc import Iterable

from django.conf import settings

from chat.models import Message
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
