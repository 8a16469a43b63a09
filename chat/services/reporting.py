"""The conversation's report figures, kept as it goes (the caller holds the conversation's row lock).

helpdesk.reports aggregates these columns in the database; the definitions are written on the reports page.
"""

import datetime
import re

from chat.models import Conversation, Message
from knowledge.grounding import small_talk_kind

# A customer writing to the bot after this much silence comes back with the question unsolved (or a new one):
# the conversation counts as reopened, and no longer as resolved by the bot.
REOPEN_AFTER = datetime.timedelta(hours=24)

# "That helped", "it works now", "问题解决了": the customer says the bot's answer solved it.
_HELPED = re.compile(
    r"\b(?:that|this|it|you)\s+(?:really\s+)?(?:helped|helps|works|worked|solved|answers|answered)\b|"
    r"\b(?:problem|issue|question)\s+(?:is\s+)?(?:solved|resolved|fixed|answered)\b|"
    r"\b(?:perfect|great|awesome|brilliant),?\s+thanks?\b|\bvery helpful\b|\bgot it,?\s+thanks?\b|"
    r"解决了|有帮助|帮到我|好的[,，]?谢谢|明白了[,，]?谢谢|懂了[,，]?谢谢",
    re.IGNORECASE,
)


def customer_confirms(text: str) -> bool:
    """Whether a customer's message says the answer helped (a bare thank-you counts, as peers count it)."""
    return small_talk_kind(text) == "thanks" or bool(_HELPED.search(text))


def on_customer_message(conversation: Conversation, content: str, at: datetime.datetime, *, was_resolved: bool) -> list:
    """A customer message is landing (the caller saves the fields returned, with its sequence number): the first
    one starts the clocks; a return after resolution, or to the bot after a day of silence, reopens."""
    fields = ["last_message_at"]
    if conversation.first_customer_message_at is None:
        conversation.first_customer_message_at = at
        fields.append("first_customer_message_at")
    elif was_resolved or (
        conversation.status == Conversation.Status.BOT
        and conversation.last_message_at is not None
        and at - conversation.last_message_at >= REOPEN_AFTER
    ):
        conversation.reopened_count += 1
        fields.append("reopened_count")
    if was_resolved:
        conversation.resolution_s = conversation.resolution_business_s = None
        fields += ["resolution_s", "resolution_business_s"]
    if (
        conversation.status == Conversation.Status.BOT
        and conversation.bot_first_response_s is not None
        and not conversation.customer_confirmed
        and customer_confirms(content)
    ):
        conversation.customer_confirmed = True
        fields.append("customer_confirmed")
    conversation.last_message_at = at
    return fields


def on_agent_message(conversation: Conversation, at: datetime.datetime) -> list:
    """An agent is answering (the caller saves the fields returned): the human first response time, once."""
    fields = ["last_message_at"]
    if conversation.human_first_response_s is None and conversation.first_handoff_at is not None:
        conversation.human_first_response_s = max((at - conversation.first_handoff_at).total_seconds(), 0.0)
        fields.append("human_first_response_s")
    conversation.last_message_at = at
    return fields


def on_bot_reply(conversation: Conversation, reply: Message) -> None:
    """A bot reply was completed: the bot's first response time, stored with the first reply only."""
    if conversation.bot_first_response_s is None and conversation.first_customer_message_at is not None:
        at = reply.completed_at or reply.created_at
        conversation.bot_first_response_s = max((at - conversation.first_customer_message_at).total_seconds(), 0.0)
        conversation.save(update_fields=["bot_first_response_s", "updated_at"])


def on_handoff(conversation: Conversation) -> None:
    """Handed to the agents (the caller saves): the first handoff starts the queue and human-response clocks."""
    if conversation.first_handoff_at is None:
        conversation.first_handoff_at = conversation.handed_off_at


def on_claim(conversation: Conversation, at: datetime.datetime) -> None:
    """An agent took the conversation (the caller saves): the queue wait of the first claim, once."""
    if conversation.claimed_at is None and conversation.first_handoff_at is not None:
        conversation.claimed_at = at
        conversation.queue_wait_s = max((at - conversation.first_handoff_at).total_seconds(), 0.0)


def on_release(conversation: Conversation, at: datetime.datetime) -> None:
    """The agent who claimed it stops holding it, resolved or handed back (the caller saves); the first time only."""
    if conversation.claimed_at is not None and conversation.released_at is None:
        conversation.released_at = at


def on_resolve(conversation: Conversation) -> None:
    """Resolved (the caller saves): resolution time from creation, in calendar time and in business hours."""
    on_release(conversation, conversation.resolved_at)
    start, end = conversation.created_at, conversation.resolved_at
    conversation.resolution_s = max((end - start).total_seconds(), 0.0)
    site = conversation.site if conversation.site_id else None
    conversation.resolution_business_s = (
        site.business_seconds(start, end) if site is not None else conversation.resolution_s
    )


RESOLVE_FIELDS = ("resolution_s", "resolution_business_s", "released_at")
