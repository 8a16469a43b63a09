"""Time to first text: the engine alone, and end to end through websocket -> Celery task -> engine -> websocket.

Runs in one go, for the same prompts, on the production shape (daphne + a Celery worker + Redis + PostgreSQL) with
the bundled model unless INFERENCE_MODEL says otherwise, and what it needs of its own: PostgreSQL
`helpdesk_bench_ttft_<pid>` (created empty, migrated, the demo knowledge base imported, the widget's per-address
limits raised for the bench's many conversations, dropped at the end), Redis database 8 (or BENCH_REDIS_URL) emptied
first, and a queue and key prefixes named after the run.

What the customer's first `delta` frame carries, by answer mode:
- `--mode generative` (the default here; a capable model's default in the product): the model writes from the
  passages and the reply pipeline (chat.generation._stream) publishes its text a whole sentence at a time: the
  handoff signal's filter first, then chat.grounding.FactGate, which lets a sentence through once it has ended (`.`,
  `?` or `!` followed by white space, a newline, or Chinese end punctuation) and its facts are backed. A sentence it
  cannot back is replaced, at that same moment, by the extractive answer; a reply whose first sentence is also its
  last is let through when the stream ends. So the first delta is the model's first sentence (or what replaces it),
  not its first token. The engine alone is measured to the same point: its stream, in this process, on the very turns
  the product builds for the prompt as a conversation's first message (system prompt with the passages), through the
  same filter and sentence boundary; its first token is printed beside it. Greedy decoding makes both paths write
  the same text, and the two take turns prompt by prompt, so that both meet the same load on a shared machine.
- `--mode extractive` (the bundled model's default): the first delta is the whole quoted answer and no model runs,
  so only the end-to-end figure is measured (the stack plus retrieval).

Also printed: how long the customer waits for the `ack` frame (message sent -> stored), and, per stage, the median
of the replies' own timings (Message.timings: ms after the customer message was stored).

    make bench            # or: .venv/bin/python bench/ttft.py --rounds 5 --json /tmp/ttft.json
    .venv/bin/python bench/ttft.py --rounds 1 --json /tmp/ttft.json      # smoke test
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_kb import command_line, scratch_database  # noqa: E402

PROMPTS = [  # questions the demo knowledge base answers from passages (not a curated FAQ, not a handoff)
    "How do I reset my password?",
    "How long does standard shipping take?",
    "Can I change the shipping address of an order I placed yesterday?",
    "How much does it cost to return a sofa?",
]
REGION, LANGUAGE = "Europe/Paris", "en"
REDIS_DB = 8
TARGET_RATIO = 1.15  # issue 16: end-to-end / engine median time to first token
STAGES = ("queued", "picked_up", "retrieval", "prompt_built", "engine_first_token", "first_publish")
# The widget's limits on the bench's own site: one address opens every conversation (the product's defaults stay).
SITE_LIMITS = (
    "from chat.models import Site; Site.objects.update(conversations_per_ip=1_000_000, messages_per_minute=1000)"
)


def bench_redis_url(db: int) -> str:
    """The bench's own Redis database, emptied: no rate-limit counter, queue or channel group of an earlier run.
    BENCH_REDIS_URL names another (it is emptied too)."""
    import redis

    url = os.environ.get("BENCH_REDIS_URL") or f"redis://127.0.0.1:6379/{db}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def bench_env(database_url: str, redis_url: str, name: str, **overrides: str) -> dict:
    """The server processes' environment: the bench's database and Redis, its own queue and key prefixes."""
    from tests import stack

    tag = f"bench-{name}-{os.getpid()}"
    return stack.process_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_QUEUE=tag,
        CHANNEL_LAYER_PREFIX=tag,
        CACHE_KEY_PREFIX=tag,
        GENERATION_BACKEND="celery",
        **overrides,
    )


def bench_database_prepare(env: dict) -> None:
    """Migrate the bench's database, import the demo knowledge base, and raise its site's per-address limits."""
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
    subprocess.run([*manage, "kb_import", "knowledge/demo"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*manage, "shell", "-c", SITE_LIMITS], env=env, cwd=ROOT, check=True, capture_output=True)


def conversation_opened(base_url: str) -> dict:
    """A conversation opened as the widget does, in the region and language the engine phases build prompts for."""
    from tests.client import conversation_open

    return conversation_open(base_url, region=REGION, language=LANGUAGE)


class ReplyIncomplete(Exception):
    """A bench question got no complete reply: handed to a person, withdrawn, failed or never came."""


async def exchange(base_url: str, conversation: dict, question: str, timeout: float = 120):
    """Say hello, send `question` and collect the frames until the bot's reply is done (a tests.client.Exchange).

    Unlike tests.client.ask, a handoff ends it too (a `status` frame other than bot: a question asking for a person
    gets no reply), and any reply that does not complete raises ReplyIncomplete naming the question, so a bench
    stops at once with the reason instead of waiting out its timeout.
    """
    from websockets.asyncio.client import connect

    from tests.client import Exchange

    ws_url = base_url.replace("http", "ws", 1) + conversation["websocket"]
    async with connect(ws_url, origin=base_url, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "secret": conversation["secret"], "last_seq": 0}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
        result = Exchange()
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "content": question, "client_id": uuid.uuid4().hex}))
        while True:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            except TimeoutError:
                raise ReplyIncomplete(f"no reply to {question!r} within {timeout:g} s") from None
            result.frames.append(frame)
            result.times.append(time.perf_counter() - started)
            if frame["type"] in ("done", "error", "withdrawn") or frame.get("status", "bot") != "bot":
                break
    if frame["type"] != "done" or frame["message"].get("state") != "complete":
        why = {"withdrawn": "withdrawn (the model deferred to a person)", "status": "handed to a person"}
        raise ReplyIncomplete(f"the reply to {question!r} did not complete: {why.get(frame['type'], frame)}")
    return result


def ack_s(result) -> float:
    """Seconds from sending the message to its `ack` frame (stored and acknowledged)."""
    return next(t for f, t in zip(result.frames, result.times, strict=True) if f["type"] == "ack")


class EngineAlone:
    """The engine in this process, on the turns the product builds for each prompt as a conversation's first message
    (Django set up on the bench's database and the server processes' settings)."""

    def __init__(self, prompts: list[str]):
        from django.conf import settings

        from chat.models import Site
        from inference.engines import engine_get
        from inference.params import sampling_params_build

        self.engine = engine_get()
        self.params = sampling_params_build(settings, {})
        site = Site.objects.filter(is_active=True).order_by("created_at").values_list("key", flat=True).first()
        self.turns = {prompt: product_turns(self.engine, prompt, site, self.params) for prompt in prompts}

    def first_text_ms(self, prompt: str) -> tuple[float, float]:
        return first_text_ms(self.engine, self.turns[prompt], self.params)

    def close(self) -> None:
        self.engine.close()


def product_turns(engine, prompt: str, site_key: str, params) -> list:
    """The system prompt with the knowledge base's passages and the question, as chat.generation builds them."""
    from chat import grounding
    from chat.generation import GenerationRequest, prompt_build
    from inference.types import ChatTurn

    request = GenerationRequest(
        purpose="reply", history=[ChatTurn("user", prompt)], language=LANGUAGE, region=REGION, site=site_key
    )
    plan = grounding.plan(
        history=request.history, language=LANGUAGE, site=site_key, engine=engine, mode=request.mode, counted=False
    )
    if not plan.needs_engine:
        raise SystemExit(f"{prompt!r} is answered without the engine ({plan.grounding}): not a prompt for this bench")
    return prompt_build(engine, request, params, plan)


