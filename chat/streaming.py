"""Turning a generation into published text: the handoff signal cut out, pieces gathered per CHAT_STREAM_COALESCE_MS."""

import time
from collections.abc import Callable

from django.conf import settings

from inference.deferral import DeferralFilter
from inference.generation import Generation
from inference.text import FullwidthPunctuation

# Seconds between calls of `still_wanted` (a cache read and a query, so not per token).
STILL_WANTED_CHECK_INTERVAL_S = 1.0


def stream_publish(
    generation: Generation,
    *,
    publish: Callable[[str], None],
    deferral: DeferralFilter,
    punctuation: FullwidthPunctuation | None = None,
    still_wanted: Callable[[], None] | None = None,
    received: list[str] | None = None,
) -> str:
    """Publish the generation's text in gathered pieces (the first at once) and return all of it.

    The model's handoff signal is cut out before anything is published and ends the stream (`deferral.deferred`
    tells). `still_wanted` is called about once a second and may raise to stop (which frees the engine).
    `received` gathers the text as it arrives, so a caller still has it when the stream breaks off with an error.
    """
    interval = settings.CHAT_STREAM_COALESCE_MS / 1000
    parts = received if received is not None else []
    pending: list[str] = []
    last_flush = float("-inf")
    next_check = time.monotonic() + STILL_WANTED_CHECK_INTERVAL_S
    for raw in generation:
        if still_wanted is not None and time.monotonic() >= next_check:
            next_check = time.monotonic() + STILL_WANTED_CHECK_INTERVAL_S
            still_wanted()
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
            publish("".join(pending))
            pending.clear()
            last_flush = now
    held = deferral.flush()
    if held:
        held = punctuation.feed(held) if punctuation is not None else held
        parts.append(held)
        pending.append(held)
    if pending:
        publish("".join(pending))
    return "".join(parts)
