"""Streaming capacity of the production shape against an ENGINE SIMULATOR: how many customers can read replies
streaming at once, and what an idle widget socket costs.

The stack is production's (docker-compose.yml), started afresh: PostgreSQL (database `helpdesk_bench_load_<pid>`,
migrated, the demo help center imported, the site's per-address limits raised, dropped at the end), Redis (DB 9,
emptied at the start and the end; the run's own channel-layer prefix, Celery queue and cache prefix: bench/ttft.py's
helpers make both), --web-processes daphne processes (helpdesk.server, as compose starts it; with 2, each on its own
port, customers spread over them in turn: the project has no balancer of its own), one Celery worker (threads
pool), and INFERENCE_ENGINE=openai pointed at bench/engine_sim.py, which streams a fixed reply at a fixed rate. No
model runs: every figure is the stack's, at that engine speed, and says nothing of a real engine.

Streaming (--steps): per step, N conversations open over HTTP as the widget opens them and say hello on their
sockets; each asks the demo help center's questions one after the other for --duration seconds, first questions
spread over one reply's length so that the load is steady, and reads every frame. Per step:
  - deltas/s and replies/s delivered in the window where every conversation streams (after that first reply's
    length, until --duration);
  - the first delta's latency minus the simulator's time to its first sentence (its first-token delay, then the
    sentence's words and the next one's first: the product publishes a sentence at a time), which leaves the
    stack's own part (socket, database, queue, retrieval, prompt, publishing), p50/p95/p99 over every question;
  - errors (error frames, failed or withdrawn replies, handoffs, replies the engine did not write), lost
    (acknowledged questions with neither a done frame within the reply's length + --turn-timeout nor a recorded
    failure; what PostgreSQL holds of them afterwards is noted) and incomplete (the text assembled from the deltas
    differs from the done frame's or from the stored reply, or the deltas' offsets skip or repeat text);
  - CPU of each process, in % and per delivered frame (the figure that survives a shared machine), the run's peak
    PostgreSQL connections, the simulator's own lateness, and the replies' stage timings (Message.timings).
Replies are generative (KNOWLEDGE_ANSWER_MODE=generative): the demo's questions retrieve passages and the engine
writes every reply; extractive answers would arrive whole in one delta, without any engine. A generated reply is
published a sentence at a time whatever KNOWLEDGE_FACT_GUARD says (chat.grounding.FactGate also strips citations
and prompt echoes), so a frame is a sentence: the simulator's sentences are short, and at its default 40 tokens/s
each conversation gets about 10 frames/s, the issue's rate, for 10 s a reply. The fact guard stays on, as
deployed (--fact-guard off to drop its checks); the simulator's text states no fact, so it passes.

Each streaming reply holds a worker thread (and the engine's reading thread) for its whole length, so the worker
gets as many threads as the largest step has conversations (--worker-threads to choose): a step past them would
measure the Celery queue. The database connections are the product's pool's (DATABASE_POOL_MAX_SIZE a process).

Idle (--idle N): N conversations made in bulk through chat.services (the HTTP path is not what this measures), N
sockets that say hello and then nothing (no pings of their own; daphne's are answered); daphne's resident memory
(VmRSS) before and after, per socket, the hellos per second, and daphne's CPU while they idle.

    .venv/bin/python bench/load.py                                  # steps 1,10,25,50,100; one daphne
    .venv/bin/python bench/load.py --web-processes 2 --idle 5000
    .venv/bin/python bench/load.py --steps 2 --duration 6 --tokens 40 --idle 20 --json /tmp/load.json   # smoke
Two runs at once would share Redis DB 9 (BENCH_REDIS_URL names another): run one at a time.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import engine_sim  # noqa: E402
from bench.eval_kb import ADMIN_URL, command_line, percentile, scratch_database  # noqa: E402
from bench.ttft import PROMPTS, bench_database_prepare, bench_env, bench_redis_url, django_setup  # noqa: E402
from tests import stack  # noqa: E402

REDIS_DB = 9  # emptied at the start and at the end; BENCH_REDIS_URL names another
DATABASE_NAME = "helpdesk_bench_load"
TARGETS = {  # the issue's; printed beside the figures, not asserted
    "conversations": 300,
    "frames_per_s": 3000,
    "errors": 0,
    "lost": 0,
    "p95_first_delta_overhead_ms": 100,
    "idle_sockets": 10_000,
    "idle_kb_per_socket": 40,
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the stack ------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """The run's processes and where to reach them."""

    env: dict
    sim_url: str
    bases: list[str]
    daphnes: list[stack.Process]
    worker: stack.Process
    simulator: stack.Process
    database: str