def first_text_ms(engine, turns: list, params) -> tuple[float, float]:
    """ms to the engine's first token, and to the first text the reply pipeline would publish: the handoff signal's
    filter, then the fact gate's sentence boundary (chat.generation._stream), or the end of the stream."""
    from chat.grounding import FactGate
    from inference.deferral import DeferralFilter

    deferral, gate = DeferralFilter(), FactGate([], enabled=False)
    first_token = None
    started = time.perf_counter()
    stream = engine.stream(turns, params)
    try:
        for delta in stream:
            if not delta.text:
                continue
            elapsed = (time.perf_counter() - started) * 1000
            first_token = elapsed if first_token is None else first_token
            if gate.feed(deferral.feed(delta.text)):
                return first_token, elapsed
            if deferral.deferred:
                raise ReplyIncomplete("the engine alone deferred to a person: no reply would be published")
    finally:
        stream.close()
    if first_token is None:
        raise ReplyIncomplete("the engine alone returned an empty reply")
    return first_token, (time.perf_counter() - started) * 1000


async def measure(base_url: str, prompts: list[str], rounds: int, engine: EngineAlone | None) -> dict:
    """Per prompt, ms to the first delta end to end and (with an engine) the engine's ms to its first token and first
    sentence; the acks' ms; the conversations used.

    The two paths take turns, prompt by prompt, so that both meet the same load on a shared machine. Both warm up on
    the last prompt and then ask in the same order, so no measured prompt directly follows itself: an engine that
    keeps the previous prompt's cache (llama.cpp does) would skip its prefill, which two customers in a row seldom get.
    """
    paths = ("end_to_end", "engine_first_token", "engine_first_sentence")
    figures: dict = {**{path: {p: [] for p in prompts} for path in paths}, "ack": [], "conversations": []}
    await exchange(base_url, conversation_opened(base_url), prompts[-1])  # warm-up: the worker loads the model
    if engine is not None:
        for _ in range(2):
            engine.first_text_ms(prompts[-1])
    for _ in range(rounds):
        for prompt in prompts:
            if engine is not None:
                token_ms, sentence_ms = engine.first_text_ms(prompt)
                figures["engine_first_token"][prompt].append(token_ms)
                figures["engine_first_sentence"][prompt].append(sentence_ms)
            conversation = conversation_opened(base_url)
            result = await exchange(base_url, conversation, prompt)
            figures["end_to_end"][prompt].append(result.first_delta_s * 1000)
            figures["ack"].append(ack_s(result) * 1000)
            figures["conversations"].append(conversation["id"])
    return figures


