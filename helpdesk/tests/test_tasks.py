"""Every Celery task has explicit time limits sized from the deadlines of what it runs, and the broker's visibility
timeout outlasts them all (else a slow reply is delivered to a second worker while the first still writes it)."""

from django.conf import settings

from chat import tasks as chat_tasks
from helpdesk import checks
from helpdesk import tasks as helpdesk_tasks

GENERATION_TASKS = ("reply_generate_task", "completion_generate_task", "handoff_summary_task", "reply_suggest_task")


def test_every_task_has_a_soft_limit_below_its_hard_limit():
    limits = checks.task_time_limits()
    others = {"helpdesk.tasks.webhook_deliver_task", "chat.tasks.conversations_lifecycle_task"}
    emails = ("agent_reply_email_task", "left_message_ack_task", "transcript_email_task")
    others |= {f"chat.tasks.{name}" for name in emails}
    others |= {"helpdesk.tasks.left_message_notify_task", "helpdesk.tasks.waiting_notify_task"}
    assert set(limits) == {f"chat.tasks.{name}" for name in GENERATION_TASKS} | others
    for module in (chat_tasks, helpdesk_tasks):
        for name in dir(module):
            task = getattr(module, name)
            if name.endswith("_task") and name != "shared_task":
                assert 0 < task.soft_time_limit < task.time_limit, name


def test_limits_outlast_the_deadlines_they_depend_on():
    deadlines = settings.INFERENCE_FIRST_TOKEN_TIMEOUT + settings.INFERENCE_GENERATION_TIMEOUT
    for name in GENERATION_TASKS:
        assert getattr(chat_tasks, name).soft_time_limit > deadlines
    # Connect, send and read the answer, each within WEBHOOK_TIMEOUT.
    assert helpdesk_tasks.webhook_deliver_task.soft_time_limit > 3 * settings.WEBHOOK_TIMEOUT


def test_a_visibility_timeout_shorter_than_a_task_is_flagged(settings):
    settings.GENERATION_BACKEND = "celery"
    assert checks.celery_redelivery_check() == []  # the defaults agree
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "visibility_timeout": 60}
    [warning] = checks.celery_redelivery_check()
    assert warning.id == "helpdesk.W001" and "reply_generate_task" in warning.msg
    settings.GENERATION_BACKEND = "inprocess"  # nothing is redelivered in the embedded mode
    assert checks.celery_redelivery_check() == []
