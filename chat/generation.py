"""The one generation pipeline: every bot output goes through `generate`.

Customer replies (chat.reply), API completions and the playground (chat.completions), handoff summaries and
suggested replies (chat.assist) differ only in the history they bring, where their text goes while it streams (a
`Publisher`) and what they store afterwards. Everything else happens here, once:

    system prompt (the active template or the caller's, with its variables) + history, trimmed to the token budget
    → the engine, with the first-token and total deadlines
    → the model's handoff signal cut out of the stream
    → full-width punctuation for Chinese
    → published in gathered pieces (CHAT_STREAM_COALESCE_MS), the first at once
    → on an engine failure, the staff's keyword rules (for outputs a customer reads)
    → counted for Prometheus.

It works on plain data (turns, tags, settings) and stores nothing, so it serves stateless requests as well as
conversations. A new rule (a guard on facts, a metric) added here applies to every output at once.
"""

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from prometheus_client import Counter

from chat.prompting import prompt_variables
from inference import selectors as bot_config
from inference.deferral import DeferralFilter
from inference.engines import DEFAULT_ENGINE, Engine, EngineError, engine_get
from inference.fallback import rule_answer
from inference.generation import Generation, GenerationStats, generation_with_deadlines
from inference.language import language_base
from inference.params import sampling_params_build
from inference.prompt import PromptError, context_fit, system_prompt_render
from inference.text import FullwidthPunctuation
from inference.types import ChatTurn, SamplingParams

logger = logging.getLogger(__name__)

ENGINE_FAILURES = Counter(
    "helpdesk_engine_failures_total", "Replies the engine could not give, by how they were answered", ["answered_by"]
)
GENERATIONS = Counter(
    "helpdesk_generations_total",
    "Bot outputs by purpose (reply, completion, summary, suggestion) and outcome",
    ["purpose", "outcome"],
)

# Seconds between calls of Publisher.still_wanted (a cache read and a query, so not per token).
STILL_WANTED_CHECK_INTERVAL_S = 1.0


class Outcome:
    ANSWERED = "answered"  # the engine wrote the text
    DEFERRED = "deferred"  # the model asked for a person; `text` is what it wrote before the signal
    RULES = "rules"  # the engine failed and a staff-written keyword rule answered
    FAILED = "failed"  # the engine failed and nothing answered; `text` is what streamed before
    STOPPED = "stopped"  # nobody wanted the rest (Publisher.still_wanted); `text` is what streamed before


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, as plain data."""

    purpose: str  # reply, completion, summary, suggestion: for logs and metrics
    history: Sequence[ChatTurn]  # user and assistant turns, oldest first; the newest is what to answer
    language: str = "en"  # the customer's language tag: the prompt's {{language}}, punctuation, rules
    region: str = ""
    template: str | None = None  # the system prompt template; None: the active version staff published
    overrides: Mapping = field(default_factory=dict)  # sampling parameters, clamped by sampling_params_build
    engine: str | None = None  # a name from engine_names(); None: the default
    rules_fallback: bool = True  # whether keyword rules answer when the engine fails (outputs customers read)
    label: str = ""  # names the output in logs ("reply 42")


@dataclass(frozen=True)
class GenerationResult:
    outcome: str  # an Outcome
    text: str
    stats: GenerationStats  # engine "rules" when a rule answered
    error: str = ""  # why the engine failed, or why the output stopped

    @property
    def engine_failed(self) -> bool:
        return self.outcome in (Outcome.RULES, Outcome.FAILED)


class GenerationStopped(Exception):
    """Raised by Publisher.still_wanted: the rest of the output is not wanted (its message says why)."""


class GenerationRefused(ValueError):
    """The request cannot run as asked: an unknown engine name or a template with unknown variables."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Publisher:
    """Where an output goes while it streams. This one publishes nothing; callers override what they need."""

    def __init__(self) -> None:
        self.received: list[str] = []  # the text so far, as the customer would see it, also if the stream breaks

    def started(self, *, engine_name: str, engine: Engine, params: SamplingParams) -> None:
        """The engine is about to run with these parameters (after clamping)."""

    def delta(self, text: str) -> None:
        """The next gathered piece of the text."""

    def still_wanted(self) -> None:
        """Called about once a second while the engine streams; raise GenerationStopped to stop (frees the engine)."""


def prompt_build(engine: Engine, request: GenerationRequest, params: SamplingParams) -> list[ChatTurn]:
    """The system prompt with its variables, then the newest turns that fit the window with room for the reply."""
    template = bot_config.system_prompt_active() if request.template is None else request.template
    system = system_prompt_render(template, prompt_variables(language=request.language, region=request.region))
    return context_fit(engine, system, request.history, reserve_tokens=params.max_tokens)


