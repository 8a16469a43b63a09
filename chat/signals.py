"""Domain signals the chat app sends so the staff side can react without chat importing it.

Each is sent by a chat service inside its transaction; receivers that write do so in the same transaction and
broadcast only on commit.

- conversation_handed_off(conversation, reason): the conversation left the bot and waits for an agent.
"""

from django.dispatch import Signal

conversation_handed_off = Signal()
