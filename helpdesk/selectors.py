"""Reads of the staff side."""

import datetime
import json
import re
import uuid
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery, TextField, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from chat.api import selectors as chat_api_selectors
from chat.models import Contact, Conversation, HandoffReason, Message, Site
from chat.serializers import attachments_prefetch, staff_message_to_dict
from chat.services.errors import ActionRefused
from helpdesk import roles
from helpdesk.models import CannedResponse, Ticket
from inference.language import language_base

# The queue frame lists at most this many waiting conversations (the first in line), so a flood of customers
# cannot make one frame too large for the socket; the agent's own are listed however many wait.
CONSOLE_QUEUE_MAX = 200
# A page of messages for the console holds at most this many bytes of JSON (and CONSOLE_HISTORY_PAGE messages):
# a frame stays far below the socket's 1 MB, however long the messages and their sources are.
CONSOLE_PAGE_MAX_BYTES = 256 * 1024


def _queue_rows() -> QuerySet[Conversation]:
    # First come, first served within priority: urgent tickets jump the line.
    return Conversation.objects.select_related("ticket", "assignee", "site", "rating", "contact").order_by(
        "-ticket__priority", "handed_off_at"
    )


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _queue_entry(conversation: Conversation, now: datetime.datetime) -> dict:
    ticket = getattr(conversation, "ticket", None)
    rating = getattr(conversation, "rating", None)
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "assignee": conversation.assignee.get_username() if conversation.assignee_id else None,
        "customer": conversation.customer_name or "Customer",
        "reason": conversation.handoff_reason,
        "subject": ticket.subject if ticket else "",
        "priority": ticket.priority if ticket else None,
        "tags": ticket.tags if ticket else "",
        "site": conversation.site.key if conversation.site_id else "",
        "site_name": conversation.site.name if conversation.site_id else "",
        "language": conversation.language,
        "waiting_s": int((now - conversation.handed_off_at).total_seconds()) if conversation.handed_off_at else 0,
        # The console's timers tick from these, on the agent's clock (waiting_s corrects for a skewed one).
        "handed_off_at": _iso(conversation.handed_off_at),
        "last_message_at": _iso(conversation.last_message_at),
        "resolved_at": _iso(conversation.resolved_at),
        "snoozed_until": _iso(conversation.snoozed_until),
        "rating": rating.score if rating else None,
        # Opened by the site's signed-in user, proven by the site's signature (chat.identity).
        "identity_verified": conversation.identity_verified,
        "contact": contact_to_staff_dict(conversation.contact) if conversation.contact_id else None,
    }


def contact_to_staff_dict(contact: Contact) -> dict:
    """A conversation's contact as the console shows it: the site's own user id when verified."""
    return {
        "id": contact.pk,
        "external_id": contact.external_id,
        "name": contact.name,
        "email": contact.email,
        "verified": contact.verified,
    }


def queue_for_agent(*, agent) -> list[dict]:
    """Waiting conversations (oldest first within priority) and the agent's own, as the console lists them."""
    rows = _queue_rows().filter(
        Q(status=Conversation.Status.QUEUED) | Q(status=Conversation.Status.AGENT, assignee=agent)
    )
    now = timezone.now()
    entries = [_queue_entry(conversation, now) for conversation in rows[:CONSOLE_QUEUE_MAX]]
    if len(entries) == CONSOLE_QUEUE_MAX:
        listed = {entry["id"] for entry in entries}
        own = rows.filter(status=Conversation.Status.AGENT, assignee=agent)
        entries += [_queue_entry(c, now) for c in own if str(c.id) not in listed]
    return entries


# Statuses some console view lists: a conversation with the bot is in none.
LISTED_STATUSES = (
    Conversation.Status.QUEUED,
    Conversation.Status.AGENT,
    Conversation.Status.SNOOZED,
    Conversation.Status.RESOLVED,
)


def queue_entry(*, conversation_id) -> dict | None:
    """One conversation as the console's lists show it (whoever's it is); None if no view lists it (the bot has it).

    Sent to every agent when it changes, so each console updates its list without asking the database. One query.
    """
    conversation = _queue_rows().filter(pk=conversation_id, status__in=LISTED_STATUSES).first()
    return _queue_entry(conversation, timezone.now()) if conversation else None


