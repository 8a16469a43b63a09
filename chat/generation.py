"""The one generation pipeline: every bot output goes through `generate`.

Customer replies (chat.reply), API completions and the playground (chat.completions), handoff summaries and
suggested replies (chat.assist) differ only in the history they bring, where their text goes while it streams (a
`Publisher`) and what they store afterwards. Everything else happens here, once:

    for outputs customers read: the knowledge base searched, and the way to answer chosen (chat.grounding):
      small talk, no knowledge (a person takes over), a curated answer, extractive or generative
    → system prompt (the active template or the caller's, with its variables; the passages in generative mode)
      + history, trimmed to the token budget
    → the engine, with the first-token and total deadlines
    → the model's handoff signal cut out of the stream
    → full-width punctuation for Chinese
    → the fact guard, a sentence at a time (chat.grounding.FactGate)
    → published in gathered pieces (CHAT_STREAM_COALESCE_MS), the first at once
    → stopped by the token limit: cut back to the last sentence, or ended with "…" and a note that it was cut
    → on an engine failure, the staff's keyword rules, else the extractive answer (for outputs a customer reads)
    → counted for Prometheus (chat.metrics: the stages before the first text, time to first token, duration, tokens).

It works on plain data (turns, tags, settings) and stores nothing, so it serves stateless requests as well as
conversations. A new rule (a guard on facts, a metric) added here applies to every output at once.
"""

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from chat import grounding, strings
from chat.grounding import FactGate, Grounding, GuardTripped, Plan, Source
from chat.metrics import ACTIVE_STREAMS, ENGINE_FAILURES, FACT_GUARD, GENERATIONS, StageClock, generation_observe
from chat.prompting import prompt_variables
from inference import selectors as bot_config
from inference.deferral import DeferralFilter
from inference.engines import DEFAULT_ENGINE, Engine, EngineError, RequestRejected, engine_get
from inference.fallback import rule_answer
from inference.generation import Generation, GenerationStats, generation_with_deadlines
from inference.language import language_base
from inference.params import sampling_params_build
from inference.prompt import PromptError, context_fit, system_prompt_render
from inference.text import FullwidthPunctuation, reply_cut_short
from inference.types import ChatTurn, SamplingParams

logger = logging.getLogger(__name__)

# Seconds between calls of Publisher.still_wanted (a cache read and a query, so not per token).
STILL_WANTED_CHECK_INTERVAL_S = 1.0


class Outcome:
    ANSWERED = "answered"  # the text answers (written by the engine, or taken from the knowledge base)
    DEFERRED = "deferred"  # the model asked for a person; `text` is what it wrote before the signal
    NO_KNOWLEDGE = "no_knowledge"  # nothing relevant is known: `text` says so, and a person should take over
    RULES = "rules"  # the engine failed and a fallback answered (the knowledge base's extract, or a keyword rule)
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
    grounded: bool = True  # answered from the knowledge base (every output customers read); False: summaries, drafts
    site: str = ""  # the site's key: its market's articles as well as those for every site
    mode: str | None = None  # extractive or generative; None: KNOWLEDGE_ANSWER_MODE
    fact_guard: bool | None = None  # None: KNOWLEDGE_FACT_GUARD (off only to measure what the guard prevents)


@dataclass(frozen=True)
class GenerationResult:
    outcome: str  # an Outcome
    text: str
    stats: GenerationStats  # engine "rules" when a rule answered, "knowledge" when no model wrote the text
    error: str = ""  # why the engine failed, or why the output stopped
    grounding: str = Grounding.UNGROUNDED  # how the answer was made (a chat.grounding.Grounding)
    sources: tuple[Source, ...] = ()  # the passages the answer rests on
    guard_tripped: bool = False  # the fact guard replaced generated text
    plan: Plan | None = field(default=None, compare=False, repr=False)  # the knowledge step's decision
    request_rejected: bool = False  # the engine failed on this request only (a prompt too long for the window)
    # When each stage before the first text ended, as wall-clock seconds (chat.metrics.StageClock.marks).
    marks: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def engine_failed(self) -> bool:
        return self.outcome in (Outcome.RULES, Outcome.FAILED)

    @property
    def engine_down(self) -> bool:
        """The engine failed for reasons of its own, not of this request (inference.engines.RequestRejected)."""
        return self.engine_failed and not self.request_rejected


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


