"""Serving logic: run one generation on an engine, with a deadline, and time it."""

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from inference.engines.base import Engine, EngineError
from inference.types import ChatTurn, SamplingParams


@dataclass
class GenerationStats:
    """What one generation cost: filled in as the stream is consumed."""

    engine: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    ttft_ms: int | None = None
    duration_s: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: completion tokens after the first, over the time after the first token."""
        if self.ttft_ms is None or self.completion_tokens < 2:
            return None
        decode_s = self.duration_s - self.ttft_ms / 1000
        return round((self.completion_tokens - 1) / decode_s, 2) if decode_s > 0 else None


class Generation:
    """Iterate it for the text deltas; afterwards `stats` holds the token counts and timing."""

    def __init__(self, engine: Engine, turns: Sequence[ChatTurn], params: SamplingParams, *, timeout_s: float):
        self.engine = engine
        self.turns = turns
        self.params = params
        self.timeout_s = timeout_s
        self.stats = GenerationStats(engine=engine.name)

    def __iter__(self) -> Iterator[str]:
        started = time.monotonic()
        deltas = self.engine.stream(self.turns, self.params)
        try:
            for delta in deltas:
                now = time.monotonic()
                if delta.text:
                    if self.stats.ttft_ms is None:
                        self.stats.ttft_ms = round((now - started) * 1000)
                    yield delta.text
                if delta.finish_reason:
                    self.stats.finish_reason = delta.finish_reason
                    self.stats.prompt_tokens = delta.prompt_tokens
                    self.stats.completion_tokens = delta.completion_tokens
                if now - started > self.timeout_s:
                    raise EngineError(f"generation took longer than {self.timeout_s:g} s")
        finally:
            # Closing the engine's generator stops decoding and frees its slot at once.
            deltas.close()
            self.stats.duration_s = time.monotonic() - started
        if self.stats.finish_reason is None:
            raise EngineError("the engine stream ended without a finish")
