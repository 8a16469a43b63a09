"""Reads of chat data."""

import hashlib
import hmac
import uuid

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q

from chat.access import access_token_opens, is_access_token
from chat.models import Attachment, Conversation, Message, Site
from chat.serializers import attachments_prefetch


class ConversationAccessDenied(Exception):
    """Unknown conversation, or a secret that does not match: the two are not told apart, on purpose."""


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def conversation_get_for_customer(*, conversation_id: str | uuid.UUID, secret: str) -> Conversation:
    """The conversation whose secret this is, or which this access token opens (chat.access); raises
    ConversationAccessDenied otherwise."""
    try:
        conversation = Conversation.objects.get(pk=conversation_id)
    except (Conversation.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise ConversationAccessDenied from exc
    if not isinstance(secret, str):
        raise ConversationAccessDenied
    if is_access_token(secret):
        if not access_token_opens(secret, conversation.id):
            raise ConversationAccessDenied
    elif not hmac.compare_digest(conversation.secret_hash, secret_hash(secret)):
        raise ConversationAccessDenied
    return conversation


def site_origins_all() -> set[str]:
    """Every origin some active site allows: what a customer socket's handshake is checked against before the
    socket says which conversation (and so which site) it is for."""
    origins = set()
    for site in Site.objects.filter(is_active=True).only("allowed_origins"):
        origins |= site.origins
    return origins


def messages_visible_to_customer(*, conversation: Conversation, after_seq: int = 0) -> list[Message]:
    """Messages the customer may see (everything but private notes), after a sequence number, oldest first, with
    their attachments."""
    rows = conversation.messages.filter(seq__gt=after_seq).exclude(role=Message.Role.NOTE).order_by("seq")
    return list(rows.prefetch_related(attachments_prefetch()))


def message_visible_to_customer(*, conversation_id: uuid.UUID, seq: int) -> Message | None:
    """The conversation's message `seq` if the customer may see it (not a private note); None if there is none."""
    return Message.objects.filter(conversation_id=conversation_id, seq=seq).exclude(role=Message.Role.NOTE).first()


def conversation_history(*, conversation_id: uuid.UUID, before_seq: int, limit: int) -> list[Message]:
    """The newest `limit` customer, bot and agent messages before `before_seq` (inclusive), oldest first, with their
    attachments (a message may be a file without a word)."""
    has_files = Exists(Attachment.objects.filter(message=OuterRef("pk")))
    rows = (
        Message.objects.filter(conversation_id=conversation_id, seq__lte=before_seq)
        .filter(role__in=[Message.Role.CUSTOMER, Message.Role.BOT, Message.Role.AGENT])
        .exclude(state=Message.State.FAILED)
        .filter(~Q(content="") | Q(has_files))
        .prefetch_related(attachments_prefetch())
        .order_by("-seq")[:limit]
    )
    return list(reversed(rows))


def turn_outcome(*, customer_message_id: int) -> dict | None:
    """What became of a customer message, for a caller waiting on it; None while the bot is still at it.

    `status` is "answered" (the bot's reply is complete), "handed_off" (the conversation is with the team, or waits
    for it; `notice` is what the customer was told) or "failed" (no reply could be started: the message is stored).
    """
    message = Message.objects.select_related("conversation").get(pk=customer_message_id)
    conversation = message.conversation
    reply = Message.objects.filter(in_reply_to=message, role=Message.Role.BOT).first()
    outcome = {"conversation_status": conversation.status, "message_seq": message.seq, "reply": reply}
    if reply is not None and reply.state == Message.State.COMPLETE and reply.grounding != "no_knowledge":
        return {**outcome, "status": "answered"}
    if conversation.status in (Conversation.Status.QUEUED, Conversation.Status.AGENT):
        notice = (
            conversation.messages.filter(role=Message.Role.SYSTEM, seq__gt=message.seq)
            .order_by("seq")
            .values_list("content", flat=True)
            .first()
        )
        reason = conversation.handoff_reason
        return {**outcome, "status": "handed_off", "reply": None, "notice": notice, "handoff_reason": reason}
    if conversation.status == Conversation.Status.RESOLVED:
        return {**outcome, "status": "resolved", "reply": None}
    if reply is not None and reply.state == Message.State.FAILED:
        return {**outcome, "status": "failed"}
    newer = conversation.messages.filter(role=Message.Role.CUSTOMER, seq__gt=message.seq).exists()
    if newer and reply is None:  # superseded: the reply to the newer message answers both
        return {**outcome, "status": "superseded"}
    return None
