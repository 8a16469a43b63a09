"""Domain signals the chat app sends so the staff side can react without chat importing it.

Each is sent by a chat service inside its transaction; receivers that write do so in the same transaction and
broadcast only on commit.

- conversation_handed_off(conversation, reason): the conversation left the bot and waits for an agent.
- conversation_handed_back(conversation, agent): the assignee gave the conversation back to the bot.
- conversation_resolved(conversation): an agent (or the customer, or the idle timer) closed the conversation.
- conversation_reopened(conversation, agent, snoozed): a resolved conversation its customer wrote to again, or a
  snoozed one that woke up (the customer wrote, or its time came), went back to the team: it is queued, and `agent`
  (its last agent, or None) may take it back at once. `snoozed` says which: a snoozed conversation stays with its
  agent unless they are gone; a resolved one goes back to them only if they are online with room.
- conversation_rated(conversation, rating): the customer rated it.
"""

from django.dispatch import Signal

conversation_handed_off = Signal()
conversation_handed_back = Signal()
conversation_resolved = Signal()
conversation_rated = Signal()
conversation_reopened = Signal()
