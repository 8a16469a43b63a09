"""Celery tasks of the chat app. They take ids and call the domain; retries live here, logic does not."""

from celery import shared_task

from chat.reply import reply_generate


@shared_task(acks_late=True, ignore_result=True)
def reply_generate_task(message_id: int, overrides: dict | None = None) -> None:
    """Generate the bot's reply to a customer message. Idempotent: a redelivered task resumes or skips."""
    reply_generate(customer_message_id=message_id, overrides=overrides)


@shared_task(ignore_result=True)
def completion_generate_task(job: dict) -> None:
    """Generate a reply outside any conversation (OpenAI-compatible API, playground); not retried, the caller waits."""
    from chat.completions import CompletionJob, completion_generate

    completion_generate(CompletionJob(**job))


@shared_task(acks_late=True, ignore_result=True)
def handoff_summary_task(conversation_id: str) -> None:
    """Write the summary of a handed-off conversation for the agents."""
    from chat.assist import handoff_summary_generate

    handoff_summary_generate(conversation_id=conversation_id)


@shared_task(ignore_result=True)
def reply_suggest_task(conversation_id: str, agent_username: str) -> None:
    """Draft a reply for an agent (not retried: the agent can ask again)."""
    from chat.assist import reply_suggest

    reply_suggest(conversation_id=conversation_id, agent_username=agent_username)
