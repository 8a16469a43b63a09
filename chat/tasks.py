"""Celery tasks of the chat app. They take ids and call the domain; retries live here, logic does not."""

from celery import shared_task

from chat.reply import reply_generate


@shared_task(acks_late=True, ignore_result=True)
def reply_generate_task(message_id: int) -> None:
    """Generate the bot's reply to a customer message. Idempotent: a redelivered task resumes or skips."""
    reply_generate(customer_message_id=message_id)
