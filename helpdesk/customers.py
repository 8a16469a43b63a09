"""Customers as the staff see them: the profile (every conversation of one customer, its rating and ticket, and the
totals) and the notes the staff keep about them.

A customer is known by their email address, compared without regard to case (customer_key), or by their contact
(chat.models.Contact: a site's verified signed-in user, or one an integration keeps), whose profile also lists the
conversations under the contact's email address.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Avg, Count, Q, QuerySet

from chat.models import Contact, Conversation
from chat.services.base import storable
from helpdesk.models import CustomerNote

NOTE_MAX_CHARS = 2000
# The profile lists this many of the customer's conversations, the newest first (the totals count them all).
PROFILE_CONVERSATIONS_MAX = 200


def customer_key(email: str) -> str:
    """The key a customer is known by: their email address, trimmed and in lower case; "" when it is not one."""
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        return ""
    return email


def _conversations_of(key: str, contact: Contact | None = None) -> QuerySet[Conversation]:
    if contact is None:
        return Conversation.objects.filter(customer_email__iexact=key)
    return Conversation.objects.filter(Q(contact=contact) | (Q(customer_email__iexact=key) if key else Q(pk__in=[])))


@dataclass(frozen=True)
class CustomerProfile:
    """What the staff know of one customer."""

    key: str
    names: list[str]
    conversations: list[Conversation]  # the newest first, with site, assignee, rating and ticket read alongside
    total: int
    rated: int
    rating_average: float | None
    notes: list[CustomerNote]
    contact: Contact | None = None  # when the profile was opened by contact (its key: the contact's email, or "")


def customer_profile(*, email: str = "", contact_id=None) -> CustomerProfile | None:
    """The profile of the customer with this email address (None when it is not one), in four queries; or, with
    `contact_id`, of that contact (None when there is none): its conversations and those under its email address."""
    contact = None
    if contact_id is not None:
        contact = Contact.objects.filter(pk=contact_id).first() if str(contact_id).isdigit() else None
        if contact is None:
            return None
        key = customer_key(contact.email)
    else:
        key = customer_key(email)
        if not key:
            return None
    conversations = _conversations_of(key, contact)
    totals = conversations.aggregate(total=Count("pk"), rated=Count("rating"), average=Avg("rating__score"))
    names = conversations.exclude(customer_name="").values_list("customer_name", flat=True).order_by().distinct()[:20]
    listed = conversations.select_related("site", "assignee", "rating", "ticket").order_by("-created_at", "-pk")
    notes = CustomerNote.objects.filter(customer_email=key).select_related("author") if key else []
    return CustomerProfile(
        key=key,
        names=sorted(names),
        conversations=list(listed[:PROFILE_CONVERSATIONS_MAX]),
        total=totals["total"],
        rated=totals["rated"],
        rating_average=totals["average"],
        notes=list(notes),
        contact=contact,
    )


@transaction.atomic
def customer_note_add(*, agent, email: str, body: str) -> CustomerNote:
    """Keep a note about a customer (shown on their profile, to the staff only).

    Raises ValidationError when the email address is not one, or the note is empty or longer than NOTE_MAX_CHARS.
    """
    key = customer_key(email)
    if not key:
        raise ValidationError("This is not an email address.", code="email")
    body = storable(body or "").strip()
    if not body:
        raise ValidationError("Write the note first.", code="empty")
    if len(body) > NOTE_MAX_CHARS:
        raise ValidationError(f"A note holds at most {NOTE_MAX_CHARS} characters.", code="too_long")
    return CustomerNote.objects.create(customer_email=key, body=body, author=agent)