def queue_entry_visible_to(entry: dict, username: str) -> bool:
    """Whether an agent's queue lists the entry: everyone sees the waiting ones, each agent their own."""
    return console_entry_matches(entry, view="queue", filters={}, username=username)


# The console's views: "queue" (waiting, and the agent's own: the default), "mine" (the agent's own, snoozed too),
# "unassigned" (waiting), "all" (every open one: waiting, with an agent, snoozed), "snoozed" and "resolved" (the
# newest first, CONSOLE_RESOLVED_PAGE at a time). Each is (statuses, only the agent's own).
Status = Conversation.Status
CONSOLE_VIEWS: dict[str, tuple[tuple[str, ...], bool]] = {
    "queue": ((Status.QUEUED, Status.AGENT), True),  # the agent's own only for AGENT: see _view_q
    "mine": ((Status.AGENT, Status.SNOOZED), True),
    "unassigned": ((Status.QUEUED,), False),
    "all": ((Status.QUEUED, Status.AGENT, Status.SNOOZED), False),
    "snoozed": ((Status.SNOOZED,), False),
    "resolved": ((Status.RESOLVED,), False),
}
CONSOLE_RESOLVED_PAGE = 50
CONSOLE_FILTERS = ("site", "language", "tag", "priority")


def _view_q(view: str, agent) -> Q:
    statuses, own_only = CONSOLE_VIEWS[view]
    if view == "queue":
        return Q(status=Status.QUEUED) | Q(status=Status.AGENT, assignee=agent)
    return Q(status__in=statuses, assignee=agent) if own_only else Q(status__in=statuses)


def console_filters_clean(filters) -> dict:
    """The console list's filters as the selectors take them: site (a key), language (a base language such as
    "zh"), tag (one ticket tag) and priority (1-4); empty ones dropped. ActionRefused("invalid_frame") otherwise."""
    if filters is None:
        return {}
    if not isinstance(filters, dict) or set(filters) - set(CONSOLE_FILTERS):
        raise ActionRefused("invalid_frame", f"Filters are an object of {', '.join(CONSOLE_FILTERS)}.")
    cleaned = {}
    for name in ("site", "language", "tag"):
        value = filters.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > 100:
            raise ActionRefused("invalid_frame", f"The {name} filter is text of at most 100 characters.")
        cleaned[name] = language_base(value) if name == "language" else value.strip()
    priority = filters.get("priority")
    if priority not in (None, ""):
        if isinstance(priority, str) and priority.isdigit():
            priority = int(priority)
        if priority not in Ticket.Priority.values or isinstance(priority, bool):
            raise ActionRefused("invalid_frame", "The priority filter is 1 (low) to 4 (urgent).")
        cleaned["priority"] = priority
    return cleaned


def _filters_q(filters: dict) -> Q:
    q = Q()
    if "site" in filters:
        q &= Q(site__key=filters["site"])
    if "language" in filters:
        base = filters["language"]
        q &= Q(language__iexact=base) | Q(language__istartswith=f"{base}-") | Q(language__istartswith=f"{base}_")
    if "tag" in filters:
        q &= Q(ticket__tags__iregex=_tag_regex(filters["tag"]))
    if "priority" in filters:
        q &= Q(ticket__priority=filters["priority"])
    return q


def console_entry_matches(entry: dict, *, view: str, filters: dict, username: str) -> bool:
    """Whether the console's `view` with these (cleaned) filters lists the entry (a queue_entry): decided from the
    entry alone, so a change reaches every console without a query per agent."""
    statuses, own_only = CONSOLE_VIEWS[view]
    if entry["status"] not in statuses:
        return False
    if own_only and entry["assignee"] != username and not (view == "queue" and entry["status"] == Status.QUEUED):
        return False
    if "site" in filters and entry["site"] != filters["site"]:
        return False
    if "language" in filters and language_base(entry["language"]) != filters["language"]:
        return False
    if "tag" in filters and not re.search(_tag_regex(filters["tag"]), entry["tags"] or "", re.IGNORECASE):
        return False
    return "priority" not in filters or entry["priority"] == filters["priority"]


def _cursor_parse(before: str) -> tuple[datetime.datetime, str]:
    try:
        moment, conversation_id = before.split("|", 1)
        return datetime.datetime.fromisoformat(moment), str(uuid.UUID(conversation_id))
    except (AttributeError, ValueError) as exc:
        raise ActionRefused("invalid_frame", "`before` is the `next` cursor of an earlier list.") from exc


