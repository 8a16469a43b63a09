"""Time to first token: the engine's own, and end to end through websocket -> Celery task -> engine -> websocket.

Runs in one go, for the same prompts, on the production shape (daphne + a Celery worker + Redis + PostgreSQL,
database `helpdesk_bench`, created afresh, with the demo knowledge base) with the bundled model unless
INFERENCE_MODEL says otherwise. The bot answers from the knowledge base: in `--mode extractive` (the bundled
model's default) the first delta is the whole quoted answer and no model runs, so end to end is the stack plus
retrieval; in `--mode generative` (a capable model's default) it is the first sentence that passed the fact guard,
so it includes the engine's first sentence, not only its first token.

    make bench            # or: .venv/bin/python bench/ttft.py --rounds 5 --mode generative
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

PROMPTS = [  # questions the demo knowledge base answers (an unanswered one would be handed to a person)
    "How do I reset my password?",
    "How long does standard shipping take?",
    "Can I change the shipping address of an order I placed yesterday?",
    "How much does it cost to return a sofa?",
]
BENCH_DB = "helpdesk_bench"


def engine_ttft_ms(prompts: list[str], rounds: int) -> dict[str, list[float]]:
    """First-token latency of the engine alone, for the exact turns the product builds for a first question."""
    import django

    django.setup()
    from django.conf import settings

    from inference.engines import engine_get
    from inference.prompt import DEFAULT_SYSTEM_PROMPT, system_prompt_render
    from inference.types import ChatTurn, SamplingParams

    engine = engine_get()
    system = system_prompt_render(
        DEFAULT_SYSTEM_PROMPT,
        {"company_name": settings.COMPANY_NAME, "user_region": "Europe/Paris", "language": "English"},
    )
    params = SamplingParams(max_tokens=8, temperature=settings.INFERENCE_TEMPERATURE, top_p=settings.INFERENCE_TOP_P)
    results: dict[str, list[float]] = {p: [] for p in prompts}
    for _ in range(2):  # warm-up
        list(engine.stream([ChatTurn("system", system), ChatTurn("user", prompts[0])], params))
    for _ in range(rounds):
        for prompt in prompts:
            started = time.perf_counter()
            stream = engine.stream([ChatTurn("system", system), ChatTurn("user", prompt)], params)
            for delta in stream:
                if delta.text:
                    results[prompt].append((time.perf_counter() - started) * 1000)
                    break
            stream.close()
    engine.close()
    return results


def bench_database_url() -> str:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"


async def end_to_end_ttft_ms(base_url: str, prompts: list[str], rounds: int) -> dict[str, list[float]]:
    from tests.client import ask, conversation_open

    results: dict[str, list[float]] = {p: [] for p in prompts}
    await ask(base_url, conversation_open(base_url, region="Europe/Paris", language="en"), prompts[0])  # warm-up
    for _ in range(rounds):
        for prompt in prompts:
            conversation = conversation_open(base_url, region="Europe/Paris", language="en")
            exchange = await ask(base_url, conversation, prompt)
            if exchange.done.get("state") == "complete":
                results[prompt].append(exchange.first_delta_s * 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per prompt and path")
    parser.add_argument("--mode", choices=("extractive", "generative"), default="extractive", help="answer mode")
    args = parser.parse_args()

    engine = engine_ttft_ms(PROMPTS, args.rounds)

    from tests import stack

    env = stack.process_env(
        DATABASE_URL=bench_database_url(),
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        CELERY_QUEUE=f"bench-{os.getpid()}",
        CHANNEL_LAYER_PREFIX=f"bench-{os.getpid()}",
        GENERATION_BACKEND="celery",
        INFERENCE_MAX_TOKENS="32",
        KNOWLEDGE_ANSWER_MODE=args.mode,
    )
    stack.subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
    stack.subprocess.run(
        [sys.executable, "manage.py", "kb_import", "knowledge/demo"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    logs = Path(tempfile.mkdtemp(prefix="bench-ttft-"))
    worker = stack.start_worker(env, logs)
    web, base_url = stack.start_web(env, logs)
    try:
        e2e = asyncio.run(end_to_end_ttft_ms(base_url, PROMPTS, args.rounds))
    finally:
        web.stop()
        worker.stop()

    model = os.environ.get("INFERENCE_MODEL") or "bundled SmolLM2-135M-Instruct Q4_1"
    print(f"\nTime to first token, median of {args.rounds} per prompt (ms); model: {model}; answers: {args.mode}")
    print(f"{'prompt':<66} {'engine':>8} {'end-to-end':>11} {'ratio':>6}")
    for prompt in PROMPTS:
        e, w = statistics.median(engine[prompt]), statistics.median(e2e[prompt])
        print(f"{prompt[:65]:<66} {e:8.1f} {w:11.1f} {w / e:6.2f}")
    all_e = statistics.median(v for p in PROMPTS for v in engine[p])
    all_w = statistics.median(v for p in PROMPTS for v in e2e[p])
    print(f"{'all prompts':<66} {all_e:8.1f} {all_w:11.1f} {all_w / all_e:6.2f}")
    print(f"overhead of the stack (median end-to-end minus engine): {all_w - all_e:.1f} ms")


if __name__ == "__main__":
    main()