def stage_timings_ms(database_url: str, conversations: list[str]) -> dict | None:
    """Median per stage of the bench's replies' Message.timings (ms after the customer message was stored) and how
    many replies recorded it; None if no reply recorded any stage."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT timings FROM chat_message WHERE role = 'bot' AND conversation_id = ANY(%s)",
            [[uuid.UUID(c) for c in conversations]],
        ).fetchall()
    recorded = [timings for (timings,) in rows if timings]
    names = [*STAGES, *sorted({k for t in recorded for k in t} - set(STAGES))]
    values = {name: [t[name] for t in recorded if name in t] for name in names}
    return {name: {"median_ms": statistics.median(v), "replies": len(v)} for name, v in values.items() if v} or None


def django_setup(env: dict) -> None:
    """Django in this process on the same settings as the server processes (the engine phase builds the product's
    prompts from the bench's database)."""
    os.environ.update(env)
    import django

    django.setup()


def run(args, database_url: str) -> dict:
    from tests import stack

    env = bench_env(
        database_url,
        bench_redis_url(REDIS_DB),
        "ttft",
        INFERENCE_MAX_TOKENS="64",
        INFERENCE_TEMPERATURE="0",
        KNOWLEDGE_ANSWER_MODE=args.mode,
    )
    bench_database_prepare(env)
    engine = None
    if args.mode == "generative":
        django_setup(env)
        engine = EngineAlone(PROMPTS)
    logs = Path(tempfile.mkdtemp(prefix="bench-ttft-"))
    worker = stack.start_worker(env, logs)
    try:
        web, base_url = stack.start_web(env, logs)
        try:
            measured = asyncio.run(measure(base_url, PROMPTS, args.rounds, engine))
        finally:
            web.stop()
    finally:
        worker.stop()
        if engine is not None:
            engine.close()
    return figures(args, measured, stage_timings_ms(database_url, measured["conversations"]))


def figures(args, measured: dict, stages: dict | None) -> dict:
    """Medians per prompt and over all prompts, as printed and written to --json."""

    def median(path: str, prompt: str | None) -> float:
        return round(statistics.median(v for p in PROMPTS if prompt in (None, p) for v in measured[path][p]), 1)

    rows = {}
    for prompt in [*PROMPTS, None]:
        row = {"end_to_end_ms": median("end_to_end", prompt)}
        if args.mode == "generative":
            row["engine_first_token_ms"] = median("engine_first_token", prompt)
            row["engine_first_sentence_ms"] = median("engine_first_sentence", prompt)
            row["ratio"] = round(row["end_to_end_ms"] / row["engine_first_sentence_ms"], 2)
        rows[prompt or "all prompts"] = row
    return {
        "command": command_line(),
        "model": os.environ.get("INFERENCE_MODEL") or "bundled SmolLM2-135M-Instruct Q4_1",
        "mode": args.mode,
        "rounds": args.rounds,
        "prompts": rows,
        "ratio": rows["all prompts"].get("ratio"),
        "target_ratio": TARGET_RATIO,
        "ack_ms": round(statistics.median(measured["ack"]), 1),
        "stage_timings": stages,
    }


FIRST_DELTA = {
    "generative": (
        "The customer's first delta is the model's first whole sentence, let through by the fact guard (or the\n"
        "extract that replaces it), not its first token. 'engine sentence' is the engine alone, in-process, on the\n"
        "same turns, to that same point; 'engine token' is its first token; 'end-to-end' is the first delta at the\n"
        "client."
    ),
    "extractive": "The customer's first delta is the whole quoted answer: no model runs, so there is no engine column.",
}


def report(result: dict) -> None:
    print(
        f"\nTime to first text, median of {result['rounds']} per prompt (ms); model: {result['model']}, greedy; "
        f"answers: {result['mode']}.\n{FIRST_DELTA[result['mode']]}"
    )
    generative = result["ratio"] is not None
    head = f"{'engine token':>12} {'engine sentence':>15} " if generative else ""
    print(f"{'prompt':<66} {head}{'end-to-end':>10}{'  ratio' if generative else ''}")
    for prompt, row in result["prompts"].items():
        engine = f"{row['engine_first_token_ms']:12.1f} {row['engine_first_sentence_ms']:15.1f} " if generative else ""
        ratio = f" {row['ratio']:6.2f}" if generative else ""
        print(f"{prompt[:65]:<66} {engine}{row['end_to_end_ms']:10.1f}{ratio}")
    if generative:
        all_prompts = result["prompts"]["all prompts"]
        overhead = all_prompts["end_to_end_ms"] - all_prompts["engine_first_sentence_ms"]
        print(f"end-to-end / engine (first sentence): {result['ratio']:.2f}  (target <= {TARGET_RATIO})")
        print(f"overhead of the stack (median end-to-end minus engine): {overhead:.1f} ms")
    print(f"ack (message sent -> stored -> ack frame): median {result['ack_ms']:.1f} ms")
    stages = result["stage_timings"]
    if stages is None:
        print("stage timings: no reply recorded any")
        return
    print("stage timings (the replies' Message.timings, median ms after the customer message was stored):")
    for name in [*STAGES, *(name for name in stages if name not in STAGES)]:
        stage = stages.get(name)
        shown = f"{stage['median_ms']:8.1f}   ({stage['replies']} replies)" if stage else f"{'-':>8}   (did not happen)"
        print(f"  {name:<20} {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per prompt and path")
    parser.add_argument("--mode", choices=("generative", "extractive"), default="generative", help="answer mode")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"$ {command_line()}", flush=True)
    try:
        with scratch_database("helpdesk_bench_ttft") as database_url:
            result = run(args, database_url)
    except ReplyIncomplete as exc:
        sys.exit(str(exc))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