def console_list(*, agent, view: str, filters=None, before: str | None = None) -> dict:
    """A console view's conversations, with filters (console_filters_clean). One query.

    The open views list up to CONSOLE_QUEUE_MAX in queue order (urgent first, then who waited longest); "resolved"
    lists the newest first, CONSOLE_RESOLVED_PAGE at a time: `next` is the cursor of the following page (give it
    as `before`), None at the end.
    """
    if view not in CONSOLE_VIEWS:
        raise ActionRefused("invalid_frame", f"The view is one of {', '.join(CONSOLE_VIEWS)}.")
    filters = console_filters_clean(filters)
    rows = _queue_rows().filter(_view_q(view, agent), _filters_q(filters))
    now = timezone.now()
    if view != "resolved":
        entries = [_queue_entry(conversation, now) for conversation in rows[:CONSOLE_QUEUE_MAX]]
        return {"view": view, "filters": filters, "conversations": entries, "next": None}
    rows = rows.filter(resolved_at__isnull=False).order_by("-resolved_at", "-id")
    if before:
        moment, conversation_id = _cursor_parse(before)
        rows = rows.filter(Q(resolved_at__lt=moment) | Q(resolved_at=moment, id__lt=conversation_id))
    page = list(rows[: CONSOLE_RESOLVED_PAGE + 1])
    more = len(page) > CONSOLE_RESOLVED_PAGE
    page = page[:CONSOLE_RESOLVED_PAGE]
    cursor = f"{page[-1].resolved_at.isoformat()}|{page[-1].id}" if more else None
    return {"view": view, "filters": filters, "conversations": [_queue_entry(c, now) for c in page], "next": cursor}


class ConsoleAccessLost(Exception):
    """The console's user may no longer use it: signed out, session expired, deactivated, or the right removed."""


def console_user_current(*, user_id, session_key: str | None):
    """The console's user as the database has them now, if they may still use the console; ConsoleAccessLost if not.

    A socket authenticates once, at its handshake; this is asked again for each of its frames and relays, so a
    sign-out, a password change, a deactivation or a removal from the agents' group ends its access at once. Four
    small queries (the session, the user, their permissions).
    """
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key) if session_key else None
    data = session.load() if session is not None else {}  # {} for a session that ended or expired
    if str(data.get(SESSION_KEY, "")) != str(user_id):
        raise ConsoleAccessLost("The session ended.")
    user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
    if user is None or not constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        raise ConsoleAccessLost("The account is inactive or its password changed.")
    if not user.has_perm("helpdesk.use_console"):
        raise ConsoleAccessLost("The account may no longer use the console.")
    return user


# What each console frame needs on the conversation it names, beside the console itself: None (nothing: the frame
# names none, or its service decides, as a claim's does: only a queued conversation can be claimed), "any" (it
# exists: any agent may read any conversation, to see who has it and take it over), "queued_or_own" (waiting in the
# queue, or assigned to this agent), "own" (acting: assigned to this agent). Supervisors (managers, admins) pass
# every rule. The second item is a permission the frame needs too.
CONSOLE_FRAME_ACCESS: dict[str, tuple[str | None, str | None]] = {
    "claim": (None, None),
    "open": ("any", None),
    "message": ("own", None),
    # A private note is for colleagues: any agent may leave one on any conversation (context for its assignee, a
    # warning on a queued one), as in Zendesk and Chatwoot; the customer never receives it.
    "note": ("any", None),
    "hand_back": ("own", None),
    "resolve": ("own", None),
    # Its service decides who: the last agent, or anyone if it had none (supervisors any).
    "reopen": ("any", None),
    "snooze": ("own", None),
    "typing": ("own", None),
    "suggest": ("own", None),
    "transfer": ("own", None),
    "ticket": ("own", roles.TICKET_EDIT_PERMISSION),
    "presence": (None, None),
    "history": ("any", None),
    "ping": (None, None),
    "list": (None, None),
    "take_over": ("any", None),
}


