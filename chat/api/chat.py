"""POST /api/v1/chat: the bot for integrations, in the request shape integrators already use.

A `session_id` is a conversation (per API key): its history is the prompt's context and the handoff rules apply.
The turn goes through the same pipeline as a widget message (stored, answered by a Celery worker); this request
listens on the conversation's group and relays the reply, as JSON or as Server-Sent Events.
"""

import time
from collections.abc import AsyncIterator
from contextlib import aclosing

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router

from chat import selectors, services
from chat.api.auth import chat_auth
from chat.api.errors import ApiError
from chat.api.relay import SSE_HEADERS, GroupSubscription, sse
from chat.api.schemas import ChatIn, ChatOut, ErrorOut
from chat.metrics import RATE_LIMITED
from chat.models import ApiKey, Conversation

router = Router(tags=["bot"])

# Seconds without news before the database is asked how the turn stands, and between SSE keep-alive comments.
POLL_S = 2.0
KEEPALIVE_S = 15.0
SAMPLING_FIELDS = {"max_tokens", "temperature", "top_p", "frequency_penalty"}
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 409: ErrorOut, 413: ErrorOut, 429: ErrorOut, 503: ErrorOut}


def _turn_limit_s() -> float:
    """The longest a turn can take: the wait for a first token, the generation, and queueing to spare."""
    return settings.INFERENCE_FIRST_TOKEN_TIMEOUT + settings.INFERENCE_GENERATION_TIMEOUT + 60


def _outcome_body(session_id: str, conversation: Conversation, outcome: dict) -> dict:
    reply = outcome["reply"] if outcome["status"] == "answered" else None
    body = {
        "session_id": session_id,
        "conversation_id": str(conversation.id),
        "status": outcome["status"],
        "conversation_status": outcome["conversation_status"],
        "response": reply.content if reply else None,
        "notice": outcome.get("notice"),
        "message_seq": outcome["message_seq"],
        "reply_seq": reply.seq if reply else None,
        "engine": reply.engine if reply else None,
        "usage": None,
        "ttft_ms": reply.ttft_ms if reply else None,
        "tokens_per_s": reply.tokens_per_s if reply else None,
        "grounding": reply.grounding if reply else None,
        # The help-center articles the answer rests on.
        "sources": [{k: s.get(k) for k in ("article_id", "slug", "title", "url", "score")} for s in reply.sources]
        if reply
        else [],
        "handoff_reason": outcome.get("handoff_reason"),
    }
    if reply is not None:
        body["usage"] = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
    return body


class ApiTurn:
    """One customer turn through the API: post it, then follow the conversation's events until it is settled."""

    def __init__(self, key: ApiKey, body: ChatIn):
        self.key, self.body = key, body
        self.conversation: Conversation | None = None
        self.lock_key = ""

    async def open(self) -> None:
        """Find or open the session's conversation and hold the session (one turn at a time)."""
        body = self.body
        self.conversation = await database_sync_to_async(services.conversation_for_api_session)(
            api_key=self.key,
            session_id=body.session_id,
            language=body.language,
            region=body.region,
            customer_name=body.customer_name,
            customer_email=body.customer_email,
        )
        self.lock_key = f"api:session:{self.conversation.id}"
        if not await database_sync_to_async(cache.add)(self.lock_key, 1, int(_turn_limit_s())):
            raise ApiError(409, "session_busy", "This session is still waiting for a reply; send one turn at a time.")

    async def close(self) -> None:
        if self.lock_key:
            await database_sync_to_async(cache.delete)(self.lock_key)
            self.lock_key = ""

    async def events(self) -> AsyncIterator[tuple[str, dict]]:
        """("delta", {"text"}) while the bot streams, then ("done", ChatOut); ApiError if the turn is refused."""
        body, conversation = self.body, self.conversation
        overrides = body.model_dump(include=SAMPLING_FIELDS, exclude_none=True)
        async with GroupSubscription(conversation.group_name) as subscription:
            try:
                message, _created = await database_sync_to_async(services.message_post_customer)(
                    conversation_id=conversation.id, content=body.user_input, overrides=overrides
                )
            except services.MessageRejected as exc:
                if exc.code == "rate_limited":
                    RATE_LIMITED.labels(channel="api", limit="messages").inc()
                status = {"message_too_long": 413, "rate_limited": 429}.get(exc.code, 400)
                extra = {"retry_after": exc.retry_after} if exc.retry_after else {}
                raise ApiError(status, exc.code, str(exc), **extra) from exc
            outcome = await self._outcome(message.id)
            reply_seq = None
            deadline = time.monotonic() + _turn_limit_s()
            quiet_since = time.monotonic()
            while outcome is None:
                event = await subscription.receive(POLL_S)
                if event is None:
                    outcome = await self._outcome(message.id)
                    if outcome is None and time.monotonic() > deadline:
                        raise ApiError(503, "reply_timeout", "The bot did not answer in time; your message is stored.")
                    if time.monotonic() - quiet_since >= KEEPALIVE_S:
                        quiet_since = time.monotonic()
                        yield "keepalive", {}
                    continue
                quiet_since = time.monotonic()
                kind = event.get("type")
                if (
                    kind == "chat.message"
                    and event["message"]["role"] == "bot"
                    and event["message"]["seq"] > message.seq
                ):
                    reply_seq = event["message"]["seq"]
                elif kind == "chat.delta" and reply_seq is not None and event.get("seq") == reply_seq:
                    yield "delta", {"text": event["text"]}
                elif kind in ("chat.done", "chat.status", "chat.withdrawn"):
                    outcome = await self._outcome(message.id)
        if outcome["status"] == "failed":
            raise ApiError(503, "bot_unavailable", "The bot cannot answer right now; your message is stored.")
        yield "done", _outcome_body(body.session_id, conversation, outcome)

    async def _outcome(self, message_id: int) -> dict | None:
        return await database_sync_to_async(selectors.turn_outcome)(customer_message_id=message_id)


async def _stream(turn: ApiTurn) -> AsyncIterator[bytes]:
    try:
        yield sse("start", {"session_id": turn.body.session_id, "conversation_id": str(turn.conversation.id)})
        async with aclosing(turn.events()) as events:
            async for kind, data in events:
                yield b": keep-alive\n\n" if kind == "keepalive" else sse(kind, data)
    except ApiError as exc:
        yield sse("error", {"error": {"code": exc.code, "message": exc.message, **exc.extra}})
    finally:  # also when the client went away: the reply is still generated and stored for the session
        await turn.close()


@router.post(
    "/chat",
    auth=chat_auth,
    response={200: ChatOut, **ERRORS},
    summary="Send a customer message and get the bot's reply",
    openapi_extra={"responses": {200: {"content": {"text/event-stream": {}}}}},
)
async def chat(request: HttpRequest, payload: ChatIn):
    """The bot's answer to `user_input` in the conversation `session_id` stands for.

    With `"stream": true` the answer comes as Server-Sent Events: `start`, `delta` ({"text"}) as the bot writes,
    then `done` (the same body as without streaming) or `error`. A conversation with the team (handed off) answers
    `"status": "handed_off"` and the customer's message waits for an agent.
    """
    turn = ApiTurn(request.auth, payload)
    await turn.open()
    if payload.stream:
        return StreamingHttpResponse(_stream(turn), content_type="text/event-stream", headers=SSE_HEADERS)
    try:
        async with aclosing(turn.events()) as events:
            async for kind, data in events:
                if kind == "done":
                    return data
        raise AssertionError("the turn ended without an outcome")
    finally:
        await turn.close()