def stack_env(args, database_url: str, redis_url: str, sim_url: str) -> dict:
    """The server processes' environment: the openai engine on the simulator, generative answers, the limits on
    one address's sockets out of the way."""
    return bench_env(
        database_url,
        redis_url,
        "load",
        INFERENCE_ENGINE="openai",
        INFERENCE_BASE_URL=sim_url,
        INFERENCE_SERVED_MODEL_NAME=engine_sim.MODEL,
        INFERENCE_MAX_TOKENS=str(max(256, args.tokens)),  # the whole reply: a cut one would end differently
        KNOWLEDGE_ANSWER_MODE="generative",
        KNOWLEDGE_FACT_GUARD="1" if args.fact_guard == "on" else "0",
        CHAT_MAX_SOCKETS_PER_ADDRESS="1000000",  # every customer here is 127.0.0.1
        CHAT_ABANDON_AFTER="5",  # a step's replies to customers gone stop before the next step (default 30 s)
        LOG_LEVEL="WARNING",
    )


def stack_start(args, database_url: str, cleanup: contextlib.ExitStack) -> Stack:
    """Simulator, database (migrated, demo help center, the site's limits raised), worker and daphne; stopped by
    `cleanup`, which also empties the run's Redis database."""
    logs = Path(tempfile.mkdtemp(prefix="bench-load-"))
    port = stack.free_port()
    simulator = stack.Process(
        "engine-sim",
        [
            sys.executable,
            str(ROOT / "bench" / "engine_sim.py"),
            *("--port", str(port), "--tokens", str(args.tokens)),
            *("--tokens-per-s", str(args.tokens_per_s), "--first-token-ms", str(args.first_token_ms)),
        ],
        os.environ.copy(),
        logs,
    )
    cleanup.callback(simulator.stop)
    sim_url = f"http://127.0.0.1:{port}/v1"
    stack.wait_http(f"{sim_url}/models", timeout=30)

    redis_url = bench_redis_url(REDIS_DB)
    cleanup.callback(bench_redis_url, REDIS_DB)
    env = stack_env(args, database_url, redis_url, sim_url)
    bench_database_prepare(env)
    django_setup(env)

    worker = stack.start_worker(env, logs, concurrency=args.worker_threads)
    cleanup.callback(worker.stop)
    daphnes, bases = [], []
    for i in range(args.web_processes):
        daphne, base = stack.start_web(env, logs, name=f"daphne-{i + 1}")
        cleanup.callback(daphne.stop)
        daphnes.append(daphne)
        bases.append(base)
    return Stack(env, sim_url, bases, daphnes, worker, simulator, database_url.rsplit("/", 1)[1])


