"""The OpenAI-compatible endpoints (/v1/models, /v1/chat/completions): any OpenAI SDK can talk to the bot.

Requests keep OpenAI's shape; the bot's own system prompt, context trimming, handoff signal and rule fallback
apply (the client's system messages are not used: the helpdesk's prompt decides how the bot behaves). Nothing is
stored: the caller brings the history. A reply the model hands to a person says so in its text and in the extra
field `helpdesk.handoff`. Answers are grounded like every bot output: `helpdesk.sources` lists the help-center
articles an answer rests on, `helpdesk.grounding` how it was made (extractive, generative, curated, ...), and a
question nothing in the knowledge base answers gets `helpdesk.handoff_reason: "no_knowledge"`.
"""

import time
from collections.abc import AsyncIterator
from contextlib import aclosing

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router

from chat import strings
from chat.api.auth import chat_auth
from chat.api.errors import ApiError
from chat.api.relay import SSE_HEADERS, completion_events, sse
from chat.api.schemas import ChatCompletionIn, ErrorOut
from chat.completions import CompletionJob, completion_job_new
from inference.engines import engine_names
from inference.language import language_guess

router = Router(tags=["openai-compatible"])

# 413: a body over REQUEST_BODY_LIMIT_API, refused before it is read.
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut, 429: ErrorOut, 503: ErrorOut}


def _job(payload: ChatCompletionIn) -> CompletionJob:
    if payload.model not in engine_names():
        raise ApiError(404, "model_not_found", f"No model {payload.model!r}; available: {', '.join(engine_names())}.")
    turns = [[m.role, m.text] for m in payload.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "invalid_request", "The last message must be the customer's (role user).")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(turns[-1][1]) > limit:
        raise ApiError(413, "message_too_long", f"The last message is {len(turns[-1][1])} characters; limit {limit}.")
    overrides = {
        "max_tokens": payload.max_completion_tokens or payload.max_tokens,
        "temperature": payload.temperature,
        "top_p": payload.top_p,
        "frequency_penalty": payload.frequency_penalty,
    }
    return completion_job_new(
        turns=turns,
        overrides={k: v for k, v in overrides.items() if v is not None},
        engine=payload.model,
        language=language_guess(turns[-1][1]),
    )


# What a client is told of a failure the worker reports: fixed words per code. The worker's own message may name the
# configuration (the active prompt's error, the engine's server); the pipeline logs it for the staff.
CLIENT_MESSAGES = {
    "invalid_prompt": "The bot's system prompt cannot be used right now.",
    "unknown_engine": "There is no model of this name.",
}


def _error(event: dict) -> ApiError:
    status = 400 if event["code"] in ("invalid_prompt", "unknown_engine") else 503
    return ApiError(status, event["code"], CLIENT_MESSAGES.get(event["code"], "The bot cannot answer right now."))


def _content(done: dict, language: str) -> str:
    if not done["handoff"]:
        return done["text"]
    if done.get("handoff_reason") == "no_knowledge":
        return f"{done['text']} {strings.text('api_handoff', language)}"
    return strings.text("api_handoff", language)


def _unstreamed(done: dict, language: str) -> str:
    """What the deltas did not carry: a fallback's text, or the handoff notice."""
    if not done["handoff"]:
        return "" if done["streamed"] else done["text"]
    notice = strings.text("api_handoff", language)
    return f" {notice}" if done.get("handoff_reason") == "no_knowledge" else notice


def _finish_reason(done: dict) -> str:
    return "length" if done["finish_reason"] == "length" else "stop"


def _usage(done: dict) -> dict:
    stats = done["stats"]
    return {
        "prompt_tokens": stats["prompt_tokens"],
        "completion_tokens": stats["completion_tokens"],
        "total_tokens": stats["prompt_tokens"] + stats["completion_tokens"],
    }


def _extra(done: dict) -> dict:
    stats = done["stats"]
    return {
        "handoff": done["handoff"],
        "handoff_reason": done.get("handoff_reason"),
        "grounding": done.get("grounding", ""),
        "sources": done.get("sources", []),
        **{k: stats[k] for k in ("engine", "ttft_ms", "tokens_per_s")},
    }


@router.get(
    "/models",
    auth=chat_auth,
    response={200: dict, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut},
    summary="The models (engines) the bot can answer with",
)
def models(request: HttpRequest):
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 0, "owned_by": "helpdesk"} for name in engine_names()],
    }


@router.post(
    "/chat/completions",
    auth=chat_auth,
    response={200: dict, **ERRORS},
    summary="OpenAI Chat Completions, answered by the helpdesk bot",
    openapi_extra={"responses": {200: {"content": {"text/event-stream": {}}}}},
)
async def chat_completions(request: HttpRequest, payload: ChatCompletionIn):
    """A Chat Completions request; `stream: true` answers with `chat.completion.chunk` events and `[DONE]`."""
    job = _job(payload)
    head = {"id": f"chatcmpl-{job.id}", "created": int(time.time()), "model": payload.model}
    if payload.stream:
        include_usage = bool(payload.stream_options and payload.stream_options.include_usage)
        return StreamingHttpResponse(
            _chunks(job, head, include_usage), content_type="text/event-stream", headers=SSE_HEADERS
        )
    async with aclosing(completion_events(job)) as events:
        async for event in events:
            if event["type"] == "completion.error":
                raise _error(event)
            if event["type"] != "completion.done":
                continue
            return {
                **head,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": _content(event, job.language)},
                        "finish_reason": _finish_reason(event),
                        "logprobs": None,
                    }
                ],
                "usage": _usage(event),
                "system_fingerprint": None,
                "helpdesk": _extra(event),
            }
    raise ApiError(503, "reply_timeout", "The bot did not answer.")


async def _chunks(job: CompletionJob, head: dict, include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return sse(None, {**head, "object": "chat.completion.chunk", "choices": [choice], **extra})

    try:
        yield chunk({"role": "assistant", "content": ""})
        async with aclosing(completion_events(job)) as events:
            async for event in events:
                kind = event["type"]
                if kind == "completion.delta":
                    yield chunk({"content": event["text"]})
                elif kind == "completion.error":
                    raise _error(event)
                elif kind == "completion.done":
                    if rest := _unstreamed(event, job.language):
                        yield chunk({"content": rest})
                    yield chunk({}, _finish_reason(event), helpdesk=_extra(event))
                    if include_usage:
                        yield sse(
                            None, {**head, "object": "chat.completion.chunk", "choices": [], "usage": _usage(event)}
                        )
    except ApiError as exc:
        # OpenAI's streaming error shape: the SDKs raise it as an APIError.
        yield sse(None, {"error": {"code": exc.code, "message": exc.message, "type": "server_error"}})
    yield sse(None, "[DONE]")