def console_frame_check(*, user, frame_type: str, conversation_id) -> None:
    """ActionRefused("forbidden") unless `user` may send this console frame about this conversation.

    Raises Conversation.DoesNotExist (or ValidationError for an id that is not one) for an unknown conversation.
    """
    if frame_type not in CONSOLE_FRAME_ACCESS:  # a frame type nobody said what it needs is refused to everyone
        raise ActionRefused("forbidden", "This action is not available.")
    rule, permission = CONSOLE_FRAME_ACCESS[frame_type]
    if permission is not None and not user.has_perm(permission):
        raise ActionRefused("forbidden", "You do not have the permission to do that.")
    if rule is None or rule == "any" or user.has_perm(roles.SUPERVISOR_PERMISSION):
        if rule is not None:
            Conversation.objects.filter(pk=conversation_id).values("pk").get()  # exists, for the same not_found
        return
    status, assignee_id = Conversation.objects.filter(pk=conversation_id).values_list("status", "assignee_id").get()
    if assignee_id == user.pk or (rule == "queued_or_own" and status == Conversation.Status.QUEUED):
        return
    raise ActionRefused("forbidden", "This conversation is neither waiting in the queue nor yours.")


def staff_messages_page(*, conversation_id, before_seq: int | None = None) -> tuple[list[dict], bool]:
    """The latest messages (bot turns and notes included) before `before_seq` (all, if None), oldest first, at most
    CONSOLE_HISTORY_PAGE of them and CONSOLE_PAGE_MAX_BYTES of JSON; and whether older ones remain."""
    rows = Message.objects.filter(conversation_id=conversation_id).select_related("author").order_by("-seq")
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    limit = settings.CONSOLE_HISTORY_PAGE
    page, size, has_more = [], 0, False
    for message in rows[: limit + 1].prefetch_related(attachments_prefetch()):
        data = staff_message_to_dict(message)
        size += len(json.dumps(data, ensure_ascii=False).encode())
        if len(page) == limit or (page and size > CONSOLE_PAGE_MAX_BYTES):
            has_more = True
            break
        page.append(data)
    page.reverse()
    return page, has_more


def conversation_for_staff(*, conversation_id) -> dict:
    """The conversation with its latest page of messages (`has_more`: older ones remain, see staff_messages_page),
    bot turns and notes included, with the handoff reason and summary, and the customer's rating (None if none)."""
    conversation = Conversation.objects.select_related("assignee", "ticket", "site", "rating", "contact").get(
        pk=conversation_id
    )
    ticket = getattr(conversation, "ticket", None)
    rating = getattr(conversation, "rating", None)
    messages, has_more = staff_messages_page(conversation_id=conversation.id)
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "customer": conversation.customer_name or "Customer",
        "email": conversation.customer_email,
        "language": conversation.language,
        "region": conversation.region,
        "site": conversation.site.name if conversation.site_id else "",
        "page_url": conversation.page_url,
        "reason": conversation.handoff_reason,
        "reason_label": conversation.get_handoff_reason_display() if conversation.handoff_reason else "",
        "summary": conversation.handoff_summary,
        "assignee": conversation.assignee.get_username() if conversation.assignee_id else None,
        "messages": messages,
        "has_more": has_more,
        "ticket": {"id": ticket.pk, "status": ticket.status, "priority": ticket.priority, "tags": ticket.tags}
        if ticket
        else None,
        "created_at": _iso(conversation.created_at),
        "resolved_at": _iso(conversation.resolved_at),
        "snoozed_until": _iso(conversation.snoozed_until),
        "rating": {"score": rating.score, "comment": rating.comment, "created_at": _iso(rating.created_at)}
        if rating
        else None,
        "identity_verified": conversation.identity_verified,
        "contact": contact_to_staff_dict(conversation.contact) if conversation.contact_id else None,
    }


def canned_responses_for(*, conversation_id, agent) -> list[dict]:
    """The canned responses with their variables filled in for this conversation and agent."""
    conversation = Conversation.objects.get(pk=conversation_id)
    values = {
        "customer_name": conversation.customer_name or "there",
        "agent_name": agent.get_short_name() or agent.get_username(),
        "company_name": settings.COMPANY_NAME,
    }

    def fill(body: str) -> str:
        for name, value in values.items():
            body = body.replace("{{" + name + "}}", value).replace("{{ " + name + " }}", value)
        return body

    return [{"title": r.title, "shortcut": r.shortcut, "text": fill(r.body)} for r in CannedResponse.objects.all()]


