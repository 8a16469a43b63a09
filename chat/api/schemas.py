"""Request and response shapes of the bot endpoints (pydantic, through django-ninja)."""

from typing import Annotated, Literal

from django.conf import settings
from ninja import Field, Schema
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool, field_validator
from pydantic import Field as PydanticField

SESSION_ID_PATTERN = r"^[A-Za-z0-9._:@\-]{1,128}$"


def _whole(value):
    # JSON Schema counts 2.0 as an integer; strict pydantic would not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_whole)]


def whole_number(**bounds):
    """WholeNumber within `bounds` (ge, le). The bounds come before the validator: after it, pydantic writes them into
    the schema as "ge"/"le", which JSON Schema ignores, so the spec would allow what the server refuses."""
    return Annotated[int, PydanticField(**bounds), BeforeValidator(_whole)]


class RequestBody(BaseModel):
    """A JSON request body, read strictly: `"stream": 0` or `"max_tokens": "5"` is an error, not a guess.

    A pydantic model rather than ninja's Schema, whose attribute-reading validator would turn any value (a list
    where an object belongs) into a default object.
    """

    model_config = ConfigDict(strict=True)


class ChatIn(RequestBody):
    """One customer turn. The same `session_id` continues the same conversation."""

    session_id: str = Field(..., pattern=SESSION_ID_PATTERN, description="Your id for the customer's session.")
    user_input: str = Field(
        ...,
        min_length=1,
        max_length=settings.CHAT_MAX_MESSAGE_CHARS,
        # At least one character that survives storage: not a space and not a control character (chat.services.base).
        pattern=r"[^\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f]",
        description="The customer's message (not only spaces or control characters).",
    )
    max_tokens: WholeNumber = Field(
        512, ge=1, le=100_000, description="Longest reply in tokens (clamped by the server)."
    )
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stream: StrictBool = Field(False, description="Answer with Server-Sent Events: `delta` events, then `done`.")
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="e.g. en, zh-CN.")
    region: str = Field(
        "",
        max_length=64,
        pattern=r"^(?:[A-Za-z][A-Za-z0-9_+\-/.]{0,63})?$",
        description="Where the customer is, as a time zone (Asia/Shanghai) or country code (CN); reaches the prompt.",
    )
    customer_name: str = Field("", max_length=120)
    customer_email: str = Field(
        "", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$", description="Where the team can answer later."
    )


class Usage(Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Source(Schema):
    article_id: int
    slug: str
    title: str
    url: str = ""
    score: float


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
    grounding: str | None = Field(
        None, description="How the answer was made: extractive, generative, curated, small_talk, rules."
    )
    sources: list[Source] = Field(default_factory=list, description="The help-center articles the answer rests on.")
    handoff_reason: str | None = Field(None, description="Why a person took over (no_knowledge, model_deferred, ...).")


class ErrorDetail(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorDetail


class ContentPart(RequestBody):
    type: Literal["text"]
    text: str = Field(..., max_length=100_000)


class ChatCompletionMessage(RequestBody):
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


class StreamOptions(RequestBody):
    include_usage: bool = False


class ChatCompletionIn(RequestBody):
    """The OpenAI Chat Completions request. Fields it does not use (stop, seed, tools, logprobs...) are ignored."""

    model: str = Field(
        ..., min_length=1, max_length=128, description="An id from GET /v1/models.", examples=["default"]
    )
    messages: list[ChatCompletionMessage] = Field(..., min_length=1, max_length=500)
    max_tokens: whole_number(ge=1, le=100_000) | None = Field(None)
    max_completion_tokens: whole_number(ge=1, le=100_000) | None = Field(None)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: WholeNumber = Field(1, ge=1, le=1, description="Only 1 is supported.")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
