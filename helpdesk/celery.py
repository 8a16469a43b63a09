"""The Celery app. Run workers with the threads pool: `celery -A helpdesk worker -P threads -c 8`.

The threads pool shares one engine per worker process across many generations (vLLM batches them);
prefork would load one engine per child.
"""

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

app = Celery("helpdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
