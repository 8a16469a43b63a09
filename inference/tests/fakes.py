"""A fake engine for unit tests that isolate other code. Never used outside tests."""

import time
from collections.abc import Iterator, Sequence

from inference.engines.base import Engine, EngineError
from inference.types import ChatTurn, Delta, Health, SamplingParams


class FakeEngine(Engine):
    """Streams `script` (a list of text pieces, or an Exception to raise at that point) and records its calls.

    Tokens are counted as whitespace-separated words, which makes budgets easy to reason about in tests.
    """

    name = "fake"
    script: list | None = None
    finish_reason = "stop"  # "length": the script ends where max_tokens stopped it
    calls: list[tuple[list[ChatTurn], SamplingParams]] = []

    def __init__(self, max_model_len: int = 4096, delay_s: float = 0.0):
        self._max_model_len = max_model_len
        self.delay_s = delay_s
        FakeEngine.calls = []

    @classmethod
    def from_settings(cls, settings) -> "FakeEngine":
        return cls(max_model_len=settings.INFERENCE_MAX_MODEL_LEN)

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    def count_tokens(self, turns: Sequence[ChatTurn]) -> int:
        return sum(len(turn.content.split()) + 2 for turn in turns)

    def stream(self, turns: Sequence[ChatTurn], params: SamplingParams) -> Iterator[Delta]:
        FakeEngine.calls.append((list(turns), params))
        script = self.script if self.script is not None else ["Hello", " there", "!"]
        produced = 0
        for piece in script:
            if isinstance(piece, Exception):
                raise piece
            time.sleep(self.delay_s)
            produced += 1
            yield Delta(text=piece)
        yield Delta(
            finish_reason=self.finish_reason, prompt_tokens=self.count_tokens(turns), completion_tokens=produced
        )

    def health(self) -> Health:
        return Health(ok=True)


def engine_error(text: str = "the engine crashed") -> EngineError:
    return EngineError(text)
