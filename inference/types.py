"""Plain request and response types shared by every engine (the protocol layer)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChatTurn:
    """One turn of a conversation as the model sees it: role is "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one reply."""

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    frequency_penalty: float = 0.3
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delta:
    """A piece of streamed output. The last one of a stream has `finish_reason` and the token counts."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Health:
    """Whether an engine can serve, and why not."""

    ok: bool
    detail: str = ""
    info: dict = field(default_factory=dict)