def console_users() -> QuerySet:
    """Active users who may take conversations: the console permission directly, through a group, or superusers."""
    permission = Permission.objects.filter(codename="use_console", content_type__app_label="helpdesk")
    users = get_user_model().objects.filter(is_active=True)
    return users.filter(
        Q(user_permissions__in=permission) | Q(groups__permissions__in=permission) | Q(is_superuser=True)
    ).distinct()


def agents_for_transfer(*, exclude) -> list[str]:
    """Usernames of the other active staff who may use the console."""
    return sorted(console_users().exclude(pk=exclude.pk).values_list(get_user_model().USERNAME_FIELD, flat=True))


def tickets_visible(*, key) -> Q:
    """Which tickets an API key reads: those of the conversations it reads (chat.api.selectors.conversations_visible),
    and tickets with no conversation."""
    conversations = Conversation.objects.filter(chat_api_selectors.conversations_visible(key=key))
    return Q(conversation__isnull=True) | Q(conversation__in=conversations)


def tickets_filter(
    *,
    visible_to,
    status: str | None = None,
    priority: int | None = None,
    assignee: str | None = None,
    tag: str | None = None,
    created_after: datetime.datetime | None = None,
    created_before: datetime.datetime | None = None,
) -> QuerySet[Ticket]:
    """Tickets matching every filter given, newest first. `assignee` is a username, `tag` one of the tags."""
    rows = Ticket.objects.select_related("assignee").filter(tickets_visible(key=visible_to))
    if status:
        rows = rows.filter(status=status)
    if priority is not None:
        rows = rows.filter(priority=priority)
    if assignee:
        rows = rows.filter(assignee__username=assignee)
    if tag is not None:
        rows = rows.filter(tags__iregex=_tag_regex(tag)) if tag.strip() else rows.none()
    if created_after:
        rows = rows.filter(created_at__gte=created_after)
    if created_before:
        rows = rows.filter(created_at__lt=created_before)
    return rows.order_by("-created_at", "-id")


def _tag_regex(tag: str) -> str:
    # Tags are stored comma-separated ("billing, vip"): match one whole tag, spaces around it ignored. Every
    # character that is not a letter or digit is escaped, which means itself in PostgreSQL's and Python's regexes.
    literal = "".join(c if c.isalnum() else "\\" + c for c in tag.strip())
    return rf"(^|,)\s*{literal}\s*(,|$)"


def ticket_find(*, ticket_id: int, visible_to) -> Ticket | None:
    """The ticket, or None (also for one `visible_to` may not read)."""
    return Ticket.objects.select_related("assignee").filter(tickets_visible(key=visible_to), pk=ticket_id).first()


def conversation_export(*, conversation_id: str, with_notes: bool, visible_to) -> dict | None:
    """A conversation as one document: itself, every message (notes only `with_notes`) and its ticket; None if
    there is no such conversation (or `visible_to`, an API key, may not read it)."""
    conversation = chat_api_selectors.conversation_find(conversation_id=conversation_id, visible_to=visible_to)
    if conversation is None:
        return None
    messages = chat_api_selectors.messages_filter(conversation=conversation, with_notes=with_notes)
    ticket = Ticket.objects.select_related("assignee").filter(conversation=conversation).first()
    return {
        "exported_at": timezone.now(),
        "conversation": conversation,
        "messages": messages,  # a QuerySet, oldest first: the export reads it a batch at a time
        "ticket": ticket,
    }


def sites_for_choice() -> list[dict]:
    """The sites as a select lists them: key and name."""
    return [{"key": key, "name": name} for key, name in Site.objects.order_by("name").values_list("key", "name")]


# Knowledge gaps: what customers asked that the bot could not answer. These selectors read chat's models (as the
# queue's do); they never write them.
GAP_REASONS = (HandoffReason.NO_KNOWLEDGE, HandoffReason.MODEL_DEFERRED, HandoffReason.CUSTOMER_REQUEST)
GAP_HANDOFFS_MAX = 500  # the newest handoffs read per page view
_TRAILING_PUNCTUATION = ".,;:!?…~-–—·。，、；：！？～ \t\n\"'“”‘’)）"


def question_normalize(text: str) -> str:
    """The form questions are grouped by: lower case, whitespace collapsed, trailing punctuation stripped."""
    return " ".join(text.lower().split()).rstrip(_TRAILING_PUNCTUATION)


