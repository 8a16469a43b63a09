"""System checks of the deployment's settings (`manage.py check`, run at every start)."""

from django.conf import settings
from django.core.checks import Warning, register

from chat import tasks as chat_tasks
from helpdesk import tasks as helpdesk_tasks


def task_time_limits() -> dict[str, float]:
    """Every project task's hard time limit, by name."""
    modules = (chat_tasks, helpdesk_tasks)
    tasks = [value for module in modules for value in vars(module).values() if hasattr(value, "time_limit")]
    return {task.name: task.time_limit for task in tasks}


@register("celery")
def celery_redelivery_check(app_configs=None, **kwargs) -> list[Warning]:
    """A task that outlives the broker's visibility timeout is delivered again while it still runs: a reply would be
    generated twice. The timeout must exceed the longest task time limit (both follow from settings)."""
    if settings.GENERATION_BACKEND != "celery":
        return []
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    name, longest = max(task_time_limits().items(), key=lambda item: item[1])
    if visibility > longest:
        return []
    return [
        Warning(
            f"CELERY_VISIBILITY_TIMEOUT ({visibility:g} s) is not longer than the time limit of {name} "
            f"({longest:g} s): a slow task would be delivered to a second worker while the first still runs it.",
            hint="Raise CELERY_VISIBILITY_TIMEOUT, or lower INFERENCE_GENERATION_TIMEOUT / WEBHOOK_TIMEOUT.",
            id="helpdesk.W001",
        )
    ]
