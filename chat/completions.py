"""Replies outside any conversation: the OpenAI-compatible API and the staff playground.

They run where the bot's replies run (a Celery worker, or the embedded thread pool) with the bot's system prompt,
context trimming, handoff signal and rule fallback, but the caller brings the whole history and nothing is stored.
The worker publishes the job's events to the channel-layer group `completion.<job id>`, which the waiting HTTP
request relays (chat.api.relay):

- completion.start  {engine, model, params}: the sampling parameters exactly as handed to the engine;
- completion.delta  {text};
- completion.done   {text, handoff, finish_reason, stats{engine, prompt_tokens, completion_tokens, ttft_ms,
                     tokens_per_s, duration_ms}};
- completion.error  {code, message}.
"""

import dataclasses
import logging
import uuid

from django.conf import settings
from django.core.cache import cache

from chat import broadcast, dispatch
from chat.reply import ENGINE_FAILURES, bot_system_prompt
from chat.streaming import stream_publish
from inference import selectors as bot_config
from inference.deferral import DeferralFilter
from inference.engines import DEFAULT_ENGINE, EngineError, engine_get
from inference.fallback import rule_answer
from inference.generation import generation_with_deadlines
from inference.params import sampling_params_build
from inference.prompt import PromptError, context_fit
from inference.text import FullwidthPunctuation
from inference.types import ChatTurn

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


def completion_group(job_id: str) -> str:
    return f"completion.{job_id}"


# How long a "nobody is waiting any more" mark lives: longer than any generation.
CANCEL_TTL_S = 600


def _cancel_key(job_id: str) -> str:
    return f"completion:cancelled:{job_id}"


def completion_cancel(job_id: str) -> None:
    """The caller stopped waiting (closed the stream, pressed Stop): the worker stops generating within a second."""
    cache.set(_cancel_key(job_id), 1, CANCEL_TTL_S)


class CompletionStopped(Exception):
    """Nobody waits for the rest of this completion."""


def _still_wanted(job_id: str) -> None:
    if cache.get(_cancel_key(job_id)):
        raise CompletionStopped(job_id)


def completion_job_new(**fields) -> CompletionJob:
    return CompletionJob(id=uuid.uuid4().hex, **fields)


def completion_enqueue(job: CompletionJob) -> None:
    """Start the job on the generation backend (raises if the backend cannot take it)."""
    from chat.tasks import completion_generate_task

    dispatch.task_enqueue(completion_generate_task, dataclasses.asdict(job))


def completion_generate(job: CompletionJob) -> None:
    """Run the job and publish its events. Never raises for an engine failure: the waiting client is told."""
    group = completion_group(job.id)

    def send(kind: str, **data) -> None:
        broadcast.group_send(group, {"type": f"completion.{kind}", "job": job.id, **data})

    history = [ChatTurn(role, content) for role, content in job.turns]
    try:
        engine = engine_get(job.engine)
        params = sampling_params_build(settings, job.overrides)
        system_prompt = bot_system_prompt(language=job.language, region=job.region, template=job.system_prompt)
        turns = context_fit(engine, system_prompt, history, reserve_tokens=params.max_tokens)
        send("start", engine=job.engine or DEFAULT_ENGINE, model=engine.model_name, params=dataclasses.asdict(params))
        generation = generation_with_deadlines(engine, turns, params, settings)
        deferral = DeferralFilter()
        punctuation = FullwidthPunctuation() if job.language.split("-")[0].lower() == "zh" else None
        text = stream_publish(
            generation,
            publish=lambda piece: send("delta", text=piece),
            deferral=deferral,
            punctuation=punctuation,
            still_wanted=lambda: _still_wanted(job.id),
        )
        if not deferral.deferred and not text.strip():
            raise EngineError("the engine returned an empty reply")
    except CompletionStopped:
        logger.info("completion %s stopped: nobody is waiting for it", job.id)
        return
    except KeyError:
        send("error", code="unknown_engine", message=f"No engine is configured under the name {job.engine!r}.")
        return
    except PromptError as exc:
        send("error", code="invalid_prompt", message=str(exc))
        return
    except EngineError as exc:
        _fallback(job, history, exc, send)
        return
    except Exception as exc:
        logger.exception("completion %s crashed", job.id)
        send("error", code="internal_error", message=f"The reply failed: {type(exc).__name__}.")
        return
    stats = generation.stats
    send(
        "done",
        text=text.strip(),
        handoff=deferral.deferred,
        finish_reason="handoff" if deferral.deferred else stats.finish_reason,
        stats={
            "engine": stats.engine,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "ttft_ms": stats.ttft_ms,
            "tokens_per_s": stats.tokens_per_s,
            "duration_ms": round(stats.duration_s * 1000),
        },
    )


def _fallback(job: CompletionJob, history: list[ChatTurn], error: EngineError, send) -> None:
    question = next((turn.content for turn in reversed(history) if turn.role == "user"), "")
    answer = rule_answer(question, bot_config.fallback_rules(), language=job.language)
    if answer is None:
        ENGINE_FAILURES.labels(answered_by="nobody").inc()
        logger.warning("completion %s failed, no rule matched: %s", job.id, error)
        send("error", code="engine_unavailable", message=f"The model could not answer: {error}")
        return
    ENGINE_FAILURES.labels(answered_by="rule").inc()
    send(
        "done",
        text=answer,
        handoff=False,
        finish_reason="stop",
        stats={
            "engine": "rules",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "ttft_ms": None,
            "tokens_per_s": None,
            "duration_ms": 0,
        },
    )
