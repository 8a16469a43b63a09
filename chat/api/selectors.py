"""Reads behind the REST API's read endpoints: filtered, ordered querysets with what their serializers touch."""

import datetime
import uuid

from django.db.models import Q, QuerySet

from chat.models import ApiKey, Attachment, Contact, Conversation, Message, Rating, Site
from chat.serializers import attachments_prefetch


def conversations_visible(*, key: ApiKey | None) -> Q:
    """Which conversations an API key reads: every one with the admin scope; otherwise the widget's conversations
    and the key's own API sessions. Another key's sessions belong to that integration (a filter for `Conversation`;
    `None`, no key: the staff side's own reads, which see everything)."""
    if key is None or key.allows(ApiKey.Scope.ADMIN):
        return Q()
    return Q(api_key=key) | Q(api_key__isnull=True, session_id="")


def conversations_filter(
    *,
    visible_to: ApiKey | None,
    status: str | None = None,
    channel: str | None = None,
    site: str | None = None,
    session_id: str | None = None,
    created_after: datetime.datetime | None = None,
    created_before: datetime.datetime | None = None,
    assignee: str | None = None,
    rated: bool | None = None,
) -> QuerySet[Conversation]:
    """Conversations matching every filter given, newest first. `site` is a site key, `assignee` a username."""
    rows = Conversation.objects.select_related("site", "api_key", "assignee", "rating")
    rows = rows.filter(conversations_visible(key=visible_to))
    if status:
        rows = rows.filter(status=status)
    if channel:
        # As Conversation.channel: an API conversation whose key was deleted still has its session id.
        through_api = Q(api_key__isnull=False) | ~Q(session_id="")
        rows = rows.filter(through_api) if channel == "api" else rows.exclude(through_api)
    if site:
        rows = rows.filter(site__key=site)
    if session_id:
        rows = rows.filter(session_id=session_id)
    if created_after:
        rows = rows.filter(created_at__gte=created_after)
    if created_before:
        rows = rows.filter(created_at__lt=created_before)
    if assignee:
        rows = rows.filter(assignee__username=assignee)
    if rated is not None:
        rows = rows.filter(rating__isnull=not rated)
    return rows.order_by("-created_at", "-id")


def conversation_find(*, conversation_id: str, visible_to: ApiKey | None) -> Conversation | None:
    """The conversation with this id, or None for an unknown id, one that is not a UUID, or one `visible_to` may not
    read (the same answer: nothing tells another key's session from no conversation)."""
    try:
        pk = uuid.UUID(conversation_id)
    except (ValueError, TypeError, AttributeError):
        return None
    rows = Conversation.objects.select_related("site", "api_key", "assignee", "rating")
    return rows.filter(conversations_visible(key=visible_to), pk=pk).first()


def messages_filter(*, conversation: Conversation, after_seq: int = 0, with_notes: bool) -> QuerySet[Message]:
    """The conversation's messages after `after_seq`, oldest first; private notes only `with_notes`."""
    rows = Message.objects.filter(conversation=conversation, seq__gt=after_seq).select_related("author")
    rows = rows.prefetch_related(attachments_prefetch())
    if not with_notes:
        rows = rows.exclude(role=Message.Role.NOTE)
    return rows.order_by("seq")


def attachment_find(*, conversation: Conversation, attachment_id: str) -> Attachment | None:
    """A file of the conversation by its id (None for an id that is not a UUID). Notes carry no files."""
    try:
        pk = uuid.UUID(attachment_id)
    except ValueError:
        return None
    return Attachment.objects.filter(pk=pk, conversation=conversation).first()


def ratings_filter(
    *,
    visible_to: ApiKey | None,
    score: int | None = None,
    min_score: int | None = None,
    max_score: int | None = None,
    created_after: datetime.datetime | None = None,
    created_before: datetime.datetime | None = None,
    site: str | None = None,
) -> QuerySet[Rating]:
    """Ratings matching every filter given, newest first."""
    rows = Rating.objects.select_related("conversation__assignee", "conversation__site")
    rows = rows.filter(conversation__in=Conversation.objects.filter(conversations_visible(key=visible_to)))
    if score is not None:
        rows = rows.filter(score=score)
    if min_score is not None:
        rows = rows.filter(score__gte=min_score)
    if max_score is not None:
        rows = rows.filter(score__lte=max_score)
    if created_after:
        rows = rows.filter(created_at__gte=created_after)
    if created_before:
        rows = rows.filter(created_at__lt=created_before)
    if site:
        rows = rows.filter(conversation__site__key=site)
    return rows.order_by("-created_at", "-id")


def api_keys_all() -> QuerySet[ApiKey]:
    """Every API key, revoked ones included, newest first."""
    return ApiKey.objects.select_related("created_by", "acts_as").order_by("-created_at", "-id")


def api_key_find(*, prefix: str) -> ApiKey | None:
    return ApiKey.objects.filter(prefix=prefix).first()


def contacts_filter(
    *, email: str | None = None, external_id: str | None = None, site: str | None = None, verified: bool | None = None
) -> QuerySet[Contact]:
    """Contacts matching every filter given, newest first. `email` matches in any case, `site` is a site key."""
    rows = Contact.objects.select_related("site")
    if email:
        rows = rows.filter(email__iexact=email)
    if external_id:
        rows = rows.filter(external_id=external_id)
    if site:
        rows = rows.filter(site__key=site)
    if verified is not None:
        rows = rows.filter(verified=verified)
    return rows.order_by("-created_at", "-id")


def contact_find(*, contact_id: int) -> Contact | None:
    return Contact.objects.select_related("site").filter(pk=contact_id).first()


def site_find(*, key: str) -> Site | None:
    return Site.objects.filter(key=key).first()
