import time

import pytest

from inference.engines.base import EngineError
from inference.generation import Generation
from inference.tests.fakes import FakeEngine
from inference.types import ChatTurn, SamplingParams

TURNS = [ChatTurn("system", "s"), ChatTurn("user", "hi")]


def test_generation_yields_text_and_records_stats():
    engine = FakeEngine(delay_s=0.01)
    FakeEngine.script = ["a", "b", "c", "d"]
    generation = Generation(engine, TURNS, SamplingParams(max_tokens=9, temperature=0.2), timeout_s=10)
    assert "".join(generation) == "abcd"
    stats = generation.stats
    assert stats.completion_tokens == 4 and stats.prompt_tokens == engine.count_tokens(TURNS)
    assert stats.finish_reason == "stop"
    assert stats.ttft_ms is not None and stats.ttft_ms >= 5
    assert stats.tokens_per_s is not None and 0 < stats.tokens_per_s < 1000
    # The parameters reach the engine unchanged.
    assert FakeEngine.calls[0][1] == SamplingParams(max_tokens=9, temperature=0.2)
    FakeEngine.script = None


def test_generation_past_its_deadline_raises():
    engine = FakeEngine(delay_s=0.05)
    FakeEngine.script = ["x"] * 10
    with pytest.raises(EngineError, match="longer than"):
        list(Generation(engine, TURNS, SamplingParams(), timeout_s=0.12))
    FakeEngine.script = None


def test_engine_error_mid_stream_propagates_after_partial_text():
    engine = FakeEngine()
    FakeEngine.script = ["partial", EngineError("boom")]
    seen = []
    with pytest.raises(EngineError, match="boom"):
        for text in Generation(engine, TURNS, SamplingParams(), timeout_s=10):
            seen.append(text)
    assert seen == ["partial"]
    FakeEngine.script = None


def test_no_first_token_within_the_first_token_timeout_raises():
    engine = FakeEngine(delay_s=1.0)  # hangs a second before its first piece
    FakeEngine.script = ["late"]
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"no first token within 0\.2 s"):
        list(Generation(engine, TURNS, SamplingParams(), timeout_s=10, first_token_timeout_s=0.2))
    assert time.monotonic() - started < 0.8  # gave up at the deadline, not when the engine answered
    FakeEngine.script = None
