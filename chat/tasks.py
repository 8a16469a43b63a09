"""Celery tasks of the chat app. They take ids and call the domain; retries live here, logic does not.

The task boundary: services import this module to enqueue, and each task body imports the logic it runs (the
reply, completion and assistance modules, which call services back). Those imports stay inside the bodies, the one
import cycle the project allows (tests/test_layering.py checks it).

Every task has explicit time limits sized from the deadlines of what it runs. Celery enforces them on the prefork
pool; the threads pool the generation workers use cannot stop a thread, so there the engine deadlines
(INFERENCE_FIRST_TOKEN_TIMEOUT, INFERENCE_GENERATION_TIMEOUT) inside the pipeline end the work in time.
"""

import smtplib

from celery import shared_task
from django.conf import settings

from chat.outages import BACKEND_UNAVAILABLE

# Beyond the engine's deadlines: reading the history, trimming the prompt, storing and publishing the reply.
BOOKKEEPING_S = 30
# A reply whose database (or Redis) is down is tried again, waiting 2, 4, 8 ... up to 60 s in between, for about
# half an hour: acknowledged and dropped instead, the customer's stored message would never be answered.
OUTAGE_RETRY = {
    "autoretry_for": BACKEND_UNAVAILABLE,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 30,
}


def generation_time_limits() -> dict:
    """soft_time_limit and time_limit of a task that runs one generation: its deadlines plus bookkeeping."""
    hard = settings.INFERENCE_FIRST_TOKEN_TIMEOUT + settings.INFERENCE_GENERATION_TIMEOUT + BOOKKEEPING_S
    return {"soft_time_limit": hard - BOOKKEEPING_S / 2, "time_limit": hard}


@shared_task(acks_late=True, ignore_result=True, **OUTAGE_RETRY, **generation_time_limits())
def reply_generate_task(message_id: int, overrides: dict | None = None, queued_at: float | None = None) -> None:
    """Generate the bot's reply to a customer message. Idempotent: a redelivered task resumes or skips.

    `queued_at` (wall-clock seconds) is when the job was handed to the backend: the reply's timings start there.
    """
    from chat.reply import reply_generate

    reply_generate(customer_message_id=message_id, overrides=overrides, queued_at=queued_at)


@shared_task(ignore_result=True, **generation_time_limits())
def completion_generate_task(job: dict) -> None:
    """Generate a reply outside any conversation (OpenAI-compatible API, playground); not retried, the caller waits."""
    from chat.completions import CompletionJob, completion_generate

    completion_generate(CompletionJob(**job))


@shared_task(acks_late=True, ignore_result=True, **OUTAGE_RETRY, **generation_time_limits())
def handoff_summary_task(conversation_id: str) -> None:
    """Write the summary of a handed-off conversation for the agents."""
    from chat.assist import handoff_summary_generate

    handoff_summary_generate(conversation_id=conversation_id)


@shared_task(ignore_result=True, **generation_time_limits())
def reply_suggest_task(conversation_id: str, agent_username: str) -> None:
    """Draft a reply for an agent (not retried: the agent can ask again)."""
    from chat.assist import reply_suggest

    reply_suggest(conversation_id=conversation_id, agent_username=agent_username)


# The periodic pass touches at most a few hundred rows, each in a short transaction.
LIFECYCLE_TIME_LIMIT_S = 120


@shared_task(ignore_result=True, soft_time_limit=LIFECYCLE_TIME_LIMIT_S - 10, time_limit=LIFECYCLE_TIME_LIMIT_S)
def conversations_lifecycle_task() -> None:
    """Resolve idle conversations and wake snoozed ones whose time came (Celery beat, or the embedded scheduler).

    Idempotent: each conversation is checked again under its row lock, so two passes at once do each change once.
    Not retried: the next pass comes a minute later.
    """
    from chat.services.lifecycle import conversations_lifecycle_run

    conversations_lifecycle_run()


# Customer emails (chat.email.outbound): an SMTP server that refuses or cannot be reached is tried again, waiting
# 5, 10, 20 ... up to 300 s in between, for about an hour; one send takes seconds, EMAIL_TIMEOUT bounds it.
EMAIL_RETRY = {
    "autoretry_for": (OSError, smtplib.SMTPException, *BACKEND_UNAVAILABLE),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 15,
}
EMAIL_TIME_LIMIT_S = 120
EMAIL_TASK = {
    "acks_late": True,
    "ignore_result": True,
    "soft_time_limit": EMAIL_TIME_LIMIT_S - 10,
    "time_limit": EMAIL_TIME_LIMIT_S,
    **EMAIL_RETRY,
}


@shared_task(**EMAIL_TASK)
def agent_reply_email_task(conversation_id: str) -> None:
    """Email the agent's unread replies to a customer who has no chat open. Idempotent (each reply once)."""
    from chat.email.outbound import agent_replies_email

    agent_replies_email(conversation_id=conversation_id)


@shared_task(**EMAIL_TASK)
def left_message_ack_task(conversation_id: str) -> None:
    """Acknowledge a left message by email. Idempotent (once per conversation)."""
    from chat.email.outbound import left_message_acknowledge

    left_message_acknowledge(conversation_id=conversation_id)


@shared_task(**EMAIL_TASK)
def transcript_email_task(conversation_id: str) -> None:
    """Email the transcript the customer asked for (a redelivery may send a second copy: harmless)."""
    from chat.email.outbound import transcript_email

    transcript_email(conversation_id=conversation_id)
