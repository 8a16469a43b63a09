"""Addresses that asked for no more email (the unsubscribe link and the List-Unsubscribe header): never emailed.

The unsubscribe link carries the address signed with SECRET_KEY (django.core.signing, salted), so nobody can
unsubscribe an address they were not sent; it does not expire, as the law expects a link in an old email to work.
"""

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse

from chat.models import EmailSuppression

_SALT = "chat.email.unsubscribe"


def email_normalize(address: str) -> str:
    return (address or "").strip().lower()


def email_suppressed(address: str) -> bool:
    return EmailSuppression.objects.filter(email=email_normalize(address)).exists()


def email_suppress(*, address: str, reason: str = "unsubscribed") -> EmailSuppression:
    """Record that `address` gets no more email (idempotent)."""
    address = email_normalize(address)
    try:
        with transaction.atomic():
            suppression, _ = EmailSuppression.objects.get_or_create(email=address, defaults={"reason": reason})
    except IntegrityError:  # two clicks at once: the other one recorded it
        suppression = EmailSuppression.objects.get(email=address)
    return suppression


def unsubscribe_token(address: str) -> str:
    return signing.dumps(email_normalize(address), salt=_SALT, compress=True)


def unsubscribe_token_email(token: str) -> str | None:
    """The address an unsubscribe token was made for, or None if it is not one of ours."""
    try:
        value = signing.loads(token, salt=_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    return value if isinstance(value, str) and "@" in value else None


def unsubscribe_url(address: str) -> str:
    """The absolute address of the unsubscribe page for `address` (also the RFC 8058 one-click POST target)."""
    return settings.HELPDESK_PUBLIC_URL + reverse("chat-email:unsubscribe", args=[unsubscribe_token(address)])
