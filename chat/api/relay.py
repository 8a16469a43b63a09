"""Waiting on a channel-layer group from an HTTP request, to relay a reply generated elsewhere (a Celery worker).

Subscribe first, then start the work, so no event can be missed. Events are news only: callers look at the database
when nothing arrives for a while, the way a reconnecting widget resumes.
"""

import asyncio
import json
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat.api.errors import ApiError
from chat.completions import CompletionJob, completion_cancel, completion_enqueue, completion_group


class GroupSubscription:
    """`async with GroupSubscription(group) as sub: event = await sub.receive(timeout)`."""

    def __init__(self, group: str):
        self.group = group
        self.layer = get_channel_layer()
        self.channel: str | None = None

    async def __aenter__(self) -> "GroupSubscription":
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.layer.group_discard(self.group, self.channel)

    async def receive(self, timeout: float) -> dict | None:
        """The next event, or None if none came within `timeout` seconds."""
        try:
            return await asyncio.wait_for(self.layer.receive(self.channel), timeout)
        except TimeoutError:
            return None


async def completion_events(job: CompletionJob) -> AsyncIterator[dict]:
    """The job's events (start, delta..., then done or error), from whichever worker runs it."""
    finished = False
    async with GroupSubscription(completion_group(job.id)) as subscription:
        try:
            await database_sync_to_async(completion_enqueue)(job)
        except Exception as exc:  # broker down: kombu and redis raise assorted errors
            raise ApiError(503, "generation_unavailable", "The bot cannot answer right now.") from exc
        try:
            started = False
            while not finished:
                wait = settings.INFERENCE_GENERATION_TIMEOUT if started else settings.INFERENCE_FIRST_TOKEN_TIMEOUT + 30
                event = await subscription.receive(wait)
                if event is None:
                    raise ApiError(503, "reply_timeout", "The bot did not answer in time.")
                started = True
                finished = event["type"] in ("completion.done", "completion.error")
                yield event
        finally:
            if not finished:  # the client left (or timed out): free the engine for others
                completion_cancel(job.id)


def sse(event: str | None, data) -> bytes:
    """One Server-Sent Event: `event:` (if named) and `data:` as JSON (or as is, for a plain string)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx must not buffer the stream
