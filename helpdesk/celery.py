"""The Celery app. Run workers with the threads pool: `celery -A helpdesk worker -P threads -c 8`.

The threads pool shares one engine per worker process across many generations (vLLM batches them);
prefork would load one engine per child.

Metrics: each worker process serves its own /metrics on WORKER_METRICS_PORT (helpdesk.worker_metrics says why one
port per process rather than prometheus-client's multiprocess mode). Every task message carries the time it was
enqueued, so a worker can time the wait before a generation starts.
"""

import os
import time

from celery import Celery
from celery.signals import before_task_publish, task_prerun, worker_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

app = Celery("helpdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

ENQUEUED_AT_HEADER = "helpdesk_enqueued_at"  # unix time, set by the process that enqueues the task


@worker_shutdown.connect
def engine_close_on_shutdown(**_kwargs) -> None:
    """Free the worker's engine once running tasks have drained (vLLM must stop its engine core cleanly)."""
    from inference.engines import engine_reset

    engine_reset()


@worker_ready.connect
def knowledge_warm_up(**_kwargs) -> None:
    """Load the knowledge base's index and models before the first customer question arrives."""
    import logging

    from knowledge.retrieval import retrieval_warm_up

    try:
        retrieval_warm_up()
    except Exception:  # a worker that cannot warm up still serves: retrieval loads on first use
        logging.getLogger(__name__).exception("knowledge warm-up failed")


@before_task_publish.connect
def enqueue_time_stamp(headers=None, **_kwargs) -> None:
    """Stamp the message with its enqueue time (kept on redelivery, so a wait after a worker died counts whole)."""
    if headers is not None:
        headers.setdefault(ENQUEUED_AT_HEADER, time.time())


@task_prerun.connect
def queue_wait_observe_on_start(task=None, **_kwargs) -> None:
    """helpdesk_reply_stage_seconds{stage="queue_wait"}: from the enqueue to this start (generation tasks only)."""
    from chat.metrics import queue_wait_observe

    enqueued_at = task.request.get(ENQUEUED_AT_HEADER) if task is not None else None
    if isinstance(enqueued_at, int | float):
        queue_wait_observe(task_name=task.name, waited_s=time.time() - enqueued_at)


@worker_init.connect
def metrics_serve(sender=None, **_kwargs) -> None:
    """Serve this worker process's metrics on WORKER_METRICS_PORT (0: off), before it takes any task."""
    import logging

    from django.conf import settings

    from chat.metrics import reply_series_init
    from helpdesk import metrics as helpdesk_metrics  # noqa: F401  (its series exist at 0 before the first task)
    from helpdesk.worker_metrics import worker_metrics_serve

    reply_series_init()
    if not settings.WORKER_METRICS_PORT:
        return
    pool = getattr(sender, "pool_cls", None)
    pool_name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    if "prefork" in str(pool_name):
        # Tasks would run in child processes, whose series this server cannot see.
        logging.getLogger(__name__).warning("worker metrics: the prefork pool is not measured; use -P threads")
    worker_metrics_serve(
        port=settings.WORKER_METRICS_PORT, addr=settings.WORKER_METRICS_ADDR, token=settings.METRICS_TOKEN
    )
