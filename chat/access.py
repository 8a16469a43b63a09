"""Access to a conversation by a signed, expiring token instead of its secret.

The secret a conversation is opened with lives in one browser. A customer reaches the same conversation elsewhere
through a token: the link in an email ("reopen this conversation"), or the list a verified customer gets on another
device (chat.identity). A token is the conversation's id signed with SECRET_KEY (django.core.signing, salted) and a
timestamp; it is good for CHAT_ACCESS_TOKEN_MAX_AGE seconds and for that conversation only. Wherever a secret is
accepted (the socket's hello, attachments, the transcript) a token is too: chat.selectors tells them apart by the
':' that signing puts in a token and token_urlsafe never does.
"""

import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing

_SALT = "chat.conversation-access"


def conversation_access_token(conversation_id: uuid.UUID) -> str:
    """A token that opens this conversation (and no other) until CHAT_ACCESS_TOKEN_MAX_AGE seconds have passed."""
    return signing.dumps(uuid.UUID(str(conversation_id)).hex, salt=_SALT)


def is_access_token(credential: str) -> bool:
    return isinstance(credential, str) and ":" in credential


def access_token_opens(token: str, conversation_id: uuid.UUID) -> bool:
    """Whether `token` is a valid, unexpired token for exactly this conversation."""
    try:
        value = signing.loads(token, salt=_SALT, max_age=settings.CHAT_ACCESS_TOKEN_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        return False
    return isinstance(value, str) and value == uuid.UUID(str(conversation_id)).hex


def conversation_reopen_link(conversation) -> str:
    """An absolute link that opens this conversation in the widget, on the helpdesk's hosted chat page of its site.

    The token travels in the fragment, which browsers never send to a server, so it stays out of access logs and
    Referer headers; the widget reads it (hd-conversation, hd-token) and opens the conversation.
    """
    query = f"?{urlencode({'site': conversation.site.key})}" if conversation.site_id else ""
    fragment = urlencode(
        {"hd-conversation": str(conversation.id), "hd-token": conversation_access_token(conversation.id)}
    )
    return f"{settings.HELPDESK_PUBLIC_URL}/{query}#{fragment}"