def generate(request: GenerationRequest, publisher: Publisher | None = None) -> GenerationResult:
    """Run the pipeline for `request`, publishing to `publisher` as the text streams.

    Engine failures (errors, missed deadlines, an empty reply, a prompt too long for the window) become a FAILED or
    RULES result, never an exception. GenerationRefused is raised for a request that cannot run as asked; anything
    else raised is a bug, and propagates.
    """
    publisher = publisher or Publisher()
    deferral = DeferralFilter()
    try:
        engine = _engine(request.engine)
        params = sampling_params_build(settings, request.overrides)
        try:
            turns = prompt_build(engine, request, params)
        except PromptError as exc:
            raise GenerationRefused("invalid_prompt", str(exc)) from exc
        publisher.started(engine_name=request.engine or DEFAULT_ENGINE, engine=engine, params=params)
        generation = generation_with_deadlines(engine, turns, params, settings)
        text = _stream(generation, publisher, deferral, language=request.language)
        if not deferral.deferred and not text.strip():
            raise EngineError("the engine returned an empty reply")
    except GenerationStopped as stop:
        logger.info("%s stopped: %s", request.label or request.purpose, stop)
        return _counted(request, GenerationResult(Outcome.STOPPED, "".join(publisher.received), _stats(), str(stop)))
    except EngineError as exc:
        return _counted(request, _fallback(request, "".join(publisher.received), exc))
    outcome = Outcome.DEFERRED if deferral.deferred else Outcome.ANSWERED
    if deferral.deferred:
        logger.info("%s: the model deferred to a person", request.label or request.purpose)
    return _counted(request, GenerationResult(outcome, text.strip(), generation.stats))


def _engine(name: str | None) -> Engine:
    try:
        return engine_get(name)
    except KeyError:
        raise GenerationRefused("unknown_engine", f"No engine is configured under the name {name!r}.") from None


def _stream(generation: Generation, publisher: Publisher, deferral: DeferralFilter, *, language: str) -> str:
    """Publish the generation's text in gathered pieces (the first at once) and return all of it.

    The model's handoff signal is cut out before anything is published and ends the stream (`deferral.deferred`).
    """
    punctuation = FullwidthPunctuation() if language_base(language) == "zh" else None
    interval = settings.CHAT_STREAM_COALESCE_MS / 1000
    parts = publisher.received
    pending: list[str] = []
    last_flush = float("-inf")
    next_check = time.monotonic() + STILL_WANTED_CHECK_INTERVAL_S
    for raw in generation:
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + STILL_WANTED_CHECK_INTERVAL_S
            publisher.still_wanted()
        text = deferral.feed(raw)
        if deferral.deferred:
            return "".join(parts)
        if punctuation is not None:
            text = punctuation.feed(text)
        if not text:
            continue  # held back: it may be the start of the handoff signal
        parts.append(text)
        pending.append(text)
        now = time.monotonic()
        if now - last_flush >= interval:
            publisher.delta("".join(pending))
            pending.clear()
            last_flush = now
    held = deferral.flush()
    if held:
        held = punctuation.feed(held) if punctuation is not None else held
        parts.append(held)
        pending.append(held)
    if pending:
        publisher.delta("".join(pending))
    return "".join(parts)


def _fallback(request: GenerationRequest, streamed: str, error: EngineError) -> GenerationResult:
    """The engine failed: the first matching keyword rule answers, if this output has rules at all."""
    name = request.label or request.purpose
    if not request.rules_fallback:
        logger.warning("%s failed: %s", name, error)
        return GenerationResult(Outcome.FAILED, streamed, _stats(), str(error))
    question = next((turn.content for turn in reversed(request.history) if turn.role == "user"), "")
    answer = rule_answer(question, bot_config.fallback_rules(), language=request.language)
    if answer is None:
        ENGINE_FAILURES.labels(answered_by="nobody").inc()
        logger.warning("%s failed, no rule matched: %s", name, error)
        return GenerationResult(Outcome.FAILED, streamed, _stats(), str(error))
    ENGINE_FAILURES.labels(answered_by="rule").inc()
    logger.warning("%s answered by a rule after: %s", name, error)
    return GenerationResult(Outcome.RULES, answer, _stats(engine="rules", finish_reason="stop"), str(error))


def _stats(**fields) -> GenerationStats:
    """Figures of an output the engine did not finish: nothing counted."""
    return GenerationStats(**{"engine": "", **fields})


def _counted(request: GenerationRequest, result: GenerationResult) -> GenerationResult:
    GENERATIONS.labels(purpose=request.purpose, outcome=result.outcome).inc()
    return result
