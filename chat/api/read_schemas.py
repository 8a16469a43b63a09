"""Shapes of the read endpoints: query filters in, conversations, messages, ratings and API keys out."""

import datetime
import re
import uuid
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import BeforeValidator

from chat.api.pagination import PageOut
from chat.api.schemas import SESSION_ID_PATTERN
from chat.models import ApiKey, Conversation, Message
from chat.serializers import ATTACHMENTS_ATTR

ConversationStatus = Literal[tuple(Conversation.Status.values)]
MessageRole = Literal[tuple(Message.Role.values)]
MessageState = Literal[tuple(Message.State.values)]
KeyScope = Literal[tuple(ApiKey.Scope.values)]

# PostgreSQL text cannot hold NUL, so a filter value with one would fail in the database instead of matching nothing.
SITE_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
USERNAME_PATTERN = r"^[^\x00]{1,150}$"


# ISO 8601 date and time (RFC 3339 without its required parts): pydantic alone would also take "0.5" as a Unix time.
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?$")


def _iso_utc(value) -> datetime.datetime:
    """An ISO 8601 date and time as an aware datetime in UTC (without an offset it is UTC); ValueError otherwise."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and ISO_DATETIME.match(value):
        parsed = datetime.datetime.fromisoformat(value)  # ValueError for impossible dates such as 2025-02-30
    else:
        raise ValueError("use an ISO 8601 date and time, e.g. 2025-01-31T09:00:00Z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return parsed.astimezone(datetime.UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("date out of range") from exc


AwareDatetime = Annotated[
    datetime.datetime,
    BeforeValidator(_iso_utc),
    Field(description="ISO 8601, e.g. 2025-01-31T09:00:00Z; without an offset it is UTC."),
]


class ConversationFilters(Schema):
    status: ConversationStatus = None
    channel: Literal["widget", "api"] = Field(None, description="api: opened through the REST API.")
    site: str = Field(None, pattern=SITE_KEY_PATTERN, description="A site key.")
    session_id: str = Field(None, pattern=SESSION_ID_PATTERN, description="The integration's session id.")
    created_after: AwareDatetime = None
    created_before: AwareDatetime = None
    assignee: str = Field(None, pattern=USERNAME_PATTERN, description="The agent's username.")
    rated: bool = Field(None, description="Whether the customer rated it.")


class MessageFilters(Schema):
    after_seq: int = Field(0, ge=0, le=2_147_483_647, description="Only messages with a greater sequence number.")


class RatingFilters(Schema):
    score: int = Field(None, ge=1, le=5)
    min_score: int = Field(None, ge=1, le=5)
    max_score: int = Field(None, ge=1, le=5)
    created_after: AwareDatetime = None
    created_before: AwareDatetime = None
    site: str = Field(None, pattern=SITE_KEY_PATTERN, description="A site key.")


class SiteRef(Schema):
    key: str
    name: str


class RatingBrief(Schema):
    score: int
    comment: str
    created_at: datetime.datetime


class ConversationOut(Schema):
    id: uuid.UUID
    status: ConversationStatus
    channel: Literal["widget", "api"]
    site: SiteRef | None = Field(..., description="The site whose widget opened it; null for the API.")
    api_key: str | None = Field(..., description="The prefix of the API key that opened it.")
    session_id: str | None
    language: str
    region: str
    customer_name: str
    customer_email: str
    contact_id: int | None = Field(..., description="The contact this customer is (/api/v1/contacts), if known.")
    page_url: str
    last_seq: int = Field(..., description="The sequence number of the newest message.")
    handoff_reason: str | None
    handoff_summary: str
    handed_off_at: datetime.datetime | None
    assignee: str | None = Field(..., description="The username of the agent who has it.")
    rating: RatingBrief | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    resolved_at: datetime.datetime | None

    @staticmethod
    def resolve_site(obj: Conversation) -> Conversation | None:
        return obj.site if obj.site_id else None

    @staticmethod
    def resolve_api_key(obj: Conversation) -> str | None:
        return obj.api_key.prefix if obj.api_key_id else None

    @staticmethod
    def resolve_session_id(obj: Conversation) -> str | None:
        return obj.session_id or None

    @staticmethod
    def resolve_handoff_reason(obj: Conversation) -> str | None:
        return obj.handoff_reason or None

    @staticmethod
    def resolve_assignee(obj: Conversation) -> str | None:
        return obj.assignee.get_username() if obj.assignee_id else None

    @staticmethod
    def resolve_rating(obj: Conversation):
        return getattr(obj, "rating", None)


class ConversationPage(PageOut):
    items: list[ConversationOut]


class MessageStats(Schema):
    engine: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: int | None
    tokens_per_s: float | None


class AttachmentOut(Schema):
    id: uuid.UUID
    name: str = Field(..., description="The sender's file name, cleaned, with the extension of what the file is.")
    content_type: str = Field(..., description="What the file's bytes are (checked), e.g. image/png.")
    size: int = Field(..., description="Bytes.")
    created_at: datetime.datetime
    url: str = Field(..., description="Where the API serves its bytes (with the same key).")

    @staticmethod
    def resolve_url(obj) -> str:
        return f"/api/v1/conversations/{obj.conversation_id}/attachments/{obj.id}"


class MessageOut(Schema):
    seq: int
    role: MessageRole = Field(..., description="note: a private note of the staff (admin scope only).")
    content: str
    state: MessageState
    author: str | None = Field(..., description="The username of the agent, for agent messages and notes.")
    stats: MessageStats | None = Field(..., description="For bot messages: how the reply was generated.")
    created_at: datetime.datetime
    completed_at: datetime.datetime | None
    attachments: list[AttachmentOut] = Field(..., description="Files sent with the message (its content a caption).")

    @staticmethod
    def resolve_author(obj: Message) -> str | None:
        return obj.author.get_username() if obj.author_id else None

    @staticmethod
    def resolve_stats(obj: Message) -> Message | None:
        return obj if obj.role == Message.Role.BOT else None

    @staticmethod
    def resolve_attachments(obj: Message) -> list:
        return getattr(obj, ATTACHMENTS_ATTR, None) or []


class MessagePage(PageOut):
    items: list[MessageOut]


class RatingOut(Schema):
    conversation_id: uuid.UUID
    score: int
    comment: str
    created_at: datetime.datetime
    assignee: str | None = Field(..., description="The username of the agent who had the conversation.")
    site: str | None = Field(..., description="The site key; null for conversations opened through the API.")

    @staticmethod
    def resolve_assignee(obj) -> str | None:
        return obj.conversation.assignee.get_username() if obj.conversation.assignee_id else None

    @staticmethod
    def resolve_site(obj) -> str | None:
        return obj.conversation.site.key if obj.conversation.site_id else None


class RatingPage(PageOut):
    items: list[RatingOut]


class ApiKeyOut(Schema):
    name: str
    prefix: str = Field(..., description="Keys read hd_<prefix>_<secret>; the prefix names the key.")
    scopes: list[KeyScope]
    rate_limit_per_minute: int | None = Field(..., description="null: the server's default.")
    acts_as: str | None = Field(..., description="The username of the staff member agent actions are taken as.")
    created_by: str | None
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None
    revoked_at: datetime.datetime | None
    active: bool

    @staticmethod
    def resolve_created_by(obj: ApiKey) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None

    @staticmethod
    def resolve_acts_as(obj: ApiKey) -> str | None:
        return obj.acts_as.get_username() if obj.acts_as_id else None

    @staticmethod
    def resolve_active(obj: ApiKey) -> bool:
        return obj.is_active


class ApiKeyPage(PageOut):
    items: list[ApiKeyOut]
