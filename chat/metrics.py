"""chat's Prometheus series: the generation pipeline, the customer's socket, the knowledge step, rate limits.

Every process exports what happened in it: web processes the sockets, the widget and the API; Celery workers the
generations (the embedded mode does both in one process). Dashboards sum over processes. Series with a known, closed
set of labels are created at import, so they read 0 rather than nothing before their first event.

The staff side's series (handoffs, ratings, webhooks, the queue) are in helpdesk.metrics.
"""

import time

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from inference.engines import ENGINE_ALIASES

# Seconds, from a cached prompt or a quoted article (10 ms) to INFERENCE_GENERATION_TIMEOUT's default (120 s).
SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)
# Decode speed, from a CPU with a small share of a core to a GPU.
TOKENS_PER_SECOND_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)

# Bot outputs by purpose (chat.generation.GenerationRequest.purpose), and the tasks that run each.
PURPOSES = ("reply", "completion", "summary", "suggestion")
PURPOSE_OF_TASK = {
    "chat.tasks.reply_generate_task": "reply",
    "chat.tasks.completion_generate_task": "completion",
    "chat.tasks.handoff_summary_task": "summary",
    "chat.tasks.reply_suggest_task": "suggestion",
}
# The stages of an output, in order; each is timed from the end of the previous one, so they add up to the wait
# before the first text is published (after the task started: queue_wait is the wait before it).
STAGES = ("queue_wait", "retrieval", "prompt_build", "engine_first_token", "first_publish")
# What a customer reply stores of them (Message.timings): when each stage ended, in ms after the customer's message
# was stored. queued: the job was handed to the backend; picked_up: a worker started it.
REPLY_MARKS = ("queued", "picked_up", "retrieval", "prompt_built", "engine_first_token", "first_publish")
_MARK_OF_STAGE = {"prompt_build": "prompt_built"}