def knowledge_gaps(*, days: int, language: str = "", limit: int = GAP_HANDOFFS_MAX) -> dict:
    """The questions of the newest `limit` conversations handed off in the last `days` days for want of an answer
    (no knowledge, the model deferred, the customer asked for a person), grouped by their normalised text, most
    asked first. `language` is a base language ("zh" also matches "zh-CN"); empty: every language. One query.

    The question is the message that led to the handoff, else the customer's last message before it.
    """
    asked_before = (
        Message.objects.filter(
            conversation=OuterRef("pk"), role=Message.Role.CUSTOMER, created_at__lte=OuterRef("handed_off_at")
        )
        .exclude(content="")
        .order_by("-seq")
        .values("content")[:1]
    )
    agent_answered = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.AGENT).exclude(content="")
    rows = Conversation.objects.filter(
        handoff_reason__in=GAP_REASONS, handed_off_at__gte=timezone.now() - datetime.timedelta(days=days)
    )
    if language:
        tags = Q(language__istartswith=f"{language}-") | Q(language__istartswith=f"{language}_")
        rows = rows.filter(Q(language__iexact=language) | tags)
    rows = (
        rows.annotate(
            question=Coalesce(
                NullIf("handoff_message__content", Value("")), Subquery(asked_before), output_field=TextField()
            ),
            agent_answered=Exists(agent_answered),
        )
        .order_by("-handed_off_at")
        .values("id", "language", "status", "handoff_reason", "handed_off_at", "question", "agent_answered")[:limit]
    )
    reasons = dict(HandoffReason.choices)
    groups: dict[str, dict] = {}
    handoffs = without_question = 0
    for row in rows:
        handoffs += 1
        key = question_normalize(row["question"] or "")
        if not key:
            without_question += 1
            continue
        group = groups.get(key)
        if group is None:  # rows come newest first: the group shows its newest wording
            group = groups[key] = {
                "question": " ".join(row["question"].split()),
                "key": key,
                "languages": set(),
                "reasons": {},
                "last_seen": row["handed_off_at"],
                "conversations": [],
            }
        group["languages"].add(language_base(row["language"]) or "?")
        group["reasons"][row["handoff_reason"]] = reasons.get(row["handoff_reason"], row["handoff_reason"])
        group["conversations"].append(
            {
                "id": row["id"],
                "status": row["status"],
                "language": row["language"],
                "reason": row["handoff_reason"],
                "handed_off_at": row["handed_off_at"],
                "draftable": row["status"] == Conversation.Status.RESOLVED and row["agent_answered"],
            }
        )
    listed = sorted(groups.values(), key=lambda g: (-len(g["conversations"]), -g["last_seen"].timestamp()))
    for group in listed:
        group["count"] = len(group["conversations"])
        group["languages"] = sorted(group["languages"])
        group["reasons"] = list(group["reasons"].values())
    return {
        "groups": listed,
        "handoffs": handoffs,
        "without_question": without_question,
        "truncated": handoffs >= limit,
    }


def knowledge_gap_answer(*, conversation_id) -> dict | None:
    """What a draft article is made of: the customer's question and the agent's messages (in order) of a
    conversation, with its status, language and site key; None if there is no such conversation. Two queries."""
    conversation = Conversation.objects.select_related("site", "handoff_message").filter(pk=conversation_id).first()
    if conversation is None:
        return None
    messages = list(
        conversation.messages.filter(role__in=[Message.Role.CUSTOMER, Message.Role.AGENT])
        .exclude(content="")
        .order_by("seq")
        .values_list("role", "content", "created_at")
    )
    question = conversation.handoff_message.content if conversation.handoff_message_id else ""
    if not question.strip():
        asked = [
            content
            for role, content, at in messages
            if role == Message.Role.CUSTOMER
            and (conversation.handed_off_at is None or at <= conversation.handed_off_at)
        ]
        question = asked[-1] if asked else ""
    return {
        "question": " ".join(question.split()),
        "answers": [content.strip() for role, content, _at in messages if role == Message.Role.AGENT],
        "status": conversation.status,
        "resolved": conversation.status == Conversation.Status.RESOLVED,
        "language": conversation.language,
        "site": conversation.site.key if conversation.site_id else "",
    }
