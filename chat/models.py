"""Conversations between a customer and the bot or an agent, their messages and the customer's rating."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class HandoffReason(models.TextChoices):
    MODEL_DEFERRED = "model_deferred", "The bot could not help"
    CUSTOMER_REQUEST = "customer_request", "The customer asked for a person"
    ENGINE_FAILURE = "engine_failure", "The bot failed and no rule answered"
    NO_KNOWLEDGE = "no_knowledge", "Nothing relevant is known"


class Conversation(models.Model):
    """One customer's chat. The customer proves ownership with a secret whose SHA-256 alone is stored."""

    class Status(models.TextChoices):
        BOT = "bot", "Bot"
        QUEUED = "queued", "Waiting for an agent"
        AGENT = "agent", "With an agent"
        RESOLVED = "resolved", "Resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOT, db_index=True)
    language = models.CharField(max_length=16, default="en")
    region = models.CharField(max_length=64, blank=True)
    customer_name = models.CharField(max_length=120, blank=True)
    customer_email = models.EmailField(blank=True)
    # The sequence number of the newest message; the next message gets last_seq + 1.
    last_seq = models.PositiveIntegerField(default=0)
    # Handoff to a person: why, which message caused it, the model's summary for the agent, and who has it.
    handoff_reason = models.CharField(max_length=32, choices=HandoffReason.choices, blank=True)
    handoff_message = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    handoff_summary = models.TextField(blank=True)
    handed_off_at = models.DateTimeField(null=True, blank=True, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.customer_name or 'Customer'} · {self.id}"

    @property
    def group_name(self) -> str:
        """The channel-layer group every socket of this conversation listens on."""
        return f"conversation.{self.id.hex}"

    @property
    def staff_group_name(self) -> str:
        """The group of the staff following this conversation: private notes, summaries and drafts go here only."""
        return f"{self.group_name}.staff"


class Message(models.Model):
    """A message in a conversation, numbered by a per-conversation increasing sequence."""

    class Role(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BOT = "bot", "Bot"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"
        NOTE = "note", "Private note"

    class State(models.TextChoices):
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        FAILED = "failed", "Failed"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.COMPLETE)
    # The customer's own id for a message, so a resend after a dropped connection is not stored twice.
    client_id = models.CharField(max_length=64, blank=True)
    # For a bot reply: the customer message it answers (makes the reply task idempotent).
    in_reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")
    # The agent who wrote an agent message or a note.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    engine = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"], condition=~Q(client_id=""), name="message_client_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.role}: {self.content[:40]}"


class Rating(models.Model):
    """The customer's satisfaction rating (CSAT) of a conversation: 1-5 stars, once."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="rating")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(score__gte=1, score__lte=5), name="rating_score_1_to_5")]

    def __str__(self) -> str:
        return f"{self.score}/5 · {self.conversation_id}"
