"""Whether a conversation's customer is still connected, so a reply nobody will read can be stopped.

Each customer socket counts itself in while open. When the count drops to zero the time is noted; a reply whose
customer has been gone longer than CHAT_ABANDON_AFTER stops generating (a page reload reconnects well within it).

The count is a lease: it lasts ONLINE_TTL_S and every ping of an open socket (the widget sends one each 25 s, at
least once a minute in a background tab) renews it. A socket that dies with its server never counts itself out, so
its customer counts as online until the lease runs out, and an agent's reply is emailed to them from then on.
"""

import logging
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from chat.models import Conversation
from chat.outages import redis_optional

logger = logging.getLogger(__name__)

KEY_TTL_S = 3600  # when the customer left
# How long the count of open sockets lasts without a ping renewing it.
ONLINE_TTL_S = 300


def _keys(conversation_id: uuid.UUID) -> tuple[str, str]:
    return f"chat:online:{conversation_id}", f"chat:left:{conversation_id}"


def customer_connected(conversation_id: uuid.UUID) -> None:
    online, left = _keys(conversation_id)
    cache.add(online, 0, ONLINE_TTL_S)
    cache.incr(online)
    cache.touch(online, ONLINE_TTL_S)
    cache.delete(left)


def customer_still_connected(conversation_id: uuid.UUID) -> None:
    """A ping from an open socket: the count's lease is renewed (counted in again if it ran out meanwhile, as after
    a long sleep of the customer's computer)."""
    online = _keys(conversation_id)[0]
    with redis_optional("renewing a customer's presence"):
        if not cache.touch(online, ONLINE_TTL_S):
            cache.add(online, 1, ONLINE_TTL_S)


def customer_seen(conversation_id: uuid.UUID) -> None:
    """Note that the customer had the conversation open until now (a socket of theirs closed): agent replies after
    this, while no socket is open, are the ones emailed to them (chat.email.outbound). While a socket is open nothing
    is emailed, so the open needs no write."""
    try:
        Conversation.objects.filter(pk=conversation_id).update(customer_last_seen_at=timezone.now())
    except DatabaseError:  # a closing socket during an outage: the reply is emailed a little more readily
        logger.warning("could not note when the customer of %s was last seen", conversation_id, exc_info=True)


def customer_online(conversation_id: uuid.UUID) -> bool:
    """Whether a socket of the customer is open now; False when Redis cannot say (an email is then sent rather than
    a reply left unread)."""
    with redis_optional("checking whether the customer is online"):
        return (cache.get(_keys(conversation_id)[0]) or 0) > 0
    return False


def customer_disconnected(conversation_id: uuid.UUID) -> None:
    online, left = _keys(conversation_id)
    with redis_optional("noting a customer's socket closed"):  # then the reply runs on, as after a server crash
        try:
            remaining = cache.decr(online)
        except ValueError:  # the key expired meanwhile
            remaining = 0
        if remaining <= 0:
            cache.set(left, time.time(), KEY_TTL_S)
    customer_seen(conversation_id)


def customer_gone(conversation_id: uuid.UUID) -> bool:
    """True once no socket of the customer has been open for CHAT_ABANDON_AFTER seconds.

    False while Redis cannot say: a reply is never stopped for want of an answer, the customer may be reconnecting.
    """
    left_at = None
    with redis_optional("checking that the customer is still there"):
        left_at = cache.get(_keys(conversation_id)[1])
    return left_at is not None and time.time() - left_at > settings.CHAT_ABANDON_AFTER
