"""Replies outside any conversation: the OpenAI-compatible API and the staff playground.

They run where the bot's replies run (a Celery worker, or the embedded thread pool) through the same generation
pipeline (chat.generation: system prompt, context trimming, handoff signal, rule fallback), but the caller brings
the whole history and nothing is stored. The worker publishes the job's events to the channel-layer group
`completion.<job id>`, which the waiting HTTP request relays (chat.api.relay):

- completion.start  {engine, model, params}: the sampling parameters exactly as handed to the engine;
- completion.delta  {text};
- completion.done   {text, streamed, handoff, handoff_reason, finish_reason, grounding, sources[{article_id, slug,
                     title, url, passage_id, score}], stats{engine, prompt_tokens, completion_tokens, ttft_ms,
                     tokens_per_s, duration_ms}}; `streamed`: the deltas carried all of `text` (a fallback's
                     answer is not streamed);
- completion.error  {code, message}.
"""

import dataclasses
import logging
import uuid

from django.core.cache import cache

from chat import broadcast, dispatch, tasks
from chat.generation import GenerationRefused, GenerationRequest, GenerationStopped, Outcome, Publisher, generate
from inference.engines import Engine
from inference.generation import GenerationStats
from inference.types import ChatTurn, SamplingParams

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CompletionJob:
    """One stateless reply, as plain data (it travels as a Celery task argument)."""

    id: str
    turns: list  # [[role, content], ...]: user and assistant turns, oldest first
    overrides: dict  # sampling parameters asked for; clamped by sampling_params_build
    engine: str | None = None  # a name from engine_names(); None: the default
    system_prompt: str | None = None  # a draft template to try instead of the active version
    language: str = "en"
    region: str = ""
    mode: str | None = None  # the answer mode to try (the playground); None: KNOWLEDGE_ANSWER_MODE


def completion_group(job_id: str) -> str:
    return f"completion.{job_id}"


# How long a "nobody is waiting any more" mark lives: longer than any generation.
CANCEL_TTL_S = 600


def _cancel_key(job_id: str) -> str:
    return f"completion:cancelled:{job_id}"


def completion_cancel(job_id: str) -> None:
    """The caller stopped waiting (closed the stream, pressed Stop): the worker stops generating within a second."""
    cache.set(_cancel_key(job_id), 1, CANCEL_TTL_S)


def completion_job_new(**fields) -> CompletionJob:
    return CompletionJob(id=uuid.uuid4().hex, **fields)


def completion_enqueue(job: CompletionJob) -> None:
    """Start the job on the generation backend (raises if the backend cannot take it)."""
    dispatch.task_enqueue(tasks.completion_generate_task, dataclasses.asdict(job))


class CompletionPublisher(Publisher):
    """Every step of the job goes to its group, where the waiting request listens."""

    def __init__(self, job: CompletionJob):
        super().__init__()
        self.job = job

    def send(self, kind: str, **data) -> None:
        broadcast.group_send(completion_group(self.job.id), {"type": f"completion.{kind}", "job": self.job.id, **data})

    def started(self, *, engine_name: str, engine: Engine, params: SamplingParams) -> None:
        self.send("start", engine=engine_name, model=engine.model_name, params=dataclasses.asdict(params))

    def delta(self, text: str) -> None:
        self.send("delta", text=text)

    def still_wanted(self) -> None:
        if cache.get(_cancel_key(self.job.id)):
            raise GenerationStopped("nobody is waiting for it")


def completion_generate(job: CompletionJob) -> None:
    """Run the job and publish its events. Never raises for an engine failure: the waiting client is told."""
    publisher = CompletionPublisher(job)
    request = GenerationRequest(
        purpose="completion",
        history=[ChatTurn(role, content) for role, content in job.turns],
        language=job.language,
        region=job.region,
        template=job.system_prompt,
        overrides=job.overrides,
        engine=job.engine,
        mode=job.mode,
        label=f"completion {job.id}",
    )
    try:
        result = generate(request, publisher)
    except GenerationRefused as exc:
        return publisher.send("error", code=exc.code, message=str(exc))
    except Exception:
        logger.exception("completion %s crashed", job.id)
        return publisher.send("error", code="internal_error", message="The reply failed; the error is logged.")
    if result.outcome == Outcome.STOPPED:
        return None
    if result.outcome == Outcome.FAILED:
        # The engine's error names its server (base URL, model path): logged by the pipeline, never sent to clients.
        return publisher.send("error", code="engine_unavailable", message="The model could not answer right now.")
    handoff_reason = {Outcome.DEFERRED: "model_deferred", Outcome.NO_KNOWLEDGE: "no_knowledge"}.get(result.outcome)
    return publisher.send(
        "done",
        text=result.text,
        streamed=result.outcome != Outcome.RULES,
        handoff=handoff_reason is not None,
        handoff_reason=handoff_reason,
        finish_reason="handoff" if handoff_reason else result.stats.finish_reason,
        grounding=result.grounding,
        sources=[source.as_dict() for source in result.sources],
        stats=_stats_dict(result.stats),
    )


def _stats_dict(stats: GenerationStats) -> dict:
    return {
        "engine": stats.engine,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "ttft_ms": stats.ttft_ms,
        "tokens_per_s": stats.tokens_per_s,
        "duration_ms": round(stats.duration_s * 1000),
    }
