"""Where a bot reply is generated: by a Celery worker (production) or a thread pool in this process (embedded)."""

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def reply_enqueue(*, conversation_id: uuid.UUID, message_id: int) -> None:
    """Have the bot answer a committed customer message, without waiting for it."""
    if settings.GENERATION_BACKEND == "celery":
        from chat.tasks import reply_generate_task

        reply_generate_task.delay(message_id)
    elif settings.GENERATION_BACKEND == "inprocess":
        _in_process_executor().submit(_reply_generate_in_thread, message_id)
    else:
        raise ValueError(f"unknown GENERATION_BACKEND {settings.GENERATION_BACKEND!r}; use celery or inprocess")


def _in_process_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.GENERATION_THREADS, thread_name_prefix="reply")
        return _executor


def _reply_generate_in_thread(message_id: int) -> None:
    from chat.reply import reply_generate

    close_old_connections()
    try:
        reply_generate(customer_message_id=message_id)
    except Exception:
        logger.exception("in-process reply to message %s failed", message_id)
    finally:
        close_old_connections()
