"""Reads of chat data."""

import hashlib
import hmac
import uuid

from django.core.exceptions import ValidationError

from chat.models import Conversation, Message


class ConversationAccessDenied(Exception):
    """Unknown conversation, or a secret that does not match: the two are not told apart, on purpose."""


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def conversation_get_for_customer(*, conversation_id: str | uuid.UUID, secret: str) -> Conversation:
    """The conversation whose secret this is; raises ConversationAccessDenied otherwise."""
    try:
        conversation = Conversation.objects.get(pk=conversation_id)
    except (Conversation.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise ConversationAccessDenied from exc
    if not isinstance(secret, str) or not hmac.compare_digest(conversation.secret_hash, secret_hash(secret)):
        raise ConversationAccessDenied
    return conversation


def messages_visible_to_customer(*, conversation: Conversation, after_seq: int = 0) -> list[Message]:
    """Messages the customer may see (everything but private notes), after a sequence number, oldest first."""
    return list(conversation.messages.filter(seq__gt=after_seq).exclude(role=Message.Role.NOTE).order_by("seq"))


def conversation_history(*, conversation_id: uuid.UUID, before_seq: int, limit: int) -> list[Message]:
    """The newest `limit` customer, bot and agent messages before `before_seq` (inclusive), oldest first."""
    rows = (
        Message.objects.filter(conversation_id=conversation_id, seq__lte=before_seq)
        .filter(role__in=[Message.Role.CUSTOMER, Message.Role.BOT, Message.Role.AGENT])
        .exclude(state=Message.State.FAILED)
        .exclude(content="")
        .order_by("-seq")[:limit]
    )
    return list(reversed(rows))
