"""Request and response shapes of the bot endpoints (pydantic, through django-ninja)."""

from typing import Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Field, Schema
from pydantic import field_validator

SESSION_ID_PATTERN = r"^[A-Za-z0-9._:@\-]{1,128}$"


class ChatIn(Schema):
    """One customer turn. The same `session_id` continues the same conversation."""

    session_id: str = Field(..., pattern=SESSION_ID_PATTERN, description="Your id for the customer's session.")
    user_input: str = Field(..., min_length=1, max_length=100_000, description="The customer's message.")
    max_tokens: int = Field(512, ge=1, le=100_000, description="Longest reply in tokens (clamped by the server).")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stream: bool = Field(False, description="Answer with Server-Sent Events: `delta` events, then `done`.")
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="e.g. en, zh-CN.")
    region: str = Field("", max_length=64, description="Where the customer is; reaches the prompt.")
    customer_name: str = Field("", max_length=120)
    customer_email: str = Field("", max_length=254, description="Where the team can answer after a handoff.")

    @field_validator("customer_email")
    @classmethod
    def email_valid(cls, value: str) -> str:
        if value:
            try:
                validate_email(value)
            except DjangoValidationError as exc:
                raise ValueError("not a valid email address") from exc
        return value


class Usage(Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatOut(Schema):
    """What became of the turn. `response` is the bot's answer when `status` is "answered"."""

    session_id: str
    conversation_id: str
    status: Literal["answered", "handed_off", "resolved", "superseded"]
    conversation_status: Literal["bot", "queued", "agent", "resolved"]
    response: str | None = None
    notice: str | None = Field(None, description="What the customer was told, when handed off.")
    message_seq: int
    reply_seq: int | None = None
    engine: str | None = None
    usage: Usage | None = None
    ttft_ms: int | None = None
    tokens_per_s: float | None = None


class ErrorDetail(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorDetail


class ContentPart(Schema):
    type: Literal["text"]
    text: str = Field(..., max_length=100_000)


class ChatCompletionMessage(Schema):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] = Field(..., description="Text, or a list of text parts.")
    name: str | None = Field(None, max_length=64)

    @field_validator("content")
    @classmethod
    def content_not_too_long(cls, value):
        if isinstance(value, str) and len(value) > 100_000:
            raise ValueError("content is too long")
        return value

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(Schema):
    include_usage: bool = False


class ChatCompletionIn(Schema):
    """The OpenAI Chat Completions request; fields the helpdesk does not support are refused, not ignored."""

    model: str = Field(..., min_length=1, max_length=128, description="An id from GET /v1/models.")
    messages: list[ChatCompletionMessage] = Field(..., min_length=1, max_length=500)
    max_tokens: int | None = Field(None, ge=1, le=100_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=100_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int = Field(1, ge=1, le=1, description="Only 1 is supported.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
