"""The per-conversation reply address: reply+<conversation hex>.<signature>@EMAIL_INBOUND_DOMAIN.

The signature is a short HMAC of the conversation's id under SECRET_KEY, so an address cannot be made up from a
conversation id alone (ids appear in links and logs): a forged or altered address routes nowhere.
"""

import hashlib
import hmac
import re
import uuid
from email.utils import getaddresses

from django.conf import settings

SIGNATURE_CHARS = 16  # 64 bits of HMAC-SHA256, hex
_LOCAL = re.compile(r"reply\+([0-9a-f]{32})\.([0-9a-f]{" + str(SIGNATURE_CHARS) + "})")


def _signature(conversation_hex: str) -> str:
    key = f"chat.email.reply-address:{settings.SECRET_KEY}".encode()
    return hmac.new(key, conversation_hex.encode(), hashlib.sha256).hexdigest()[:SIGNATURE_CHARS]


def reply_address(conversation_id: uuid.UUID) -> str:
    """The address a customer's reply about this conversation goes to."""
    conversation_hex = uuid.UUID(str(conversation_id)).hex
    return f"reply+{conversation_hex}.{_signature(conversation_hex)}@{settings.EMAIL_INBOUND_DOMAIN}"


def conversation_id_from_address(address: str) -> uuid.UUID | None:
    """The conversation a reply address is for, or None if it is not one of ours with a valid signature."""
    if not isinstance(address, str):
        return None
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower() != settings.EMAIL_INBOUND_DOMAIN.lower():
        return None
    match = _LOCAL.fullmatch(local.lower())
    if match is None or not hmac.compare_digest(match.group(2), _signature(match.group(1))):
        return None
    return uuid.UUID(match.group(1))


def conversation_id_from_recipients(recipients: str | list[str]) -> uuid.UUID | None:
    """The conversation of the first valid reply address among recipients (a header's value, or addresses)."""
    values = [recipients] if isinstance(recipients, str) else list(recipients)
    for _name, address in getaddresses(values):
        conversation_id = conversation_id_from_address(address)
        if conversation_id is not None:
            return conversation_id
    return None
