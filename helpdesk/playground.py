"""The staff playground: try the bot with other sampling parameters, another engine or a draft system prompt.

A test chat goes through the customers' pipeline (the same worker, engine, prompt building, context trimming,
handoff signal and rule fallback: chat.completions) but is not a conversation: nothing reaches the agents' queue
or the reports. The page keeps the transcript and exports it as JSON.

The retrieval test shows the pipeline's knowledge step alone (chat.grounding.plan): the passages found with their
scores against the threshold, and how the question would be answered, without running a model.
"""

import json
import logging
from contextlib import aclosing
from functools import wraps
from typing import Literal

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from ninja import Field
from pydantic import ValidationError as SchemaError

from chat.api.errors import ApiError
from chat.api.relay import SSE_HEADERS, completion_events, sse
from chat.api.schemas import RequestBody
from chat.completions import completion_job_new
from chat.grounding import MODES, Grounding, Plan, plan
from chat.http import json_error
from helpdesk.roles import PLAYGROUND_PERMISSION
from helpdesk.selectors import sites_for_choice
from inference import selectors as bot_config
from inference import services as bot_services
from inference.engines import DEFAULT_ENGINE, Engine, EngineError, EngineSettings, engine_get, engine_names
from inference.params import BOUNDS
from inference.prompt import PROMPT_VARIABLES, PromptError, prompt_variables_check
from inference.types import ChatTurn

logger = logging.getLogger(__name__)


class PlaygroundTurn(RequestBody):
    role: str = Field(..., pattern="^(user|assistant)$")
    content: str = Field(..., min_length=1, max_length=100_000)


class PlaygroundParams(RequestBody):
    temperature: float = Field(..., ge=0, le=2)
    top_p: float = Field(..., gt=0, le=1)
    max_tokens: int = Field(..., ge=1, le=100_000)
    frequency_penalty: float = Field(..., ge=-2, le=2)


class PlaygroundIn(RequestBody):
    messages: list[PlaygroundTurn] = Field(..., min_length=1, max_length=200)
    engine: str = DEFAULT_ENGINE
    system_prompt: str | None = Field(None, max_length=20_000, description="A draft to try; None: the active one.")
    params: PlaygroundParams
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    region: str = Field("", max_length=64)
    # How the knowledge base answers: auto (KNOWLEDGE_ANSWER_MODE), or try extractive or generative.
    mode: Literal["auto", "extractive", "generative"] = "auto"


# Who may see the active system prompt, and who may publish one (a new version, as the admin's save does).
PROMPT_VIEW_PERMISSION = "inference.view_systemprompt"
PROMPT_PUBLISH_PERMISSION = "inference.add_systemprompt"


def _may_use(user) -> bool:
    # A permission, not any staff account: managers and admins have it through their groups, an agent only if
    # granted (it runs the model at will and shows how the bot is set up).
    return user.is_active and user.has_perm(PLAYGROUND_PERMISSION)


def staff_page(view):
    """The page: anonymous visitors go to the sign-in page (the project's, not the admin's); signed-in users
    without the permission get 403."""
    return login_required(permission_required(PLAYGROUND_PERMISSION, raise_exception=True)(view))


def _refusal(user) -> JsonResponse:
    if user.is_authenticated:
        return json_error(403, "forbidden", "The playground needs the permission to use it.")
    return json_error(401, "login_required", "Sign in again.")


def staff_endpoint(view):
    """The page's JSON endpoints: a 401 or 403 in the error format instead of a redirect to the sign-in page."""
    if iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapper(request, *args, **kwargs):
            user = await request.auser()
            allowed = await sync_to_async(_may_use)(user)
            return await view(request, *args, **kwargs) if allowed else _refusal(user)

        return async_wrapper

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        return view(request, *args, **kwargs) if _may_use(request.user) else _refusal(request.user)

    return wrapper


def engines_describe() -> list[dict]:
    """The engines staff can choose, with adapter and model as configured (nothing is loaded to tell)."""
    described = []
    for name in engine_names():
        config = EngineSettings(settings, {} if name == DEFAULT_ENGINE else settings.INFERENCE_ENGINES[name])
        model = config.INFERENCE_SERVED_MODEL_NAME or config.INFERENCE_MODEL or "bundled SmolLM2-135M-Instruct"
        described.append({"name": name, "adapter": config.INFERENCE_ENGINE, "model": model})
    return described


@require_GET
@staff_page
def playground(request: HttpRequest) -> HttpResponse:
    """The playground page."""
    # The active prompt only for those who may view prompts: the editor is hidden from the others, who try the bot
    # as it is.
    can_view_prompt = request.user.has_perm(PROMPT_VIEW_PERMISSION)
    prompt = bot_config.system_prompt_active_version() if can_view_prompt else {"template": "", "version": None}
    context = {
        "engines": engines_describe(),
        "defaults": {
            "temperature": settings.INFERENCE_TEMPERATURE,
            "top_p": settings.INFERENCE_TOP_P,
            "max_tokens": settings.INFERENCE_MAX_TOKENS,
            "frequency_penalty": settings.INFERENCE_FREQUENCY_PENALTY,
        },
        "bounds": {**BOUNDS, "max_tokens": (1, settings.INFERENCE_MAX_TOKENS_LIMIT)},
        "prompt": {"template": prompt["template"], "version": prompt["version"]},
        "variables": PROMPT_VARIABLES,
        "can_view_prompt": can_view_prompt,
        "can_publish": can_view_prompt and request.user.has_perm(PROMPT_PUBLISH_PERMISSION),
        "sites": sites_for_choice(),
        "retrieval": {"question_max": RETRIEVAL_QUESTION_MAX, "previous_max": RETRIEVAL_PREVIOUS_MAX},
    }
    return render(request, "helpdesk/playground.html", {"config": context})


