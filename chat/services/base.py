"""What every chat service shares: the conversation's row lock and sequence numbers, events sent after commit,
system messages, and helper tasks started without a promise."""

import logging
import re
import uuid
from functools import partial
from urllib.parse import urlsplit, urlunsplit

from django.db import transaction

from chat import broadcast, dispatch, strings
from chat.models import Conversation, Message
from chat.serializers import message_to_dict

logger = logging.getLogger(__name__)

# Control characters but tab, newline and carriage return: NUL cannot be stored in PostgreSQL, the others no one
# means to send.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def storable(text: str) -> str:
    """Text as it can be stored and shown: control characters dropped, unpaired surrogates replaced by U+FFFD."""
    text = _CONTROL.sub("", text)
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def page_address(url: str) -> str:
    """The page a customer wrote from, as stored: scheme, host and path only. The query and fragment often carry
    password-reset and OAuth tokens, and the user-info part a password; none of them is ever kept. Anything but an
    http(s) URL is dropped."""
    try:
        parts = urlsplit(storable(url).strip())
    except ValueError:  # an invalid IPv6 host, say
        return ""
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))[:500]


def broadcast_on_commit(conversation: Conversation, event: dict) -> None:
    """Send `event` to the conversation's sockets once the current transaction commits (never for a rollback)."""
    event = {**event, "conversation": str(conversation.id)}
    transaction.on_commit(partial(broadcast.group_send, conversation.group_name, event))


def staff_broadcast_on_commit(conversation: Conversation, event: dict) -> None:
    """Send `event` to the staff watching the conversation (never to the customer) once the transaction commits."""
    transaction.on_commit(partial(broadcast.group_send, conversation.staff_group_name, event))


def conversation_lock(conversation_id: uuid.UUID, *, with_site: bool = False) -> Conversation:
    """The conversation, its row locked until the caller's transaction ends: writers of one conversation queue.

    `with_site` reads its site in the same query (the site's row is not locked).
    """
    if with_site:
        rows = Conversation.objects.select_related("site").select_for_update(of=("self",))
    else:
        rows = Conversation.objects.select_for_update()
    return rows.get(pk=conversation_id)


def seq_take(conversation: Conversation, *fields: str) -> int:
    """The next sequence number of a locked conversation, saved with its other changed `fields` in one update."""
    conversation.last_seq += 1
    conversation.save(update_fields=["last_seq", *fields, "updated_at"])
    return conversation.last_seq


def system_message(conversation: Conversation, key: str, **values: str) -> Message:
    """A system message (chat.strings[key]) in the conversation's language, shown to everyone in it."""
    message = Message.objects.create(
        conversation=conversation,
        seq=seq_take(conversation),
        role=Message.Role.SYSTEM,
        content=strings.text(key, conversation.language, **values),
    )
    broadcast_on_commit(conversation, {"type": "chat.message", "message": message_to_dict(message)})
    return message


def enqueue_quietly(task, *args) -> None:
    """Start a helper task; if the backend is down, log it (a summary or a draft is a nicety, not a promise)."""
    try:
        dispatch.task_enqueue(task, *args)
    except Exception:
        logger.exception("could not start %s%r", task.name, args)