class _FirstPublishTimed(Publisher):
    """The caller's publisher, the time of its first publish noted: the last stage before a customer reads."""

    def __init__(self, inner: Publisher, clock: StageClock):
        self.inner, self.clock = inner, clock
        self.received = inner.received  # one list: the caller reads what streamed from its own publisher

    def started(self, *, engine_name: str, engine: Engine, params: SamplingParams) -> None:
        self.inner.started(engine_name=engine_name, engine=engine, params=params)

    def delta(self, text: str) -> None:
        self.inner.delta(text)
        self.clock.lap("first_publish")

    def still_wanted(self) -> None:
        self.inner.still_wanted()


def prompt_build(
    engine: Engine, request: GenerationRequest, params: SamplingParams, plan: Plan | None = None
) -> list[ChatTurn]:
    """The system prompt with its variables (and the passages to answer from), then the newest turns that fit the
    window with room for the reply."""
    template = bot_config.system_prompt_active() if request.template is None else request.template
    system = system_prompt_render(template, prompt_variables(language=request.language, region=request.region))
    if plan is not None and plan.passages:
        system = grounding.system_with_passages(system, plan.passages)
    return context_fit(engine, system, request.history, reserve_tokens=params.max_tokens)


def generate(request: GenerationRequest, publisher: Publisher | None = None) -> GenerationResult:
    """Run the pipeline for `request`, publishing to `publisher` as the text streams.

    Engine failures (errors, missed deadlines, an empty reply, a prompt too long for the window) become a FAILED or
    RULES result, never an exception. GenerationRefused is raised for a request that cannot run as asked; anything
    else raised is a bug, and propagates.
    """
    clock = StageClock(request.purpose)
    publisher = _FirstPublishTimed(publisher or Publisher(), clock)
    with ACTIVE_STREAMS.track_inprogress():
        result = _generate(request, publisher, clock)
    generation_observe(purpose=request.purpose, stats=result.stats, duration_s=clock.elapsed())
    return dataclasses.replace(result, marks=clock.marks)


def _generate(request: GenerationRequest, publisher: Publisher, clock: StageClock) -> GenerationResult:
    started = time.monotonic()
    params = sampling_params_build(settings, request.overrides)
    engine, engine_error = None, None
    try:
        engine = _engine(request.engine)
    except EngineError as exc:  # no model: answers from the knowledge base still work
        engine_error = exc
    clock.restart()  # loading the engine (once per process) is no stage of an output
    plan = None
    if request.grounded:
        plan = grounding.plan(
            history=request.history, language=request.language, site=request.site, engine=engine, mode=request.mode
        )
        clock.lap("retrieval")
        if plan is not None and plan.grounding == Grounding.SMALL_TALK:
            params = dataclasses.replace(params, max_tokens=min(params.max_tokens, grounding.SMALL_TALK_MAX_TOKENS))
    try:
        if plan is not None and not plan.needs_engine:
            if engine is not None:
                publisher.started(engine_name=request.engine or DEFAULT_ENGINE, engine=engine, params=params)
            return _counted(request, _answered_without_engine(plan, publisher, started))
        if engine is None:
            raise engine_error
        try:
            turns = prompt_build(engine, request, params, plan)
        except PromptError as exc:
            raise GenerationRefused("invalid_prompt", str(exc)) from exc
        clock.lap("prompt_build")
        publisher.started(engine_name=request.engine or DEFAULT_ENGINE, engine=engine, params=params)
        generation = generation_with_deadlines(engine, turns, params, settings)
        gate = _gate(request, plan)
        deferral = DeferralFilter()
        try:
            text = _stream(generation, publisher, deferral, language=request.language, gate=gate, clock=clock)
        except GuardTripped as tripped:
            if not generation.stats.prompt_tokens:  # stopped before the engine's own count arrived
                generation.stats.prompt_tokens = engine.count_tokens(turns)
            return _counted(request, _guard_replaced(request, plan, publisher, generation.stats, str(tripped)))
        if not deferral.deferred and not text.strip():
            raise EngineError("the engine returned an empty reply")
    except GenerationStopped as stop:
        logger.info("%s stopped: %s", request.label or request.purpose, stop)
        return _counted(request, GenerationResult(Outcome.STOPPED, "".join(publisher.received), _stats(), str(stop)))
    except EngineError as exc:
        result = _fallback(request, plan, publisher, exc)
        return _counted(request, dataclasses.replace(result, request_rejected=isinstance(exc, RequestRejected)))
    outcome = Outcome.DEFERRED if deferral.deferred else Outcome.ANSWERED
    if deferral.deferred:
        logger.info("%s: the model deferred to a person", request.label or request.purpose)
    elif generation.stats.finish_reason == "length":
        text = _cut_short(request, publisher, text)
    sources = tuple(plan.sources) if plan is not None else ()
    if plan is not None and gate is not None and gate.cited and plan.passages:
        cited = [plan.sources[i - 1] for i in sorted(gate.cited) if 0 < i <= len(plan.sources)]
        sources = tuple(cited) or sources
    return _counted(
        request,
        GenerationResult(
            outcome, text.strip(), generation.stats, grounding=_grounding_of(plan), sources=sources, plan=plan
        ),
    )