@require_POST
@staff_endpoint
async def playground_generate(request: HttpRequest) -> HttpResponse:
    """Run one test turn; Server-Sent Events `start`, `delta`, then `done` (text, figures) or `error`."""
    try:
        payload = PlaygroundIn.model_validate(json.loads(request.body or b"null"))
    except (ValueError, SchemaError) as exc:
        return json_error(400, "invalid_request", f"Invalid playground request: {exc}"[:2000])
    if payload.engine not in engine_names():
        return json_error(400, "unknown_engine", f"No engine named {payload.engine!r}.")
    if payload.system_prompt is not None:
        if not await sync_to_async((await request.auser()).has_perm)(PROMPT_VIEW_PERMISSION):
            return json_error(403, "forbidden", "Trying a draft prompt needs the permission to view prompts.")
        try:
            prompt_variables_check(payload.system_prompt)
        except PromptError as exc:
            return json_error(400, "invalid_prompt", str(exc))
    job = completion_job_new(
        turns=[[turn.role, turn.content] for turn in payload.messages],
        overrides=payload.params.model_dump(),
        engine=payload.engine,
        system_prompt=payload.system_prompt,
        language=payload.language,
        region=payload.region,
        mode=None if payload.mode == "auto" else payload.mode,
    )
    return StreamingHttpResponse(_events(job), content_type="text/event-stream", headers=SSE_HEADERS)


async def _events(job):
    try:
        async with aclosing(completion_events(job)) as events:
            async for event in events:
                # A copy: completion_events reads the event's type after the yield.
                data = {key: value for key, value in event.items() if key not in ("type", "job")}
                yield sse(event["type"].removeprefix("completion."), data)
    except ApiError as exc:
        yield sse("error", {"code": exc.code, "message": exc.message})


