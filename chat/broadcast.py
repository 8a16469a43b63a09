"""Sending events to channel-layer groups from synchronous code (services, reply threads, Celery tasks).

Only services call this, after their transaction commits. Every send hops onto one long-lived event loop
instead of `async_to_sync` making a new loop (and a new Redis connection) per call:
- in the ASGI server process, the server's own loop, bound by `event_loop_bind` at the first request; the
  in-memory channel layer lives on that loop and is not thread-safe, so its sends must happen there;
- anywhere else (a Celery worker), a daemon thread running a private loop.
The channel layer only carries news: a lost event is recovered by the client's resume from the database.
"""

import asyncio
import concurrent.futures
import logging
import threading
import time

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
WAIT_STEP_S = 0.25  # how often a waiting send checks that its loop still runs

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def event_loop_bind(loop: asyncio.AbstractEventLoop) -> None:
    """Use this running loop (the ASGI server's) for every send from this process."""
    global _loop
    with _loop_lock:
        _loop = loop


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        # A bound loop that stopped (the server is shutting down) would never run the send: use a private one.
        if _loop is None or _loop.is_closed() or not _loop.is_running():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="channel-layer-publisher", daemon=True).start()
        return _loop


def group_send(group: str, event: dict) -> None:
    """Send `event` to every socket in `group`; blocks until the layer took it. Never raises: the DB is the truth."""
    loop = _publisher_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("group_send is synchronous; call it from a thread, not from the event loop")
    future = asyncio.run_coroutine_threadsafe(get_channel_layer().group_send(group, event), loop)
    deadline = time.monotonic() + SEND_TIMEOUT_S
    while True:
        try:
            future.result(timeout=WAIT_STEP_S)
            return
        except concurrent.futures.TimeoutError:
            # A loop that stopped meanwhile (the server shutting down) will never run the send: don't wait for it.
            if loop.is_running() and time.monotonic() < deadline:
                continue
            future.cancel()
            logger.warning("channel layer send to %s timed out (clients will catch up on resume)", group)
            return
        except Exception:
            logger.exception("channel layer send to %s failed (clients will catch up on resume)", group)
            return
