"""Per-frame-type rate limits for both websockets (the customer's and the console's).

Every frame a socket receives is counted against the limit of its type; types the table does not name (unknown
types, malformed and binary frames) share the `*` limit, so nothing a client can send escapes a limit. The counts
are kept per socket in the process that holds it: a frame costs no round trip, and the sockets one address may
open are capped too (chat.socket_guards), which bounds what one address can send in all.

A refused frame gets {"type": "error", "code": "rate_limited", "for": type, "retry_after": seconds}. A client that
goes on sending past its limits is not slowed by the errors, so after CLOSE_AFTER_REFUSALS refusals within
REFUSALS_WINDOW_S the socket is closed with 1008 (policy violation).
"""

import json
import math
import time
from collections import deque
from dataclasses import dataclass

from django.conf import settings

from chat.metrics import RATE_LIMITED


def frame_decode(text_data: str | None) -> tuple[dict | None, tuple[str, str] | None]:
    """A socket's incoming frame as a JSON object, or None and the (code, message) of the error frame to answer.

    Oversized frames are refused before parsing; a message's own length limit is checked by its service.
    """
    if text_data is None:
        return None, ("invalid_frame", "Frames must be JSON text, not binary.")
    if len(text_data) > settings.CHAT_MAX_MESSAGE_CHARS * 6 + 1024:
        return None, ("frame_too_large", "The frame is too large.")
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None, ("invalid_json", "The frame is not valid JSON.")
    if not isinstance(frame, dict):
        return None, ("invalid_frame", "A frame must be a JSON object with a type.")
    return frame, None


@dataclass(frozen=True)
class FrameLimit:
    count: int  # frames allowed ...
    per_s: float  # ... within any window of this many seconds


OTHER = "*"

# The customer's widget: typing at most every 3 s while the customer types, a ping every 25 s, a handful of
# messages a minute (the site's own per-minute limit applies behind this one). Contact details, ratings and the end
# of the chat are single actions: a few a minute is generous.
CUSTOMER_FRAME_LIMITS = {
    "hello": FrameLimit(5, 60),
    "ping": FrameLimit(10, 60),
    "message": FrameLimit(30, 60),
    "typing": FrameLimit(5, 5),
    "contact": FrameLimit(3, 60),
    "rate": FrameLimit(3, 60),
    "resolve": FrameLimit(3, 60),
    "transcript": FrameLimit(3, 300),  # an email each (chat.email.outbound limits them per conversation too)
    OTHER: FrameLimit(10, 60),
}

# The agents' console: a person clicking and typing fast stays far below these. Suggestions run the model, so they
# are the scarcest.
CONSOLE_FRAME_LIMITS = {
    "ping": FrameLimit(10, 60),
    "claim": FrameLimit(30, 60),
    "open": FrameLimit(60, 60),
    "history": FrameLimit(60, 60),
    "message": FrameLimit(60, 60),
    "note": FrameLimit(30, 60),
    "hand_back": FrameLimit(20, 60),
    "resolve": FrameLimit(20, 60),
    "reopen": FrameLimit(20, 60),
    "snooze": FrameLimit(20, 60),
    "typing": FrameLimit(10, 5),
    "suggest": FrameLimit(10, 60),
    "transfer": FrameLimit(20, 60),
    "presence": FrameLimit(20, 60),
    "ticket": FrameLimit(30, 60),
    "list": FrameLimit(60, 60),
    "take_over": FrameLimit(10, 60),
    OTHER: FrameLimit(20, 60),
}

CLOSE_AFTER_REFUSALS = 30
REFUSALS_WINDOW_S = 60.0
CLOSE_POLICY_VIOLATION = 1008


class FrameRateLimiter:
    """One socket's counts: the times of its recent frames of each type, at most `count` of them per type."""

    def __init__(self, limits: dict[str, FrameLimit], clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self.recent: dict[str, deque] = {}
        self.refusals: deque = deque()

    def kind(self, frame_type) -> str:
        """The table's name for a frame's type: the type itself if the table has it, else `*`."""
        return frame_type if isinstance(frame_type, str) and frame_type in self.limits else OTHER

    def hit(self, kind: str) -> int:
        """Count one frame of `kind` (a key of the table); 0 if allowed, else the seconds until it would be."""
        limit = self.limits[kind]
        now = self.clock()
        times = self.recent.setdefault(kind, deque())
        while times and times[0] <= now - limit.per_s:
            times.popleft()
        if len(times) < limit.count:
            times.append(now)
            return 0
        self.refusals.append(now)
        return max(1, math.ceil(times[0] + limit.per_s - now))

    def abusive(self) -> bool:
        """Whether the socket went on past its limits: CLOSE_AFTER_REFUSALS refusals within REFUSALS_WINDOW_S."""
        now = self.clock()
        while self.refusals and self.refusals[0] <= now - REFUSALS_WINDOW_S:
            self.refusals.popleft()
        return len(self.refusals) >= CLOSE_AFTER_REFUSALS


class FrameLimitedConsumer:
    """Mixed into a websocket consumer: `frame_admitted` counts a frame and answers the refusal itself.

    The consumer sets `frame_limits` (a table above) and `metric_channel` (the label of RATE_LIMITED).
    """

    frame_limits: dict[str, FrameLimit]
    metric_channel: str
    limiter: FrameRateLimiter | None = None

    async def frame_admitted(self, frame_type, **extra) -> bool:
        """Whether a frame of this type may be handled now; if not, the client got the error frame (and, after
        sustained abuse, the socket is closing). `extra` goes into the error frame (a message's client_id)."""
        if self.limiter is None:
            self.limiter = FrameRateLimiter(self.frame_limits)
        kind = self.limiter.kind(frame_type)
        retry_after = self.limiter.hit(kind)
        if not retry_after:
            return True
        RATE_LIMITED.labels(channel=self.metric_channel, limit="other" if kind == OTHER else kind).inc()
        await self.send_json(
            {
                "type": "error",
                "code": "rate_limited",
                "message": f"Too many {'frames' if kind == OTHER else repr(kind) + ' frames'}; wait {retry_after} s.",
                "for": kind,
                "retry_after": retry_after,
                **extra,
            }
        )
        if self.limiter.abusive():
            await self.close(code=CLOSE_POLICY_VIOLATION)
        return False