GENERATIONS = Counter(
    "helpdesk_generations_total",
    "Bot outputs by purpose (reply, completion, summary, suggestion) and outcome",
    ["purpose", "outcome"],
)
ENGINE_FAILURES = Counter(
    "helpdesk_engine_failures_total",
    "Outputs the engine could not give (an error, a missed deadline, an empty reply), by what answered instead",
    ["answered_by"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "helpdesk_time_to_first_token_seconds",
    "From the engine call to its first token (engine knowledge: to the quoted answer), by engine and purpose",
    ["engine", "purpose"],
    buckets=SECONDS_BUCKETS,
)
REPLY_DURATION = Histogram(
    "helpdesk_reply_duration_seconds",
    "Whole bot outputs, from the pipeline's start to its last text (retrieval, prompt, engine, guard, publishing)",
    ["engine", "purpose"],
    buckets=SECONDS_BUCKETS,
)
STAGE_DURATION = Histogram(
    "helpdesk_reply_stage_seconds",
    "Stages of a bot output before its first text is published: queue_wait (enqueued to task start), retrieval, "
    "prompt_build, engine_first_token, first_publish; then first_delivery (published to sent on the customer's "
    "socket, observed by the web process)",
    ["purpose", "stage"],
    buckets=SECONDS_BUCKETS,
)
GENERATED_TOKENS = Counter(
    "helpdesk_generated_tokens_total", "Completion tokens the engines generated, by engine", ["engine"]
)
PROMPT_TOKENS = Counter("helpdesk_prompt_tokens_total", "Prompt tokens sent to the engines, by engine", ["engine"])
TOKENS_PER_SECOND = Histogram(
    "helpdesk_tokens_per_second",
    "Decode speed of each output: completion tokens after the first over the time after the first, by engine",
    ["engine"],
    buckets=TOKENS_PER_SECOND_BUCKETS,
)
FRAMES_MISSED = Counter(
    "helpdesk_socket_frames_missed_total",
    "Frames a customer socket found missing (the channel layer drops news when full) and made good from the "
    "database: message (a message, or a streaming reply's start), delta (a piece of a reply), done (a reply's end)",
    ["kind"],
)
CHANNEL_LAYER_DROPPED = Counter(
    "helpdesk_channel_layer_dropped_total",
    "Group messages the Redis channel layer dropped because a receiving process's inbox was full (sockets catch up "
    "from the database: helpdesk_socket_frames_missed_total)",
)
ACTIVE_STREAMS = Gauge("helpdesk_active_streams", "Bot outputs this process is generating now")
WEBSOCKETS = Gauge(
    "helpdesk_websocket_connections", "Websockets open on this process: customer (widget) or console", ["kind"]
)
RETRIEVALS = Counter(
    "helpdesk_knowledge_retrievals_total",
    "Customer turns searched in the knowledge base: hit, miss (no_knowledge), customer_specific",
    ["result"],
)
FACT_GUARD = Counter(
    "helpdesk_fact_guard_total", "Generated sentences held back because a fact was in no passage", ["purpose"]
)
RATE_LIMITED = Counter(
    "helpdesk_rate_limited_total",
    "Requests refused by a rate limit: channel api (limit ip, key, messages), widget (conversations, attachments), "
    "socket (messages, and each customer frame type: chat.frame_limits), console (each console frame type)",
    ["channel", "limit"],
)
IDENTITY_CHECKS = Counter(
    "helpdesk_identity_checks_total",
    "Signed identities the widget passed (chat.identity): verified, invalid (a wrong signature), unsigned (none)",
    ["result"],
)
EMAILS_SENT = Counter(
    "helpdesk_emails_sent_total",
    "Emails sent (chat.email, helpdesk.notifications) by kind: agent_reply, left_message, transcript, agent_*",
    ["kind"],
)
EMAILS_INBOUND = Counter(
    "helpdesk_emails_inbound_total",
    "Inbound emails by outcome: posted, duplicate, unknown_address, sender_mismatch, empty, rejected, deferred, "
    "unsubscribed",
    ["outcome"],
)

for _answered_by in ("rule", "knowledge", "greeting", "nobody"):
    ENGINE_FAILURES.labels(answered_by=_answered_by)
for _kind in ("customer", "console"):
    WEBSOCKETS.labels(kind=_kind)
for _kind in ("message", "delta", "done"):
    FRAMES_MISSED.labels(kind=_kind)
for _result in ("hit", "miss", "customer_specific"):
    RETRIEVALS.labels(result=_result)
for _channel, _limit in (
    ("api", "ip"),
    ("api", "key"),
    ("api", "messages"),
    ("widget", "conversations"),
    ("widget", "attachments"),
):
    RATE_LIMITED.labels(channel=_channel, limit=_limit)
RATE_LIMITED.labels(channel="socket", limit="messages")
for _result in ("verified", "invalid", "unsigned"):
    IDENTITY_CHECKS.labels(result=_result)


def reply_series_init() -> None:
    """Create the customer replies' timing series of this deployment's engines at 0, where replies are generated.

    A histogram's first observation would otherwise create its series: with no zero before it, rate() over the
    first window sees no increase, and the dashboard's quantiles miss the first replies after a restart.
    """
    configured = [settings.INFERENCE_ENGINE, *(e.get("engine", "") for e in settings.INFERENCE_ENGINES.values())]
    engines = {name for name in configured if name in ENGINE_ALIASES} | {"knowledge"}  # knowledge: quoted answers
    for engine in engines:
        TIME_TO_FIRST_TOKEN.labels(engine=engine, purpose="reply")
        REPLY_DURATION.labels(engine=engine, purpose="reply")
        TOKENS_PER_SECOND.labels(engine=engine)
    for stage in STAGES:
        STAGE_DURATION.labels(purpose="reply", stage=stage)


def first_delivery_observe(published_at) -> None:
    """A reply's first piece reached its customer's socket; `published_at` is when the worker published it."""
    if isinstance(published_at, int | float):
        STAGE_DURATION.labels(purpose="reply", stage="first_delivery").observe(max(0.0, time.time() - published_at))


def queue_wait_observe(*, task_name: str, waited_s: float) -> None:
    """A generation task started `waited_s` after it was enqueued (other tasks are not counted)."""
    purpose = PURPOSE_OF_TASK.get(task_name)
    if purpose is not None:
        STAGE_DURATION.labels(purpose=purpose, stage="queue_wait").observe(max(0.0, waited_s))


class StageClock:
    """Times one output's stages: each `lap` observes the time since the previous lap (or the start)."""

    def __init__(self, purpose: str):
        self.purpose = purpose
        self.started = self.last = time.monotonic()
        self.laps: set[str] = set()
        self.marks: dict[str, float] = {}  # the wall-clock time each stage ended, by its REPLY_MARKS name

    def restart(self) -> None:
        """Start again from now (what came before belongs to no stage)."""
        self.started = self.last = time.monotonic()

    def lap(self, stage: str) -> None:
        """Close `stage` now; a stage is counted once per output (the first publish, not every one)."""
        if stage in self.laps:
            return
        now = time.monotonic()
        STAGE_DURATION.labels(purpose=self.purpose, stage=stage).observe(now - self.last)
        self.laps.add(stage)
        self.last = now
        self.marks[_MARK_OF_STAGE.get(stage, stage)] = time.time()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def reply_timings(marks: dict[str, float], since: float) -> dict[str, int]:
    """Message.timings: each stage's end (`marks`, wall-clock seconds) in whole ms after `since`, in stage order."""
    return {name: max(0, round((marks[name] - since) * 1000)) for name in REPLY_MARKS if name in marks}


def generation_observe(*, purpose: str, stats, duration_s: float) -> None:
    """Count one finished output's engine figures (an inference.generation.GenerationStats)."""
    engine = stats.engine or "none"  # none: the engine failed before giving anything
    REPLY_DURATION.labels(engine=engine, purpose=purpose).observe(duration_s)
    if stats.ttft_ms is not None:
        TIME_TO_FIRST_TOKEN.labels(engine=engine, purpose=purpose).observe(stats.ttft_ms / 1000)
    if stats.completion_tokens:
        GENERATED_TOKENS.labels(engine=engine).inc(stats.completion_tokens)
    if stats.prompt_tokens:
        PROMPT_TOKENS.labels(engine=engine).inc(stats.prompt_tokens)
    if stats.tokens_per_s is not None:
        TOKENS_PER_SECOND.labels(engine=engine).observe(stats.tokens_per_s)
