"""The session cache: a conversation's recent turns in Redis, so a reply does not query its history each time.

An entry holds the newest SESSION_CACHE_TURNS turns up to a sequence number. A reply at sequence S needs the
turns up to S - 1; an entry for exactly that is a hit, anything else a miss answered from the database (which then
refills the entry). Entries are only ever extended when they end right before the new message, so a race between
writers costs a miss, never a wrong history.
"""

import uuid

from django.conf import settings
from django.core.cache import cache

from chat import selectors
from chat.models import Message
from chat.outages import redis_optional
from chat.prompting import message_turn_text

HISTORY_ROLES = (Message.Role.CUSTOMER, Message.Role.BOT, Message.Role.AGENT)


def _key(conversation_id: uuid.UUID) -> str:
    return f"chat:turns:{conversation_id.hex if isinstance(conversation_id, uuid.UUID) else conversation_id}"


def turns_before(*, conversation_id: uuid.UUID, seq: int) -> tuple[list[tuple[str, str]], bool]:
    """The newest (role, content) turns before message `seq`, oldest first, and whether the cache had them."""
    entry = None
    with redis_optional("reading the session cache"):  # a miss: the database answers
        entry = cache.get(_key(conversation_id))
    if entry is not None and entry["upto"] == seq - 1:
        return [tuple(turn) for turn in entry["turns"]], True
    history = selectors.conversation_history(
        conversation_id=conversation_id, before_seq=seq - 1, limit=settings.SESSION_CACHE_TURNS
    )
    turns = [(m.role, message_turn_text(m)) for m in history]
    with redis_optional("filling the session cache"):
        cache.set(_key(conversation_id), {"upto": seq - 1, "turns": turns}, settings.SESSION_CACHE_TTL)
    return turns, False


def turn_append(message: Message) -> None:
    """Extend the conversation's entry with a stored message, if the entry ends right before it.

    Never raises for Redis: it runs after commit, before the hooks that follow it (the reply's enqueue), which a
    raise would skip. An entry it could not extend is left behind, ending before the message: a miss, never wrong.
    """
    key = _key(message.conversation_id)
    with redis_optional("extending the session cache"):
        entry = cache.get(key)
        if entry is None or entry["upto"] != message.seq - 1:
            return
        turns, text = entry["turns"], message_turn_text(message)
        if message.role in HISTORY_ROLES and message.state == Message.State.COMPLETE and text:
            turns = [*turns, (message.role, text)][-settings.SESSION_CACHE_TURNS :]
        cache.set(key, {"upto": message.seq, "turns": turns}, settings.SESSION_CACHE_TTL)