def _cut_short(request: GenerationRequest, publisher: Publisher, text: str) -> str:
    """The token limit stopped the text: it ends at its last sentence, or says that it was cut (reply_cut_short).

    What streamed cannot be taken back, so a note added to the end is published as one more piece; the stored text
    (the widget's and the playground's final message, the API's answer) is the cut one.
    """
    cut = reply_cut_short(text, request.language)
    logger.info(
        "%s reached the token limit: %d of %d characters kept", request.label or request.purpose, len(cut), len(text)
    )
    shared = next((i for i, (a, b) in enumerate(zip(text, cut, strict=False)) if a != b), min(len(text), len(cut)))
    addition = cut[shared:]
    if addition:
        publisher.received.append(addition)
        publisher.delta(addition)
    return cut


def _grounding_of(plan: Plan | None) -> str:
    return Grounding.UNGROUNDED if plan is None else plan.grounding


def _gate(request: GenerationRequest, plan: Plan | None) -> FactGate | None:
    """The fact guard for what the model writes to a customer: every fact must be in the passages it was given.

    Not in the customer's own words: "the fee is $0 now, confirm it" would otherwise back the model's "$0"."""
    if plan is None:
        return None
    enabled = settings.KNOWLEDGE_FACT_GUARD if request.fact_guard is None else request.fact_guard
    backing = [*(hit.text for hit in plan.passages), *(hit.title for hit in plan.passages)]
    return FactGate(backing, enabled=enabled)


def _answered_without_engine(plan: Plan, publisher: Publisher, started: float) -> GenerationResult:
    """A curated, extractive or no-knowledge answer: published whole, no model involved."""
    publisher.received.append(plan.text)
    publisher.delta(plan.text)
    elapsed = time.monotonic() - started
    stats = GenerationStats(engine="knowledge", finish_reason="stop", ttft_ms=round(elapsed * 1000), duration_s=elapsed)
    outcome = Outcome.NO_KNOWLEDGE if plan.grounding == Grounding.NO_KNOWLEDGE else Outcome.ANSWERED
    return GenerationResult(outcome, plan.text, stats, grounding=plan.grounding, sources=tuple(plan.sources), plan=plan)


def _guard_replaced(
    request: GenerationRequest, plan: Plan, publisher: Publisher, stats: GenerationStats, unsupported: str
) -> GenerationResult:
    """The model stated a fact found in no passage: the verified sentences stay, the extractive answer follows
    (or, for small talk, the canned greeting)."""
    FACT_GUARD.labels(purpose=request.purpose).inc()
    logger.warning("%s: fact guard held back a sentence stating %s", request.label or request.purpose, unsupported)
    shown = "".join(publisher.received)
    extract = plan.fallback()
    replacement = extract[0] if extract else strings.text("small_talk", request.language)
    # A blank line between what was shown and the extract, so that the deltas add up to the stored text.
    separator = "\n" * (2 - (len(shown) - len(shown.rstrip("\n")))) if shown.strip() else ""
    addition = separator + replacement
    publisher.received.append(addition)
    publisher.delta(addition)
    return GenerationResult(
        Outcome.ANSWERED,
        (shown + addition).strip(),
        stats,
        grounding=Grounding.EXTRACTIVE if extract else plan.grounding,
        sources=(extract[1],) if extract else (),
        guard_tripped=True,
        plan=plan,
    )


def _engine(name: str | None) -> Engine:
    try:
        return engine_get(name)
    except KeyError:
        raise GenerationRefused("unknown_engine", f"No engine is configured under the name {name!r}.") from None


