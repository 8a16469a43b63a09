"""Verified customer identity: a site tells the widget who its signed-in user is, and proves it.

The site's server computes `user_hash = hex(HMAC-SHA256(key=Site.identity_secret, msg=user_id))` and writes it into
the script tag beside the user id, name and email (`data-user-id`, `data-user-hash`, ...), as Intercom and Chatwoot
do. The secret never leaves the site's server, so a page cannot sign another user's id. Only an identity whose
signature checks out is used: it becomes (or finds) the site's verified contact, the conversations it opens are
marked verified, and it lists that contact's earlier conversations (chat.views_identity). An unsigned or wrongly
signed identity is ignored: not linked, not verified, its name and email not used to find anything.
"""

import hashlib
import hmac
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import OuterRef, QuerySet, Subquery

from chat.access import conversation_access_token
from chat.metrics import IDENTITY_CHECKS
from chat.models import Contact, Conversation, Message, Site

# A site's own user ids are short opaque strings (Contact.external_id holds 128 characters).
USER_ID_MAX_CHARS = 128
# The identity endpoint lists at most this many of a contact's conversations, the newest first.
CONVERSATIONS_LISTED = 20
# A conversation's preview is the start of its last visible message, this many characters at most.
PREVIEW_CHARS = 140


@dataclass(frozen=True)
class VerifiedIdentity:
    """A site's user whose id the site signed: safe to link conversations to."""

    user_id: str
    name: str = ""
    email: str = ""


def identity_hash(secret: str, user_id: str) -> str:
    """The signature a site's server gives its user: hex HMAC-SHA256 of the user id under the site's secret."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_verify(site: Site, user_id, user_hash) -> bool:
    """Whether `user_hash` is this site's signature of `user_id` (compared in constant time). Counted in
    helpdesk_identity_checks_total: verified, invalid (a wrong signature, or one of an unusable id), unsigned."""
    if not isinstance(user_hash, str) or not user_hash.strip():
        IDENTITY_CHECKS.labels(result="unsigned").inc()
        return False
    valid_id = (
        isinstance(user_id, str)
        and 0 < len(user_id) <= USER_ID_MAX_CHARS
        and user_id.isprintable()
        and user_id == user_id.strip()
    )
    if not valid_id or not site.identity_secret:
        IDENTITY_CHECKS.labels(result="invalid").inc()
        return False
    expected = identity_hash(site.identity_secret, user_id)
    verified = hmac.compare_digest(expected.encode(), user_hash.strip().lower().encode())
    IDENTITY_CHECKS.labels(result="verified" if verified else "invalid").inc()
    return verified


def identity_from_request(site: Site, data) -> VerifiedIdentity | None:
    """The verified identity in a widget request's `{user_id, user_hash, name, email}`; None when it is absent,
    unsigned or wrongly signed (the caller then ignores all of it). Name and email are the site's to give, so they
    count only with a good signature."""
    if not isinstance(data, dict) or not data.get("user_id"):
        return None
    user_id = data.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)  # a numeric id written without quotes: signed as its decimal digits
    if not identity_verify(site, user_id, data.get("user_hash")):
        return None
    name, email = data.get("name"), data.get("email")
    email = email.strip() if isinstance(email, str) else ""
    try:
        validate_email(email)
    except ValidationError:
        email = ""  # the site's mistake: the identity still stands, without an address to write to
    return VerifiedIdentity(user_id=user_id, name=name.strip()[:120] if isinstance(name, str) else "", email=email)


def contact_conversations(contact: Contact, *, limit: int = CONVERSATIONS_LISTED) -> QuerySet[Conversation]:
    """The contact's conversations opened with a verified identity on its site, the newest first, each annotated
    with its last message said by someone (`preview`, `preview_role`). One query, however many are listed."""
    # What was said: the customer's, the bot's and the agents' words (no private note, no system line).
    said = (Message.Role.CUSTOMER, Message.Role.BOT, Message.Role.AGENT)
    visible = Message.objects.filter(conversation=OuterRef("pk"), role__in=said)
    visible = visible.exclude(state=Message.State.STREAMING).order_by("-seq")
    return (
        Conversation.objects.filter(contact=contact, identity_verified=True, site_id=contact.site_id)
        .annotate(preview=Subquery(visible.values("content")[:1]), preview_role=Subquery(visible.values("role")[:1]))
        .order_by("-created_at", "-pk")[:limit]
    )


def conversation_summary(conversation: Conversation) -> dict:
    """A conversation as its verified customer's list shows it, with a token that opens it (chat.access)."""
    preview = " ".join((getattr(conversation, "preview", None) or "").split())
    return {
        "id": str(conversation.id),
        "token": conversation_access_token(conversation.id),
        "status": conversation.status,
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat() if conversation.last_message_at else None,
        "preview": preview[:PREVIEW_CHARS] + ("…" if len(preview) > PREVIEW_CHARS else ""),
        "preview_role": getattr(conversation, "preview_role", None) or "",
    }


def contact_to_widget_dict(contact: Contact) -> dict:
    """The contact as its own customer sees it (nothing the staff keep about them)."""
    return {"id": contact.pk, "user_id": contact.external_id, "name": contact.name, "email": contact.email}