@require_POST
@staff_endpoint
def playground_prompt_publish(request: HttpRequest) -> JsonResponse:
    """Save the draft system prompt as the next version, which the bot uses from now on."""
    if not (request.user.has_perm(PROMPT_VIEW_PERMISSION) and request.user.has_perm(PROMPT_PUBLISH_PERMISSION)):
        return json_error(403, "forbidden", "You may try prompts but not save them.")
    try:
        data = json.loads(request.body or b"null")
        template, note = data["template"], data.get("note", "")
        if not isinstance(template, str) or not isinstance(note, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return json_error(400, "invalid_request", 'Send {"template": "...", "note": "..."}.')
    try:
        prompt = bot_services.system_prompt_publish(template=template, note=note[:200], created_by=request.user)
    except ValidationError as exc:
        return json_error(400, "invalid_prompt", " ".join(exc.messages))
    return JsonResponse({"version": prompt.version, "note": prompt.note}, status=201)


# --- The retrieval test ---------------------------------------------------------------------------------------------

RETRIEVAL_QUESTION_MAX = 2000  # characters of the question, and of each previous turn
RETRIEVAL_PREVIOUS_MAX = 20  # previous customer turns
SNIPPET_CHARS = 280
OUTCOME_LABELS = {
    "curated": "curated answer",
    "extractive": "extractive",
    "generative": "generative",
    "small_talk": "small talk",
    "no_knowledge": "no knowledge → handed off",
    "customer_specific": "customer-specific → handed off",
}


class RetrievalTestIn(RequestBody):
    question: str
    language: str = Field("en", pattern="^(en|zh)$")
    site: str = Field("", max_length=32)
    mode: str = Field("auto", pattern="^(auto|extractive|generative)$")
    previous: list[str] = Field(default_factory=list)
    engine: str = DEFAULT_ENGINE


class RetrievalTestInvalid(ValueError):
    """A retrieval test that cannot run as asked; the message says why, for the person who asked."""


def _answer_engine(name: str, requested: str) -> tuple[Engine | None, str]:
    """The engine `auto` decides the mode by, and why the mode is what it is. Loads the engine only when needed."""
    if requested in MODES:
        return None, "as chosen"
    if settings.KNOWLEDGE_ANSWER_MODE in MODES:
        return None, "KNOWLEDGE_ANSWER_MODE"
    try:
        engine = engine_get(name)
    except EngineError:
        # The error names files and servers: it goes to the log, the page says only what happened.
        logger.warning("playground: engine %s could not be loaded", name, exc_info=True)
        return None, "auto: no model could be loaded (the error is logged)"
    size = "trusted with facts" if engine.trusted_with_facts else "a small model, not trusted with facts"
    return engine, f"auto: {engine.model_name} is {size}"


def _outcome(found: Plan) -> str:
    if found.grounding == Grounding.NO_KNOWLEDGE and found.retrieval is None:
        return "customer_specific"  # a question about the customer's own order: the knowledge base is not searched
    return found.grounding


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def retrieval_explain(
    *,
    question: str,
    previous: list[str],
    language: str,
    site: str = "",
    mode: str = "auto",
    engine: str = DEFAULT_ENGINE,
) -> dict:
    """What the knowledge step (chat.grounding.plan) makes of a customer's question: the passages with their
    scores and the threshold, how it would be answered and, when no model is needed, the answer. Runs no model;
    `auto` may load the engine to know its size. Raises RetrievalTestInvalid for a question that cannot be asked."""
    question = question.strip()
    previous = [turn.strip() for turn in previous if turn.strip()]
    if not question:
        raise RetrievalTestInvalid("Write a question to search for.")
    if len(question) > RETRIEVAL_QUESTION_MAX:
        raise RetrievalTestInvalid(
            f"The question is {len(question):,} characters long; the limit is {RETRIEVAL_QUESTION_MAX:,}."
        )
    if len(previous) > RETRIEVAL_PREVIOUS_MAX:
        raise RetrievalTestInvalid(f"Give at most {RETRIEVAL_PREVIOUS_MAX} previous turns (one per line).")
    if any(len(turn) > RETRIEVAL_QUESTION_MAX for turn in previous):
        raise RetrievalTestInvalid(f"A previous turn is longer than {RETRIEVAL_QUESTION_MAX:,} characters.")
    if site and site not in {s["key"] for s in sites_for_choice()}:
        raise RetrievalTestInvalid(f"No site has the key {site!r}.")
    if engine not in engine_names():
        raise RetrievalTestInvalid(f"No engine named {engine!r}.")
    model, mode_reason = _answer_engine(engine, mode)
    history = [ChatTurn("user", turn) for turn in [*previous, question]]
    requested = None if mode == "auto" else mode
    found = plan(history=history, language=language, site=site, engine=model, mode=requested, counted=False)
    retrieval = found.retrieval
    threshold = retrieval.threshold if retrieval is not None else settings.KNOWLEDGE_MIN_SCORE
    used = {source.passage_id for source in found.sources} | {hit.passage_id for hit in found.passages}
    outcome = _outcome(found)
    return {
        "question": question,
        "context": list(found.context),
        "language_requested": language,
        "language": retrieval.language if retrieval is not None else found.language,
        "searched": retrieval is not None,
        "query_terms": list(retrieval.query_terms) if retrieval is not None else [],
        "threshold": threshold,
        "passages": [
            {
                "passage_id": hit.passage_id,
                "article_id": hit.article_id,
                "slug": hit.slug,
                "title": hit.title,
                "url": hit.url,
                "heading": hit.heading,
                "snippet": _clip(hit.text, SNIPPET_CHARS),
                "score": hit.score,
                "lexical": hit.lexical,
                "semantic": hit.semantic,
                "is_faq": hit.is_faq,
                "relevant": hit.score >= threshold,
                "used": hit.passage_id in used,
            }
            for hit in (retrieval.hits if retrieval is not None else [])
        ],
        "grounding": found.grounding,
        "outcome": outcome,
        "outcome_label": OUTCOME_LABELS.get(outcome, outcome),
        "handed_off": found.grounding == Grounding.NO_KNOWLEDGE,
        "mode": found.mode,
        "mode_requested": mode,
        "mode_reason": mode_reason,
        "needs_model": found.needs_engine,
        "answer": found.text,
        "sources": [source.as_dict() for source in found.sources],
        "note": _note(found, outcome),
    }


def _note(found: Plan, outcome: str) -> str:
    if outcome == "generative":
        return (
            f"The model writes the answer from the {len(found.passages)} passage(s) marked “to the model”, citing "
            "them; a sentence whose facts are in no passage is replaced by the extractive answer. The chat panel "
            "of the playground runs it."
        )
    if outcome == "small_talk" and found.needs_engine:
        return "The model answers small talk, without the knowledge base and fact-guarded. The chat panel runs it."
    if outcome == "customer_specific":
        return "A question about the customer's own order or account: the knowledge base is not searched."
    if outcome == "small_talk":
        return "Small talk: the knowledge base is not searched; the helpdesk's own words answer."
    if outcome == "no_knowledge":
        return "No passage reaches the threshold: the bot says it cannot confirm, and a person takes over."
    return ""


@require_POST
@staff_endpoint
def playground_retrieval(request: HttpRequest) -> JsonResponse:
    """Test the knowledge step on a question: the passages, the threshold and the answer mode, as JSON."""
    try:
        payload = RetrievalTestIn.model_validate(json.loads(request.body or b"null"))
    except (ValueError, SchemaError) as exc:
        return json_error(400, "invalid_request", f"Invalid retrieval test: {exc}"[:2000])
    try:
        result = retrieval_explain(**payload.model_dump())
    except RetrievalTestInvalid as exc:
        return json_error(400, "invalid_question", str(exc))
    return JsonResponse(result)
