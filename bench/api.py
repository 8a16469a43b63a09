"""The REST API on the production shape: time to first token through each client path, and request throughput.

Starts daphne + a Celery worker + Redis + PostgreSQL with the bundled model and the demo knowledge base (answers in
the product's default mode: extractive with the bundled model), then measures, for the same prompts:
- time to the first token over the websocket (the widget's path), over SSE from POST /api/v1/chat, and over SSE
  from POST /v1/chat/completions (OpenAI's stream), median of --rounds;
- requests per second and latency of GET /v1/models (API key check + two rate-limit counters in Redis) against
  GET /healthz (no key, no query: liveness only), with --concurrency clients for --seconds each.

The bench has its own PostgreSQL database (`helpdesk_bench_api_<pid>`, dropped at the end; an API key and the
widget's per-address limits raised there), Redis database 11 (or BENCH_REDIS_URL) emptied first, and its own queue
and key prefixes.

    .venv/bin/python bench/api.py [--json PATH]
    .venv/bin/python bench/api.py --rounds 1 --concurrency 2 --seconds 1 --json /tmp/api.json    # smoke test
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_kb import command_line, percentile, scratch_database  # noqa: E402
from bench.ttft import (  # noqa: E402
    PROMPTS,
    ReplyIncomplete,
    bench_database_prepare,
    bench_env,
    bench_redis_url,
    conversation_opened,
    exchange,
)

REDIS_DB = 11
# An API key allowed everything the bench asks, created in the bench's database; its secret is the last line printed.
KEY_CREATE = (
    "from chat.api.keys import api_key_create; "
    "print(api_key_create(name='bench', scopes=['chat', 'read'], rate_limit_per_minute=100000000)[1])"
)


async def first_token_sse(client: httpx.AsyncClient, path: str, body: dict, is_token) -> float:
    """ms from the request to the first event carrying text, the stream read to its end."""
    started = time.perf_counter()
    async with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        first = None
        async for line in response.aiter_lines():
            if first is None and is_token(line):
                first = (time.perf_counter() - started) * 1000
    if first is None:
        raise SystemExit(f"POST {path} streamed no text for {body}")
    return first


def _chat_delta(line: str) -> bool:
    return line.startswith("event: delta")


def _openai_delta(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


async def ttft(base_url: str, key: str, rounds: int) -> dict[str, list[float]]:
    results = {"websocket": [], "/api/v1/chat (SSE)": [], "/v1/chat/completions (SSE)": []}
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        await exchange(base_url, conversation_opened(base_url), PROMPTS[0])  # warm-up
        for i in range(rounds):
            for n, prompt in enumerate(PROMPTS):
                result = await exchange(base_url, conversation_opened(base_url), prompt)
                results["websocket"].append(result.first_delta_s * 1000)
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
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50": round(percentile(latencies, 50), 1),
        "p99": round(percentile(latencies, 99), 1),
        "statuses": statuses,
    }


def api_key_create(env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", KEY_CREATE], env=env, cwd=ROOT, check=True, capture_output=True
    )
    return done.stdout.decode().strip().splitlines()[-1]


def run(args, database_url: str) -> dict:
    from tests import stack

    env = bench_env(
        database_url,
        bench_redis_url(REDIS_DB),
        "api",
        INFERENCE_MAX_TOKENS="32",
        API_RATE_LIMIT_PER_IP="100000000",
    )
    bench_database_prepare(env)
    key = api_key_create(env)
    logs = Path(tempfile.mkdtemp(prefix="bench-api-"))
    worker = stack.start_worker(env, logs)
    try:
        web, base_url = stack.start_web(env, logs)
        try:
            firsts = asyncio.run(ttft(base_url, key, args.rounds))
            auth = {"Authorization": f"Bearer {key}"}
            runs = {
                "GET /healthz (no key)": asyncio.run(
                    throughput(base_url, "/healthz", {}, args.concurrency, args.seconds)
                ),
                "GET /v1/models (key + rate limits)": asyncio.run(
                    throughput(base_url, "/v1/models", auth, args.concurrency, args.seconds)
                ),
            }
        finally:
            web.stop()
    finally:
        worker.stop()
    return {
        "command": command_line(),
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "ttft_ms": {
            path: {"median": round(statistics.median(v), 1), "min": round(min(v), 1), "max": round(max(v), 1)}
            for path, v in firsts.items()
        },
        "throughput": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="time-to-first-token measurements per prompt and path")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once in the throughput runs")
    parser.add_argument("--seconds", type=float, default=10, help="length of each throughput run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"$ {command_line()}", flush=True)
    try:
        with scratch_database("helpdesk_bench_api") as database_url:
            result = run(args, database_url)
    except ReplyIncomplete as exc:
        sys.exit(str(exc))

    print(
        f"\nTime to first token, median of {args.rounds} x {len(PROMPTS)} prompts (ms), bundled SmolLM2-135M, answers "
        "in the product's default mode (extractive for this model: the first token is the whole quoted answer):"
    )
    for path, t in result["ttft_ms"].items():
        print(f"  {path:<30} {t['median']:8.1f}   (min {t['min']:.1f}, max {t['max']:.1f})")
    print(f"\nOne daphne process, {args.concurrency} concurrent clients, {args.seconds:g} s each:")
    for name, r in result["throughput"].items():
        print(f"  {name:<36} {r['rps']:7.0f} req/s   p50 {r['p50']:6.1f} ms   p99 {r['p99']:6.1f} ms   {r['statuses']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
