"""The real llama.cpp engine with the bundled SmolLM2-135M-Instruct model."""

import threading
from pathlib import Path

import pytest

from inference.engines.base import EngineError
from inference.engines.llamacpp import LlamaCppEngine
from inference.generation import Generation
from inference.model_files import bundled_model_path
from inference.prompt import DEFAULT_SYSTEM_PROMPT, system_prompt_render
from inference.types import ChatTurn, SamplingParams

pytestmark = pytest.mark.slow

QUESTION = [
    ChatTurn("system", "You are a helpful customer-service assistant."),
    ChatTurn("user", "How do I reset my password?"),
]


@pytest.fixture(scope="module")
def engine():
    engine = LlamaCppEngine(model_path=bundled_model_path(), n_ctx=1024, instances=2)
    yield engine
    engine.close()


def test_bundled_model_ships_in_the_package():
    path = bundled_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_streams_many_deltas_with_exact_token_counts(engine):
    deltas = list(engine.stream(QUESTION, SamplingParams(max_tokens=40, temperature=0.0)))
    text_deltas = [d for d in deltas if d.text]
    final = deltas[-1]
    assert len(text_deltas) >= 5
    assert final.finish_reason in {"stop", "length"}
    assert final.prompt_tokens == engine.count_tokens(QUESTION)
    assert 5 <= final.completion_tokens <= 40
    if final.finish_reason == "length":
        assert final.completion_tokens == 40


@pytest.mark.parametrize("max_tokens", [11, 14, 17, 23])
def test_a_chinese_reply_cut_at_the_limit_counts_exactly_the_limit(engine, max_tokens):
    # With these limits the reply is cut inside multi-byte characters, where llama.cpp's callback sees extra tokens.
    system = system_prompt_render(
        DEFAULT_SYSTEM_PROMPT, {"company_name": "Example Inc.", "user_region": "", "language": "Chinese (简体中文)"}
    )
    turns = [ChatTurn("system", system), ChatTurn("user", "你好,我的包裹还没到,怎么办?")]
    final = list(engine.stream(turns, SamplingParams(max_tokens=max_tokens, temperature=0.0)))[-1]
    assert final.completion_tokens <= max_tokens
    if final.finish_reason == "length":
        assert final.completion_tokens == max_tokens


def test_greedy_decoding_is_deterministic(engine):
    params = SamplingParams(max_tokens=20, temperature=0.0)
    first = "".join(d.text for d in engine.stream(QUESTION, params))
    second = "".join(d.text for d in engine.stream(QUESTION, params))
    assert first and first == second


def test_generation_measures_ttft_and_speed_on_the_real_model(engine):
    generation = Generation(engine, QUESTION, SamplingParams(max_tokens=32), timeout_s=60)
    text = "".join(generation)
    assert text.strip()
    assert generation.stats.ttft_ms is not None and generation.stats.ttft_ms < 10_000
    assert generation.stats.tokens_per_s and generation.stats.tokens_per_s > 1


def test_concurrent_generations_each_complete(engine):
    results: dict[int, str] = {}

    def run(i: int) -> None:
        turns = [QUESTION[0], ChatTurn("user", f"Question number {i}: where is my order?")]
        results[i] = "".join(d.text for d in engine.stream(turns, SamplingParams(max_tokens=16)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [0, 1, 2, 3]
    assert all(text.strip() for text in results.values())


def test_prompt_longer_than_the_context_is_an_engine_error(engine):
    turns = [ChatTurn("user", "password " * 2000)]
    with pytest.raises(EngineError, match="does not fit"):
        list(engine.stream(turns, SamplingParams()))


def test_missing_model_file_is_an_engine_error(tmp_path: Path):
    with pytest.raises(EngineError, match="not found"):
        LlamaCppEngine(model_path=tmp_path / "nope.gguf")


def test_a_file_that_is_not_a_model_is_an_engine_error(tmp_path: Path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file" * 100)
    with pytest.raises(EngineError, match="could not load"):
        LlamaCppEngine(model_path=bogus)