# --- processes' figures ---------------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """User + system CPU of a process so far, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def rss_kb(pid: int) -> int:
    """Resident memory of a process (VmRSS), KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Watch:
    """CPU of the run's processes over a window, and the peak of the run's PostgreSQL connections (sampled)."""

    def __init__(self, run: Stack):
        import redis

        self.run = run
        self.pids = {f"daphne-{i + 1}": p.popen.pid for i, p in enumerate(run.daphnes)}
        self.pids |= {"worker": run.worker.popen.pid, "simulator": run.simulator.popen.pid, "client": os.getpid()}
        self.pids["redis"] = int(redis.Redis.from_url(run.env["REDIS_URL"]).info("server")["process_id"])
        self.connections_peak = 0
        self._stop = threading.Event()
        self._ticks: dict[str, int] = {}
        self._started = 0.0

    def _postgres_pids(self, conn) -> list[int]:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.run.database]).fetchall()
        return [pid for (pid,) in rows]

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            while not self._stop.wait(0.5):
                self.connections_peak = max(self.connections_peak, len(self._postgres_pids(conn)))

    def _all_ticks(self) -> dict[str, int]:
        import psycopg

        ticks = {name: cpu_ticks(pid) for name, pid in self.pids.items()}
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            ticks |= {f"pg:{pid}": cpu_ticks(pid) for pid in self._postgres_pids(conn)}
        return ticks

    def start(self) -> None:
        self._ticks, self._started = self._all_ticks(), time.monotonic()
        threading.Thread(target=self._sample, daemon=True).start()

    def stop(self) -> tuple[dict[str, float], float]:
        """CPU seconds of each process since start (PostgreSQL's backends of the run summed), and the seconds."""
        self._stop.set()
        ticks, seconds = self._all_ticks(), time.monotonic() - self._started
        cpu: dict[str, float] = {}
        for name, now in ticks.items():
            if name in self._ticks:
                key = "postgres" if name.startswith("pg:") else name
                cpu[key] = cpu.get(key, 0.0) + (now - self._ticks[name]) / CLK_TCK
        return cpu, seconds


def sim_stats(run: Stack, reset: bool = False) -> dict:
    root = run.sim_url.removesuffix("/v1")
    return httpx.get(f"{root}/sim/stats", params={"reset": "1"} if reset else {}, timeout=10).json()


# --- customers ------------------------------------------------------------------------------------------------


@dataclass
class Turn:
    """One question and its reply, as one customer saw them (loop times, seconds)."""

    conversation: str
    client_id: str
    sent: float
    acked_seq: int | None = None
    first_delta: float | None = None
    delta_times: list[float] = field(default_factory=list)
    text: str = ""
    gap: str = ""  # how a delta's offset failed to continue the text: "missed" pieces, "repeated" or "restarted"
    done: dict | None = None
    done_at: float | None = None
    error: str = ""
    handed_off: bool = False


async def conversations_open(bases: list[str], count: int) -> tuple[list[tuple[str, dict]], list[str]]:
    """`count` conversations opened as the widget opens them, spread over the daphne processes in turn."""
    keys = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for base in bases:
            page = (await client.get(f"{base}/")).text
            keys[base] = page.split('data-site-key="', 1)[1].split('"', 1)[0]
        gate = asyncio.Semaphore(16)
        errors: list[str] = []

        async def one(i: int) -> tuple[str, dict] | None:
            base = bases[i % len(bases)]
            async with gate:
                try:
                    response = await client.post(
                        f"{base}/widget/v1/sites/{keys[base]}/conversations",
                        json={"region": "Europe/Paris", "language": "en"},
                        headers={"Origin": base},
                    )
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    errors.append(f"open: {exc!r}"[:120])
                    return None
            return base, response.json()

        opened = await asyncio.gather(*(one(i) for i in range(count)))
    return [o for o in opened if o is not None], errors


async def socket_open(base: str, conversation: dict, timeout: float = 60):
    """A customer's socket, hello said and `ready` received."""
    ws = await connect(
        base.replace("http", "ws", 1) + conversation["websocket"],
        origin=base,
        open_timeout=timeout,
        ping_interval=None,  # daphne pings every 20 s; the widget's own pings are frames, left out here
        max_queue=None,
    )
    try:
        await ws.send(json.dumps({"type": "hello", "secret": conversation["secret"], "last_seq": 0}))
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - asyncio.get_running_loop().time()))
            if frame["type"] == "ready":
                return ws
            if frame["type"] == "error":
                raise RuntimeError(f"hello refused: {frame}")
    except BaseException:
        await ws.close()
        raise


def turn_frame(turn: Turn, frame: dict, now: float) -> bool:
    """Note one frame in `turn`; whether it ended the turn."""
    kind = frame.get("type")
    seq = frame["message"].get("seq", 0) if kind == "done" else frame.get("seq", 0)
    ours = turn.acked_seq is not None and seq > turn.acked_seq  # not a late frame of an earlier reply
    if kind == "ack" and frame.get("client_id") == turn.client_id:
        turn.acked_seq = frame["seq"]
    elif kind == "delta" and ours:
        offset = frame.get("offset")  # absent until the product sends it
        if offset is not None and offset != len(turn.text) and not turn.gap:
            turn.gap = "restarted" if offset == 0 else "missed" if offset > len(turn.text) else "repeated"
        turn.first_delta = turn.first_delta or now
        turn.delta_times.append(now)
        turn.text += frame["text"]
    elif kind == "done" and ours and frame["message"].get("role") == "bot":
        turn.done, turn.done_at = frame["message"], now
        return True
    elif kind == "error":
        turn.error = f"error frame {frame.get('code')}"
        return True
    elif kind == "withdrawn" and ours:
        turn.error = "withdrawn"
        return True
    elif kind == "status" and frame.get("status") != "bot":
        turn.handed_off = True
    return False


async def ask(ws, conversation: str, question: str, timeout: float) -> Turn:
    """Send one question and read frames until its reply ends (done, error, withdrawn) or `timeout` passes."""
    loop = asyncio.get_running_loop()
    turn = Turn(conversation, uuid.uuid4().hex, loop.time())
    await ws.send(json.dumps({"type": "message", "content": question, "client_id": turn.client_id}))
    while True:
        try:
            raw = await asyncio.wait_for(ws.recv(), turn.sent + timeout - loop.time())
        except TimeoutError:
            turn.error = "timeout"
            return turn
        except WebSocketException as exc:
            turn.error = f"socket {type(exc).__name__}"
            return turn
        if turn_frame(turn, json.loads(raw), loop.time()):
            return turn


