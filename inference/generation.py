"""Serving logic: run one generation on an engine, with a deadline, and time it."""

import queue
import threading
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


_END = object()


class Generation:
    """Iterate it for the text deltas; afterwards `stats` holds the token counts and timing.

    The engine runs on a helper thread so that both deadlines hold even when the engine hangs without yielding:
    no first token within `first_token_timeout_s`, or no finish within `timeout_s`, raises EngineError.
    """

    def __init__(
        self,
        engine: Engine,
        turns: Sequence[ChatTurn],
        params: SamplingParams,
        *,
        timeout_s: float,
        first_token_timeout_s: float | None = None,
    ):
        self.engine = engine
        self.turns = turns
        self.params = params
        self.timeout_s = timeout_s
        self.first_token_timeout_s = min(first_token_timeout_s or timeout_s, timeout_s)
        self.stats = GenerationStats(engine=engine.name)

    def _pump(self, out: queue.Queue, stop: threading.Event) -> None:
        try:
            deltas = self.engine.stream(self.turns, self.params)
            try:
                for delta in deltas:
                    out.put(delta)
                    if stop.is_set():
                        break
            finally:
                # Closing the engine's generator stops decoding and frees its slot at once.
                deltas.close()
        except BaseException as exc:  # handed to the consuming thread, which raises it
            out.put(exc)
        else:
            out.put(_END)

    def __iter__(self) -> Iterator[str]:
        started = time.monotonic()
        deltas: queue.Queue = queue.Queue()
        stop = threading.Event()
        pieces = 0  # text deltas received: one token each from the engines here, counted when no finish arrives
        threading.Thread(target=self._pump, args=(deltas, stop), name="generation", daemon=True).start()
        try:
            while True:
                waiting_first = self.stats.ttft_ms is None
                limit = self.first_token_timeout_s if waiting_first else self.timeout_s
                try:
                    item = deltas.get(timeout=max(0.0, started + limit - time.monotonic()))
                except queue.Empty:
                    what = "no first token within" if waiting_first else "generation took longer than"
                    raise EngineError(f"{what} {limit:g} s") from None
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                if item.text:
                    pieces += 1
                    if waiting_first:
                        self.stats.ttft_ms = round((time.monotonic() - started) * 1000)
                    yield item.text
                if item.finish_reason:
                    self.stats.finish_reason = item.finish_reason
                    self.stats.prompt_tokens = item.prompt_tokens
                    self.stats.completion_tokens = item.completion_tokens
        finally:
            stop.set()
            self.stats.duration_s = time.monotonic() - started
            if self.stats.finish_reason is None:  # stopped early (a guard, a deadline): the pieces streamed so far
                self.stats.completion_tokens = pieces
        if self.stats.finish_reason is None:
            raise EngineError("the engine stream ended without a finish")


def generation_with_deadlines(
    engine: Engine, turns: Sequence[ChatTurn], params: SamplingParams, settings
) -> Generation:
    """A Generation with the deployment's deadlines: INFERENCE_GENERATION_TIMEOUT and INFERENCE_FIRST_TOKEN_TIMEOUT."""
    return Generation(
        engine,
        turns,
        params,
        timeout_s=settings.INFERENCE_GENERATION_TIMEOUT,
        first_token_timeout_s=settings.INFERENCE_FIRST_TOKEN_TIMEOUT,
    )
