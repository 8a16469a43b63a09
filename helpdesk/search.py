"""The console's search across conversations: by the customer's name or email, by what was said in them, and by
the staff's notes about the customer.

What was said is found with PostgreSQL's full-text search over the messages' search terms (chat.search: the
knowledge base's segmentation, so Chinese and English both work; a GIN index, chat_message_fts, serves it) and
ranked by ts_rank. The embedded mode's SQLite has no such index: there the query is looked for as it is, in the
messages' content. Private notes are searched too: the page is for staff only. Any agent finds any conversation
here, as they may read any; acting on one stays with its assignee.

A page of results costs three queries whatever its size: the count, the page, and the snippets of its rows.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Lower, RowNumber

from chat.models import Conversation, Message, Site
from chat.search import Piece, Query, query_parse, snippet, tsquery
from helpdesk.models import CustomerNote

SEARCH_PAGE = 25  # conversations per page of results
QUERY_MAX_CHARS = 200
# A match in the customer's name or email, or in a note about them, ranks above any match in the messages
# (ts_rank of a few terms stays well below 1).
RANK_CUSTOMER, RANK_NOTE = 2.0, 1.0
_MATCH_SQL = "to_tsvector('simple', search_terms) @@ to_tsquery('simple', %s)"
_RANK_SQL = "ts_rank(to_tsvector('simple', search_terms), to_tsquery('simple', %s))"


@dataclass(frozen=True)
class SearchFilters:
    """What the search page was asked: the text, and the status and site it is narrowed to (empty: any)."""

    query: str = ""
    status: str = ""
    site_id: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.query or self.status or self.site_id)


def search_filters_parse(params: Mapping[str, str]) -> SearchFilters:
    """The search page's parameters (q, status, site), values it does not know dropped."""
    query = " ".join(params.get("q", "").split())[:QUERY_MAX_CHARS]
    status = params.get("status", "")
    site = params.get("site", "")
    return SearchFilters(
        query=query,
        status=status if status in Conversation.Status.values else "",
        site_id=int(site) if site.isdigit() and len(site) < 10 else None,
    )


def search_sites() -> list[tuple[int, str]]:
    """The sites the search can be narrowed to: (id, name), by name."""
    return list(Site.objects.order_by("name").values_list("pk", "name"))


def _full_text() -> bool:
    return connection.vendor == "postgresql"


def _messages_matching(filters: SearchFilters, parsed: Query) -> QuerySet[Message] | None:
    """The searchable messages that match the query (system messages are the product's, not anyone's words)."""
    messages = Message.objects.exclude(role=Message.Role.SYSTEM)
    if not _full_text():
        return messages.filter(content__icontains=filters.query)
    if not parsed:  # only stop words, say: nothing to look for in the messages
        return None
    return messages.filter(RawSQL(_MATCH_SQL, [tsquery(parsed)], output_field=BooleanField()))


def _message_rank(parsed: Query):
    if _full_text():
        return RawSQL(_RANK_SQL, [tsquery(parsed)], output_field=FloatField())
    return Value(0.0)


def conversations_search(filters: SearchFilters) -> QuerySet[Conversation]:
    """The conversations that match, best first (then the most recently active), each annotated with its `rank`
    and `last_activity`. With no query, those of the status and site asked, the most recently active first."""
    rows = Conversation.objects.select_related("site", "assignee").annotate(
        last_activity=Coalesce("last_message_at", "created_at")
    )
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.site_id:
        rows = rows.filter(site_id=filters.site_id)
    if not filters.query:
        return rows.annotate(rank=Value(0.0)).order_by("-last_activity", "-pk")
    query, parsed = filters.query, query_parse(filters.query)
    by_customer = Q(customer_name__icontains=query) | Q(customer_email__icontains=query)
    noted = CustomerNote.objects.filter(body__icontains=query).values("customer_email")
    by_note = Q(email_key__in=noted) & ~Q(customer_email="")
    rank = Case(
        When(by_customer, then=Value(RANK_CUSTOMER)),
        When(by_note, then=Value(RANK_NOTE)),
        default=0.0,
        output_field=FloatField(),
    )
    matching = _messages_matching(filters, parsed)
    found = by_customer | by_note
    if matching is not None:
        found |= Q(pk__in=matching.values("conversation_id"))
        best = matching.filter(conversation=OuterRef("pk")).annotate(r=_message_rank(parsed)).order_by("-r")
        rank = rank + Coalesce(Subquery(best.values("r")[:1], output_field=FloatField()), 0.0)
    rows = rows.alias(email_key=Lower("customer_email")).filter(found)
    return rows.annotate(rank=rank).order_by("-rank", "-last_activity", "-pk")


@dataclass(frozen=True)
class SearchResult:
    """One conversation found, as the results list shows it: the customer's name and email with what matched in
    them marked, and the best matching message's snippet (empty when only the customer or a note matched)."""

    conversation: Conversation
    customer: list[Piece]
    email: list[Piece]
    snippet: list[Piece]
    snippet_role: str
    matched_note: bool


def _best_messages(conversations: list[Conversation], filters: SearchFilters, parsed: Query) -> dict:
    """The best matching message of each of `conversations` (conversation id → (role, content)), in one query."""
    matching = _messages_matching(filters, parsed) if filters.query else None
    if matching is None or not conversations:
        return {}
    order = [_message_rank(parsed).desc(), F("seq").desc()]
    best = (
        matching.filter(conversation_id__in=[c.pk for c in conversations])
        .annotate(n=Window(RowNumber(), partition_by=[F("conversation_id")], order_by=order))
        .filter(n=1)
        .values_list("conversation_id", "role", "content")
    )
    return {conversation_id: (role, content) for conversation_id, role, content in best}


def search_results(conversations: list[Conversation], filters: SearchFilters) -> list[SearchResult]:
    """`conversations` (a page of conversations_search) as results, their snippets read in one query."""
    parsed = query_parse(filters.query)
    best = _best_messages(conversations, filters, parsed)
    roles = dict(Message.Role.choices)
    results = []
    for conversation in conversations:
        role, content = best.get(conversation.pk, ("", ""))
        name = conversation.customer_name or "Customer"
        customer = (
            snippet(name, phrase=filters.query, whole=True) if conversation.customer_name else [Piece(name, False)]
        )
        results.append(
            SearchResult(
                conversation=conversation,
                customer=customer,
                email=snippet(conversation.customer_email, phrase=filters.query, whole=True),
                snippet=snippet(content, words=parsed.highlights, phrase=filters.query) if content else [],
                snippet_role=roles.get(role, ""),
                matched_note=bool(filters.query) and not content and conversation.rank == RANK_NOTE,
            )
        )
    return results