async def customer(ws, conversation: str, first_question: int, start: float, deadline: float, timeout: float, turns):
    """Ask, read the reply to its end, ask again, until the deadline; stop at the first turn that went wrong."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start - loop.time()))
    n = first_question
    while loop.time() < deadline:
        turn = await ask(ws, conversation, PROMPTS[n % len(PROMPTS)], timeout)
        turns.append(turn)
        n += 1
        if turn.error or turn.done is None or turn.done.get("state") != "complete":
            return


@dataclass
class StepRun:
    """What one step's customers saw, and what the processes spent meanwhile."""

    turns: list[Turn]
    errors: list[str]
    conversations: list[str]
    window: tuple[float, float]
    cpu_s: dict  # CPU seconds of each process over the step
    watched_s: float
    sim: dict
    connections_peak: int


async def step_customers(run: Stack, args, count: int, watch: Watch) -> StepRun:
    """Open `count` conversations and their sockets, then have them all ask until the step's deadline."""
    opened, errors = await conversations_open(run.bases, count)
    sockets = []
    results = await asyncio.gather(*(socket_open(base, conv) for base, conv in opened), return_exceptions=True)
    for (_base, conv), result in zip(opened, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(f"socket: {result!r}"[:120])
        else:
            sockets.append((conv["id"], result))
    reply_s = args.first_token_ms / 1000 + args.tokens / args.tokens_per_s
    spread = min(reply_s, args.duration / 2)  # first questions spread over one reply, for a steady load
    loop = asyncio.get_running_loop()
    sim_stats(run, reset=True)
    watch.start()
    t0 = loop.time() + 0.2
    deadline = t0 + args.duration
    timeout = reply_s + args.turn_timeout
    turns: list[Turn] = []
    await asyncio.gather(
        *(
            customer(ws, conv_id, i, t0 + spread * i / max(1, len(sockets)), deadline, timeout, turns)
            for i, (conv_id, ws) in enumerate(sockets)
        )
    )
    (cpu_s, watched_s), sim = watch.stop(), sim_stats(run)
    await asyncio.gather(*(ws.close() for _id, ws in sockets), return_exceptions=True)
    conversations = [c for c, _ in sockets]
    window = (t0 + spread, deadline)
    return StepRun(turns, errors, conversations, window, cpu_s, watched_s, sim, watch.connections_peak)


# --- a step's figures -----------------------------------------------------------------------------------------


def replies_drain(run: Stack, timeout: float = 60) -> float:
    """Wait until no reply waits in the queue, the simulator streams nothing and the replies still streaming are
    done publishing (or stuck: their number unchanged for 5 s), so that the next step starts on an idle stack and
    the stored replies are final; the seconds it took. Replies to customers gone stop CHAT_ABANDON_AFTER later."""
    import redis

    from chat.models import Message

    broker = redis.Redis.from_url(run.env["REDIS_URL"])
    started = time.monotonic()
    streaming, unchanged_since = None, started
    while time.monotonic() - started < timeout:
        now_streaming = Message.objects.filter(state=Message.State.STREAMING).count()
        if now_streaming != streaming:
            streaming, unchanged_since = now_streaming, time.monotonic()
        idle = not broker.llen(run.env["CELERY_QUEUE"]) and not sim_stats(run)["streams_open"]
        if idle and (not streaming or time.monotonic() - unchanged_since >= 5):
            break
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def stored_replies(conversations: list[str]) -> dict[tuple[str, int], dict]:
    """The bot replies of these conversations as PostgreSQL holds them, by (conversation, question's seq)."""
    from chat.models import Message

    columns = ["conversation_id", "in_reply_to__seq", "content", "state", "grounding"]
    if any(f.name == "timings" for f in Message._meta.get_fields()):  # recorded once the product has the column
        columns.append("timings")
    rows = Message.objects.filter(conversation_id__in=conversations, role=Message.Role.BOT).values(*columns)
    return {(str(row["conversation_id"]), row["in_reply_to__seq"]): row for row in rows}


def turn_outcome(turn: Turn, stored: dict | None) -> str:
    """ok, incomplete, lost, or what went wrong (an error)."""
    if turn.acked_seq is None:
        return turn.error or "not acknowledged"
    if turn.done is None:
        if stored is not None and stored["state"] == "failed":
            return "failed (recorded)"
        return f"lost: {turn.error or 'no done'}, stored {stored['state'] if stored else 'nothing'}"
    if turn.done.get("state") != "complete":
        return f"reply {turn.done.get('state')}"
    if turn.gap or stored is None or not (turn.text == turn.done.get("content") == stored["content"]):
        return f"incomplete: {turn.gap or 'text differs'}"
    if stored["grounding"] != "generative":
        return f"not generated ({stored['grounding'] or 'none'})"
    if turn.handed_off:
        return "handed off"
    return "ok"


def step_figures(step: StepRun, count: int, args) -> dict:
    stored = stored_replies(step.conversations)
    outcomes: dict[str, int] = {}
    for turn in step.turns:
        outcome = turn_outcome(turn, stored.get((turn.conversation, turn.acked_seq)))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    for error in step.errors:
        key = error.split(":", 1)[0]
        outcomes[key] = outcomes.get(key, 0) + 1
    start, end = step.window
    seconds = max(end - start, 1e-9)
    deltas = sum(start <= t < end for turn in step.turns for t in turn.delta_times)
    replies = sum(turn.done_at is not None and start <= turn.done_at < end for turn in step.turns)
    engine_ms = engine_first_text_ms(args)
    overheads = [(t.first_delta - t.sent) * 1000 - engine_ms for t in step.turns if t.first_delta]
    completed = [t for t in step.turns if t.done is not None and t.delta_times]
    all_deltas = sum(len(t.delta_times) for t in step.turns)
    return {
        "conversations": count,
        "sockets": len(step.conversations),
        "questions": len(step.turns),
        "replies": sum(t.done is not None for t in step.turns),
        "window_s": round(seconds, 1),
        "frames_per_s": round(deltas / seconds, 1),
        "frames_per_s_per_conversation": round(deltas / seconds / max(1, count), 2),
        "replies_per_s": round(replies / seconds, 2),
        "deltas_per_reply": round(sum(len(t.delta_times) for t in completed) / max(1, len(completed)), 1),
        "first_delta_overhead_ms": {
            q: round(percentile(overheads, n), 1) for q, n in (("p50", 50), ("p95", 95), ("p99", 99))
        }
        | {"max": round(max(overheads, default=0.0), 1)},
        "ok": outcomes.pop("ok", 0),
        "lost": sum(n for kind, n in outcomes.items() if kind.startswith("lost")),
        "incomplete": sum(n for kind, n in outcomes.items() if kind.startswith("incomplete")),
        "errors": sum(n for kind, n in outcomes.items() if not kind.startswith(("lost", "incomplete"))),
        "outcomes": outcomes,  # every question that did not end well, by what happened
        "cpu_percent": {name: round(100 * s / step.watched_s) for name, s in step.cpu_s.items()},
        # CPU per delta delivered in the whole step: what a frame costs each process, whatever else the machine runs
        "cpu_ms_per_frame": {name: round(1000 * s / max(1, all_deltas), 2) for name, s in step.cpu_s.items()},
        "postgres_connections_peak": step.connections_peak,
        "simulator": {"streams_peak": step.sim["streams_peak"], "first_text_late_ms": step.sim["first_text_late_ms"]},
        "timings_p50_ms": stage_timings(stored.values()),
    }


def engine_first_text_ms(args) -> float:
    """When the simulator has sent what lets the product publish its first text: the first sentence and the next
    word (the product publishes a sentence at a time), counted from the request."""
    index = engine_sim.first_text_index(engine_sim.reply_tokens(args.tokens))
    return args.first_token_ms + 1000 * index / args.tokens_per_s


def stage_timings(replies) -> dict[str, float]:
    """The median of each stage in Message.timings (ms after the customer's message was stored); {} without them."""
    stages: dict[str, list[float]] = {}
    for reply in replies:
        for stage, ms in (reply.get("timings") or {}).items():
            stages.setdefault(stage, []).append(ms)
    return {stage: percentile(values, 50) for stage, values in stages.items()}


def step_run(run: Stack, args, count: int) -> dict:
    watch = Watch(run)
    step = asyncio.run(step_customers(run, args, count, watch))
    drained_s = replies_drain(run)
    return step_figures(step, count, args) | {"drain_s": drained_s}


def warm_up(run: Stack, args) -> None:
    """One question per daphne process: the worker loads the embeddings; the answer must be the engine's."""

    async def ask_once(base: str) -> Turn:
        [(base, conv)], _errors = await conversations_open([base], 1)
        ws = await socket_open(base, conv)
        try:
            return await ask(ws, conv["id"], PROMPTS[0], timeout=120)
        finally:
            await ws.close()

    for base in run.bases:
        turn = asyncio.run(ask_once(base))
        stored = stored_replies([turn.conversation]).get((turn.conversation, turn.acked_seq))
        if turn_outcome(turn, stored) != "ok":
            raise SystemExit(
                f"warm-up reply was not streamed by the engine: {turn_outcome(turn, stored)}; done={turn.done}\n"
                f"{run.worker.output()[-3000:]}"
            )


# --- idle sockets ---------------------------------------------------------------------------------------------


def idle_conversations(count: int) -> list[dict]:
    """`count` conversations on the hosted site, opened through the service in bulk."""
    from chat import services
    from chat.models import Site

    site = Site.objects.first()
    made = []
    for _ in range(count):
        conversation, secret = services.conversation_start(site=site, language="en", region="Europe/Paris")
        made.append({"id": str(conversation.id), "secret": secret, "websocket": f"/ws/chat/{conversation.id}/"})
    return made


async def idle_sockets(run: Stack, conversations: list[dict], hold_s: float) -> dict:
    pids = [p.popen.pid for p in run.daphnes]
    await asyncio.sleep(1)
    before = [rss_kb(pid) for pid in pids]
    gate = asyncio.Semaphore(50)  # below daphne's listen backlog
    errors: list[str] = []

    async def one(i: int, conversation: dict):
        async with gate:
            try:
                return await socket_open(run.bases[i % len(run.bases)], conversation)
            except (OSError, RuntimeError, TimeoutError, WebSocketException) as exc:
                errors.append(repr(exc)[:120])
                return None

    started = time.monotonic()
    opened = await asyncio.gather(*(one(i, c) for i, c in enumerate(conversations)))
    sockets = [ws for ws in opened if ws is not None]
    open_s = time.monotonic() - started
    await asyncio.sleep(3)  # settle: the last hellos' work done
    after = [rss_kb(pid) for pid in pids]
    ticks = [cpu_ticks(pid) for pid in pids]
    await asyncio.sleep(hold_s)
    idle_cpu = [(cpu_ticks(pid) - t) / CLK_TCK / hold_s * 100 for pid, t in zip(pids, ticks, strict=True)]
    still_open = sum(ws.state.name == "OPEN" for ws in sockets)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    grown = sum(after) - sum(before)
    return {
        "sockets": len(conversations),
        "connected": len(sockets),
        "open_after_hold": still_open,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "connect_s": round(open_s, 1),
        "hellos_per_s": round(len(sockets) / open_s, 1) if open_s else None,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_socket": round(grown / len(sockets), 1) if sockets else None,
        "hold_s": hold_s,
        "daphne_cpu_percent_idle": [round(c, 1) for c in idle_cpu],
    }


def idle_run(run: Stack, args) -> dict:
    conversations = idle_conversations(args.idle)
    return asyncio.run(idle_sockets(run, conversations, args.idle_hold))


# --- output ---------------------------------------------------------------------------------------------------


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {"cores": os.cpu_count(), "cpu": model, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def settings_used(args, run: Stack) -> dict:
    """What the run's processes were configured with (the same settings, read in this process)."""
    from django.conf import settings

    layer = settings.CHANNEL_LAYERS["default"]
    return {
        "web_processes": args.web_processes,
        "web_urls": run.bases,
        "worker_threads": args.worker_threads,
        "database_pool_max_size": getattr(settings, "DATABASE_POOL_MAX_SIZE", None),  # per process; None: no pool
        "channel_layer": layer["BACKEND"].rsplit(".", 1)[1],
        "channel_layer_capacity": layer.get("CONFIG", {}).get("capacity"),
        "knowledge_answer_mode": settings.KNOWLEDGE_ANSWER_MODE,
        "fact_guard": "on" if settings.KNOWLEDGE_FACT_GUARD else "off",
        "stream_coalesce_ms": settings.CHAT_STREAM_COALESCE_MS,
        "duration_s": args.duration,
        "turn_timeout_s": args.turn_timeout,
        "redis": run.env["REDIS_URL"],
    }


def print_header(report: dict) -> None:
    m, s, e = report["machine"], report["settings"], report["engine"]
    print(f"machine: {m['cores']} cores ({m['cpu']}), load average {m['load_average_at_start']} at start")
    print(
        f"engine: SIMULATOR ({e['tokens_per_s']:g} tok/s, {e['tokens']} tokens, first token after "
        f"{e['first_token_ms']:g} ms, first sentence complete after {e['first_text_ms']:g} ms): bench/engine_sim.py, "
        "no model"
    )
    spread = " (customers spread over them in turn)" if s["web_processes"] > 1 else ""
    print(
        f"stack: {s['web_processes']} daphne on {', '.join(s['web_urls'])}{spread}; 1 Celery worker, "
        f"{s['worker_threads']} threads; PostgreSQL pool of {s['database_pool_max_size']} a process; Redis "
        f"{s['redis']} ({s['channel_layer']}, capacity {s['channel_layer_capacity']})"
    )
    print(
        f"answers: {s['knowledge_answer_mode']}, fact guard {s['fact_guard']}, coalesce {s['stream_coalesce_ms']} ms; "
        f"each step {s['duration_s']:g} s of questions (turn timeout reply + {s['turn_timeout_s']:g} s)"
    )


def print_steps(steps: list[dict]) -> None:
    print("\nStreaming (p50/p95/p99: the first delta's latency minus the simulator's time to its first sentence):")
    head = (
        f"{'conv':>5} {'frames/s':>9} {'/conv':>6} {'replies/s':>9} {'deltas/rep':>10} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6} {'lost':>5} {'incompl':>7} {'pg conn':>7}  cpu %"
    )
    print(head)
    for s in steps:
        o = s["first_delta_overhead_ms"]
        cpu = " ".join(f"{k} {v}" for k, v in s["cpu_percent"].items())
        print(
            f"{s['conversations']:>5} {s['frames_per_s']:>9.1f} {s['frames_per_s_per_conversation']:>6.2f} "
            f"{s['replies_per_s']:>9.2f} {s['deltas_per_reply']:>10.1f} {o['p50']:>8.1f} {o['p95']:>8.1f} "
            f"{o['p99']:>8.1f} {s['errors']:>6} {s['lost']:>5} {s['incomplete']:>7} "
            f"{s['postgres_connections_peak']:>7}  {cpu}"
        )
    t = TARGETS
    print(
        f"{'target':>5} {t['frames_per_s']:>9} {t['frames_per_s'] / t['conversations']:>6.2f} {'':>9} {'':>10} {'':>8} "
        f"{'<=' + str(t['p95_first_delta_overhead_ms']):>8} {'':>8} {t['errors']:>6} {t['lost']:>5}   "
        f"(the issue's: {t['conversations']} conversations)"
    )
    for s in steps:
        notes = []
        if s["outcomes"]:
            notes.append(", ".join(f"{kind} {n}" for kind, n in sorted(s["outcomes"].items())))
        notes.append("CPU ms a frame " + " ".join(f"{k} {v:g}" for k, v in s["cpu_ms_per_frame"].items()))
        late = s["simulator"]["first_text_late_ms"]
        notes.append(f"simulator late p95 {late['p95']} ms, streams peak {s['simulator']['streams_peak']}")
        if s["timings_p50_ms"]:
            stages = sorted(s["timings_p50_ms"].items(), key=lambda item: item[1])
            notes.append("stages p50 ms " + " ".join(f"{k} {v:g}" for k, v in stages))
        print(f"  {s['conversations']:>4} conv: " + "; ".join(notes))


def step_misses(step: dict) -> list[str]:
    """What keeps a step from the issue's bar at its own size: the target's rate per conversation (with 10% for the
    moments between one reply and the next), no error, nothing lost or incomplete, the p95 overhead."""
    misses = []
    rate = TARGETS["frames_per_s"] / TARGETS["conversations"]
    if step["frames_per_s_per_conversation"] < 0.9 * rate:
        misses.append(f"{step['frames_per_s']:g} frames/s ({step['frames_per_s_per_conversation']:g} a conversation)")
    if step["errors"] or step["lost"] or step["incomplete"]:
        misses.append(f"{step['errors']} errors, {step['lost']} lost, {step['incomplete']} incomplete")
    if step["first_delta_overhead_ms"]["p95"] > TARGETS["p95_first_delta_overhead_ms"]:
        misses.append(f"p95 overhead {step['first_delta_overhead_ms']['p95']:g} ms")
    return misses


def cores_for_target(steps: list[dict]) -> str | None:
    """What the target's frames would cost in CPU at the cost per frame of the largest step that delivered every
    reply whole (the bench's own client and simulator left out); None without such a step."""
    clean = [s for s in steps if not (s["errors"] or s["lost"] or s["incomplete"]) and s["frames_per_s"] > 0]
    if not clean:
        return None
    step = max(clean, key=lambda s: s["conversations"])
    stack_ms = {k: v for k, v in step["cpu_ms_per_frame"].items() if k not in ("client", "simulator")}
    cores = {k: v * TARGETS["frames_per_s"] / 1000 for k, v in stack_ms.items()}
    parts = " ".join(f"{k} {v:.1f}" for k, v in cores.items())
    return (
        f"at the CPU a frame cost at {step['conversations']} conversations, {TARGETS['frames_per_s']} frames/s would "
        f"take about {sum(cores.values()):.1f} cores ({parts}); this machine has {os.cpu_count()}, shared"
    )


def verdict(steps: list[dict], idle: dict | None) -> list[str]:
    """The issue's targets against the figures: the largest step that holds the bar, and what the others miss."""
    t = TARGETS
    bar = (
        f"streaming target ({t['conversations']} conversations at {t['frames_per_s']} frames/s, {t['errors']} errors, "
        f"{t['lost']} lost, p95 overhead <= {t['p95_first_delta_overhead_ms']} ms)"
    )
    holding = [s["conversations"] for s in steps if not step_misses(s)]
    met = any(n >= t["conversations"] for n in holding)
    largest = max(holding, default="none")
    lines = [f"{bar}: {'met' if met else 'MISSED'}; largest step that holds the bar at its size: {largest}"]
    lines += [f"  at {s['conversations']}: " + "; ".join(step_misses(s)) for s in steps if step_misses(s)]
    if cores := cores_for_target(steps):
        lines.append(cores)
    if idle is not None:
        kb = idle["kb_per_socket"]
        ok = idle["connected"] >= t["idle_sockets"] and kb is not None and kb <= t["idle_kb_per_socket"]
        lines.append(
            f"idle target ({t['idle_sockets']} sockets at <= {t['idle_kb_per_socket']} KB each): "
            f"{'met' if ok else 'MISSED'} ({idle['connected']} sockets held, {kb} KB each)"
        )
    return lines


def print_idle(idle: dict) -> None:
    print(
        f"\nIdle sockets: {idle['connected']} of {idle['sockets']} connected and said hello in {idle['connect_s']} s "
        f"({idle['hellos_per_s']}/s), {idle['errors']} errors, {idle['open_after_hold']} still open after "
        f"{idle['hold_s']:g} s"
    )
    print(
        f"daphne VmRSS {idle['rss_before_kb']} KB -> {idle['rss_after_kb']} KB: {idle['kb_per_socket']} KB per "
        f"socket (target <= {TARGETS['idle_kb_per_socket']} KB at {TARGETS['idle_sockets']} sockets); daphne CPU "
        f"while idle {idle['daphne_cpu_percent_idle']} %"
    )
    if idle["error_examples"]:
        print(f"  e.g. {idle['error_examples']}")


# --- main -----------------------------------------------------------------------------------------------------


def fd_limit_raise(needed: int) -> None:
    """Open files up to the hard limit, for this client's sockets and (inherited) daphne's."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise SystemExit(f"{needed} sockets need more open files than the hard limit ({hard}) allows")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="1,10,25,50,100", help="concurrent conversations per step")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each step asks questions")
    parser.add_argument("--turn-timeout", type=float, default=20.0, help="seconds past a reply's length to wait")
    parser.add_argument("--web-processes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--worker-threads", type=int, help="the worker's threads (default: the largest step)")
    parser.add_argument("--tokens", type=int, default=400, help="simulator: tokens per reply")
    parser.add_argument("--tokens-per-s", type=float, default=40.0, help="simulator: tokens per second per stream")
    parser.add_argument("--first-token-ms", type=float, default=100.0, help="simulator: delay to the first token")
    parser.add_argument("--fact-guard", choices=("on", "off"), default="on", help="KNOWLEDGE_FACT_GUARD")
    parser.add_argument("--idle", type=int, default=0, help="idle sockets to hold (0: none)")
    parser.add_argument("--idle-hold", type=float, default=10.0, help="seconds the idle sockets are held")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    steps = [int(n) for n in args.steps.split(",") if n.strip()]
    args.worker_threads = args.worker_threads or max(steps)
    if not 1 <= args.tokens <= 1024:
        parser.error("--tokens must be between 1 and 1024 (INFERENCE_MAX_TOKENS_LIMIT)")
    print(f"$ {command_line()}", flush=True)
    fd_limit_raise(2 * max([*steps, args.idle]) + 1000)

    with scratch_database(DATABASE_NAME) as database_url, contextlib.ExitStack() as cleanup:
        run = stack_start(args, database_url, cleanup)
        report = {
            "command": command_line(),
            "machine": machine(),
            "engine": {
                "kind": "SIMULATOR",
                "tokens": args.tokens,
                "tokens_per_s": args.tokens_per_s,
                "first_token_ms": args.first_token_ms,
                "first_text_ms": round(engine_first_text_ms(args), 1),
            },
            "settings": settings_used(args, run),
            "targets": TARGETS,
        }
        print_header(report)
        warm_up(run, args)
        report["steps"] = []
        for count in steps:
            report["steps"].append(step_run(run, args, count))
            s = report["steps"][-1]
            print(
                f"  step {count}: {s['frames_per_s']:g} frames/s, p95 {s['first_delta_overhead_ms']['p95']:g} ms, "
                f"{s['errors']} errors, {s['lost']} lost, {s['incomplete']} incomplete",
                flush=True,
            )
        report["idle"] = idle_run(run, args) if args.idle else None

    print_steps(report["steps"])
    if report["idle"]:
        print_idle(report["idle"])
    report["verdict"] = verdict(report["steps"], report["idle"])
    print("\nTargets (the issue's, on this machine):")
    for line in report["verdict"]:
        print(f"  {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
