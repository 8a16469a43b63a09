"""Writes to chat data, by subdomain. Every change clients should hear about is broadcast here, after commit.

- conversations: open, hand off, assign, reassign, hand back, resolve, contact details, the handoff summary;
- messages: the customer's (live, or left for later), agents' replies, private notes;
- attachments: messages that carry files (checked and stored through chat.attachments);
- replies: the bot's reply lifecycle (enqueue, start, stream, complete, fail, withdraw) and its row-lock protocol;
- lifecycle: reopen (the customer writing again, or an agent), snooze and wake, the idle auto-resolve;
- contacts: customers known beyond one conversation (verified identities, the agent API's contacts);
- identity: conversations opened by verified customers (a site's signed-in users, chat.identity);
- ratings: the customer's rating;
- live: typing and suggested drafts, which are never stored;
- errors: the refusals the services raise.

Callers use `from chat import services` and the names below.
"""

from chat.services.attachments import attachment_post_agent, attachment_post_customer, attachments_post_customer
from chat.services.contacts import (
    contact_create,
    contact_identify,
    contact_update,
    conversation_contact_link,
)
from chat.services.conversations import (
    conversation_assign,
    conversation_contact_request,
    conversation_contact_set,
    conversation_for_api_session,
    conversation_hand_back,
    conversation_hand_off,
    conversation_reassign,
    conversation_resolve,
    conversation_start,
    conversation_summary_set,
)
from chat.services.errors import ActionRefused, ConversationRefused, MessageRejected
from chat.services.identity import conversation_identity_verified, conversation_start_verified, identity_contact
from chat.services.lifecycle import (
    conversation_reopen,
    conversation_resolve_idle,
    conversation_snooze,
    conversation_wake,
    conversations_lifecycle_run,
)
from chat.services.live import reply_suggest_request, reply_suggestion_send, typing_signal
from chat.services.messages import (
    message_clean,
    message_leave,
    message_post_agent,
    message_post_customer,
    note_post,
)
from chat.services.ratings import rating_create
from chat.services.replies import (
    ReplyStats,
    reply_complete,
    reply_delta_publish,
    reply_enqueue,
    reply_fail,
    reply_start,
    reply_unavailable,
)

__all__ = [
    "ActionRefused",
    "ConversationRefused",
    "MessageRejected",
    "ReplyStats",
    "attachment_post_agent",
    "attachment_post_customer",
    "attachments_post_customer",
    "contact_create",
    "contact_identify",
    "contact_update",
    "conversation_assign",
    "conversation_contact_link",
    "conversation_contact_request",
    "conversation_contact_set",
    "conversation_for_api_session",
    "conversation_hand_back",
    "conversation_hand_off",
    "conversation_identity_verified",
    "conversation_reassign",
    "conversation_reopen",
    "conversation_resolve",
    "conversation_resolve_idle",
    "conversation_snooze",
    "conversation_start",
    "conversation_start_verified",
    "conversation_summary_set",
    "conversation_wake",
    "conversations_lifecycle_run",
    "identity_contact",
    "message_clean",
    "message_leave",
    "message_post_agent",
    "message_post_customer",
    "note_post",
    "rating_create",
    "reply_complete",
    "reply_delta_publish",
    "reply_enqueue",
    "reply_fail",
    "reply_start",
    "reply_suggest_request",
    "reply_suggestion_send",
    "reply_unavailable",
    "typing_signal",
]
