"""Queueing the customer emails (chat.tasks), for the services that cause them. A leaf: the services import it.

An email is a courtesy next to what the customer sees in the chat: when the task backend cannot take one, it is
logged and the service's own work stands.
"""

import logging
import uuid

from django.conf import settings

from chat import dispatch, tasks

logger = logging.getLogger(__name__)


def _enqueue(task, delay_s: float, conversation_id: uuid.UUID) -> None:
    try:
        if delay_s > 0:
            dispatch.task_enqueue_later(task, delay_s, str(conversation_id))
        else:
            dispatch.task_enqueue(task, str(conversation_id))
    except Exception:
        logger.exception("could not queue %s for conversation %s", task.name, conversation_id)


def agent_reply_email_schedule(conversation_id: uuid.UUID) -> None:
    """After EMAIL_REPLY_DELAY, email the agent's reply if the customer has not read it in the chat by then."""
    _enqueue(tasks.agent_reply_email_task, settings.EMAIL_REPLY_DELAY, conversation_id)


def left_message_ack_schedule(conversation_id: uuid.UUID) -> None:
    _enqueue(tasks.left_message_ack_task, 0, conversation_id)


def transcript_email_schedule(conversation_id: uuid.UUID) -> None:
    _enqueue(tasks.transcript_email_task, 0, conversation_id)