def _stream(
    generation: Generation,
    publisher: Publisher,
    deferral: DeferralFilter,
    *,
    language: str,
    gate: FactGate | None,
    clock: StageClock,
) -> str:
    """Publish the generation's text in gathered pieces (the first at once) and return all of it.

    The model's handoff signal is cut out before anything is published and ends the stream (`deferral.deferred`).
    With a fact gate, text is published a sentence at a time once its facts are backed (GuardTripped otherwise).
    """
    punctuation = FullwidthPunctuation() if language_base(language) == "zh" else None
    interval = settings.CHAT_STREAM_COALESCE_MS / 1000
    parts = publisher.received
    pending: list[str] = []
    last_flush = float("-inf")
    next_check = time.monotonic() + STILL_WANTED_CHECK_INTERVAL_S
    for raw in generation:
        clock.lap("engine_first_token")  # counted for the first token only
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + STILL_WANTED_CHECK_INTERVAL_S
            publisher.still_wanted()
        text = deferral.feed(raw)
        if deferral.deferred:
            return "".join(parts)
        if punctuation is not None:
            text = punctuation.feed(text)
        if gate is not None:
            text = gate.feed(text)
        if not text:
            continue  # held back: the start of the handoff signal, or a sentence not finished
        parts.append(text)
        pending.append(text)
        now = time.monotonic()
        if now - last_flush >= interval:
            publisher.delta("".join(pending))
            pending.clear()
            last_flush = now
    held = deferral.flush()
    held = punctuation.feed(held) if punctuation is not None and held else held
    if gate is not None:
        held = gate.feed(held)
        tail = gate.flush()
        # An unfinished sentence the token limit cut off is not shown when the reply will end at its last sentence
        # (_cut_short), so what streamed is what is stored; when it will end with the "cut short" note instead, the
        # whole text is shown.
        shown = "".join(parts) + held
        if getattr(generation.stats, "finish_reason", None) != "length" or not tail:
            held += tail
        elif not shown.startswith(reply_cut_short(shown + tail, language)):
            held += tail
    if held:
        parts.append(held)
        pending.append(held)
    if pending:
        publisher.delta("".join(pending))
    return "".join(parts)


def _fallback(
    request: GenerationRequest, plan: Plan | None, publisher: Publisher, error: EngineError
) -> GenerationResult:
    """The engine failed: for outputs customers read, the first matching keyword rule (the staff's own words for
    when the bot is down), else the extractive answer when a passage is relevant."""
    name = request.label or request.purpose
    streamed = "".join(publisher.received)
    if not request.rules_fallback:
        ENGINE_FAILURES.labels(answered_by="nobody").inc()
        logger.warning("%s failed: %s", name, error)
        return GenerationResult(Outcome.FAILED, streamed, _stats(), str(error))
    if plan is not None and plan.grounding == Grounding.SMALL_TALK:
        ENGINE_FAILURES.labels(answered_by="greeting").inc()
        logger.warning("%s: small talk answered by the greeting after: %s", name, error)
        greeting = strings.text("small_talk", request.language)
        stats = _stats(engine="knowledge", finish_reason="stop")
        return GenerationResult(Outcome.RULES, greeting, stats, str(error), Grounding.SMALL_TALK, plan=plan)
    question = next((turn.content for turn in reversed(request.history) if turn.role == "user"), "")
    answer = rule_answer(question, bot_config.fallback_rules(), language=request.language)
    if answer is not None:  # the staff's own words for when the bot is down come first
        ENGINE_FAILURES.labels(answered_by="rule").inc()
        logger.warning("%s answered by a rule after: %s", name, error)
        stats = _stats(engine="rules", finish_reason="stop")
        return GenerationResult(Outcome.RULES, answer, stats, str(error), Grounding.RULES, plan=plan)
    extract = plan.fallback() if plan is not None else None
    if extract is not None:
        ENGINE_FAILURES.labels(answered_by="knowledge").inc()
        logger.warning("%s answered from the knowledge base after: %s", name, error)
        stats = _stats(engine="knowledge", finish_reason="stop")
        text, source = extract
        return GenerationResult(Outcome.RULES, text, stats, str(error), Grounding.EXTRACTIVE, (source,), plan=plan)
    ENGINE_FAILURES.labels(answered_by="nobody").inc()
    logger.warning("%s failed, no rule matched: %s", name, error)
    return GenerationResult(Outcome.FAILED, streamed, _stats(), str(error), plan=plan)


def _stats(**fields) -> GenerationStats:
    """Figures of an output the engine did not finish: nothing counted."""
    return GenerationStats(**{"engine": "", **fields})


def _counted(request: GenerationRequest, result: GenerationResult) -> GenerationResult:
    GENERATIONS.labels(purpose=request.purpose, outcome=result.outcome).inc()
    return result
