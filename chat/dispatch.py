"""Where chat's tasks run: on a Celery worker (production) or a thread pool in this process (embedded).

A leaf: it runs the task it is given and knows nothing of what the task does. Deciding what to do when the backend
cannot take a job belongs to the service that asks (chat.services.replies.reply_enqueue, for instance).
"""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

from django.conf import settings
from django.db import close_old_connections

from chat.metrics import queue_wait_observe

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_pending: set[Future] = set()
_periodic_started = False


def task_enqueue(task, *args) -> None:
    """Run a chat task without waiting: on a Celery worker, or embedded, on this process's thread pool."""
    backend = settings.GENERATION_BACKEND
    if backend == "celery":
        task.delay(*args)
    elif backend == "inprocess":
        future = _in_process_executor().submit(_run_in_thread, task, args, time.monotonic())
        _pending.add(future)
        future.add_done_callback(_pending.discard)
    else:
        raise ValueError(f"unknown GENERATION_BACKEND {backend!r}; use celery or inprocess")


def task_enqueue_later(task, delay_s: float, *args) -> None:
    """Run a task after `delay_s` seconds without holding a thread meanwhile (a Celery countdown, or a timer)."""
    if settings.GENERATION_BACKEND != "inprocess":
        task.apply_async(args=args, countdown=delay_s)
        return
    scheduled: Future = Future()  # stands for the timer in _pending until the task itself is queued
    _pending.add(scheduled)

    def fire() -> None:
        try:
            task_enqueue(task, *args)
        finally:
            scheduled.set_result(None)
            _pending.discard(scheduled)

    timer = threading.Timer(delay_s, fire)
    timer.daemon = True
    timer.start()


def periodic_start(task, every_s: float) -> bool:
    """Embedded mode only: run `task` every `every_s` seconds on this process's thread pool, from a daemon thread
    (Celery beat does it in production). Started once per process; False if it was already, or is not embedded."""
    global _periodic_started
    with _executor_lock:
        if _periodic_started or settings.GENERATION_BACKEND != "inprocess" or every_s <= 0:
            return False
        _periodic_started = True

    threading.Thread(target=periodic_loop, args=(task, every_s), name=f"periodic-{task.name}", daemon=True).start()
    return True


def periodic_loop(task, every_s: float, sleep=time.sleep) -> None:
    """The embedded scheduler's thread: wait `every_s`, start `task` on the pool, for ever (a failure is logged)."""
    while True:
        sleep(every_s)
        try:
            task_enqueue(task)
        except Exception:
            logger.exception("could not start the periodic %s", task.name)


def _in_process_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.GENERATION_THREADS, thread_name_prefix="reply")
        return _executor


def _run_in_thread(task, args: tuple, enqueued_at: float) -> None:
    # On Celery, helpdesk.celery times the same wait from the message's header.
    queue_wait_observe(task_name=task.name, waited_s=time.monotonic() - enqueued_at)
    close_old_connections()
    try:
        task(*args)
    except Exception:
        logger.exception("in-process task %s%r failed", task.name, args)
    finally:
        close_old_connections()


def in_process_wait(timeout: float = 30.0) -> bool:
    """Wait until the in-process tasks started so far (and those they start) are done; False on timeout.

    For tests and orderly shutdown: nothing may still be writing when the database goes away.
    """
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while _pending and not deadline.is_set():
            wait(list(_pending), timeout=0.5)
        return not _pending
    finally:
        timer.cancel()
