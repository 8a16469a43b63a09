"""The REST API on the production shape: time to first token through each client path, and request throughput.

Starts daphne + a Celery worker + Redis + PostgreSQL (database `helpdesk_bench`, created afresh) with the bundled
model, then measures, for the same prompts:
- time to the first token over the websocket (the widget's path), over SSE from POST /api/v1/chat, and over SSE
  from POST /v1/chat/completions (OpenAI's stream), median of --rounds;
- requests per second and latency of GET /v1/models (API key check + two rate-limit counters in Redis) against
  GET /healthz (no key, no query: liveness only), with --concurrency clients for --seconds each.

    .venv/bin/python bench/api.py
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

from bench.ttft import PROMPTS, bench_database_url  # noqa: E402


async def first_token_sse(client: httpx.AsyncClient, path: str, body: dict, is_token) -> float:
    started = time.perf_counter()
    async with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        first = None
        async for line in response.aiter_lines():
            if first is None and is_token(line):
                first = (time.perf_counter() - started) * 1000
        return first


def _chat_delta(line: str) -> bool:
    return line.startswith("event: delta")


def _openai_delta(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


async def ttft(base_url: str, key: str, rounds: int) -> dict[str, list[float]]:
    from tests.client import ask, conversation_open

    results = {"websocket": [], "/api/v1/chat (SSE)": [], "/v1/chat/completions (SSE)": []}
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        await ask(base_url, conversation_open(base_url), PROMPTS[0])  # warm-up
        for i in range(rounds):
            for n, prompt in enumerate(PROMPTS):
                exchange = await ask(base_url, conversation_open(base_url), prompt)
                results["websocket"].append(exchange.first_delta_s * 1000)
                body = {"session_id": f"bench-{i}-{n}", "user_input": prompt, "max_tokens": 32, "stream": True}
                results["/api/v1/chat (SSE)"].append(await first_token_sse(c, "/api/v1/chat", body, _chat_delta))
                body = {
                    "model": "default",
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 32,
                    "stream": True,
                }
                results["/v1/chat/completions (SSE)"].append(
                    await first_token_sse(c, "/v1/chat/completions", body, _openai_delta)
                )
    return results


async def throughput(base_url: str, path: str, headers: dict, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30) as client:
        await client.get(path)
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    from tests import stack

    env = stack.process_env(
        DATABASE_URL=bench_database_url(),
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        CELERY_QUEUE=f"bench-{os.getpid()}",
        CHANNEL_LAYER_PREFIX=f"bench-{os.getpid()}",
        CACHE_KEY_PREFIX=f"bench-{os.getpid()}",
        GENERATION_BACKEND="celery",
        INFERENCE_MAX_TOKENS="32",
        API_RATE_LIMIT_PER_IP="100000000",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
    create = (
        "from chat.models import Site; Site.objects.update(conversations_per_ip=100000); "
        "from chat.api.keys import api_key_create; "
        "print(api_key_create(name='bench', scopes=['chat', 'read'], rate_limit_per_minute=100000000)[1])"
    )
    key = (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", create],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    logs = Path(tempfile.mkdtemp(prefix="bench-api-"))
    worker = stack.start_worker(env, logs)
    web, base_url = stack.start_web(env, logs)
    try:
        firsts = asyncio.run(ttft(base_url, key, args.rounds))
        auth = {"Authorization": f"Bearer {key}"}
        runs = {
            "GET /healthz (no key)": asyncio.run(throughput(base_url, "/healthz", {}, args.concurrency, args.seconds)),
            "GET /v1/models (key + rate limits)": asyncio.run(
                throughput(base_url, "/v1/models", auth, args.concurrency, args.seconds)
            ),
        }
    finally:
        web.stop()
        worker.stop()

    print(f"\nTime to first token, median of {args.rounds} x {len(PROMPTS)} prompts (ms), bundled SmolLM2-135M:")
    for path, values in firsts.items():
        print(f"  {path:<30} {statistics.median(values):8.1f}   (min {min(values):.1f}, max {max(values):.1f})")
    print(f"\nOne daphne process, {args.concurrency} concurrent clients, {args.seconds:g} s each:")
    for name, r in runs.items():
        print(f"  {name:<36} {r['rps']:7.0f} req/s   p50 {r['p50']:6.1f} ms   p99 {r['p99']:6.1f} ms   {r['statuses']}")


if __name__ == "__main__":
    main()
