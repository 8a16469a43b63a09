"""The staff playground: try the bot with other sampling parameters, another engine or a draft system prompt.

A test chat goes through the customers' pipeline (the same worker, engine, prompt building, context trimming,
handoff signal and rule fallback: chat.completions) but is not a conversation: nothing reaches the agents' queue
or the reports. The page keeps the transcript and exports it as JSON.
"""

import json
from contextlib import aclosing
from functools import wraps

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
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
from chat.http import json_error
from inference import selectors as bot_config
from inference import services as bot_services
from inference.engines import DEFAULT_ENGINE, EngineSettings, engine_names
from inference.params import BOUNDS
from inference.prompt import PROMPT_VARIABLES, PromptError, prompt_variables_check


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


def _is_staff(user) -> bool:
    return user.is_active and user.is_staff


# The page: anyone else goes to the sign-in page (the project's, not the admin's).
staff_page = user_passes_test(_is_staff, login_url=settings.LOGIN_URL)


def _refusal(user) -> JsonResponse:
    if user.is_authenticated:
        return json_error(403, "forbidden", "The playground is for staff.")
    return json_error(401, "login_required", "Sign in again.")


def staff_endpoint(view):
    """The page's JSON endpoints: a 401 or 403 in the error format instead of a redirect to the sign-in page."""
    if iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapper(request, *args, **kwargs):
            user = await request.auser()
            return await view(request, *args, **kwargs) if _is_staff(user) else _refusal(user)

        return async_wrapper

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        return view(request, *args, **kwargs) if _is_staff(request.user) else _refusal(request.user)

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
    prompt = bot_config.system_prompt_active_version()
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
        "can_publish": request.user.has_perm("inference.add_systemprompt"),
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
    if not request.user.has_perm("inference.add_systemprompt"):
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
