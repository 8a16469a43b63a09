"""The staff side's records: tickets, canned responses, agent presence, and the outgoing webhooks."""

import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Ticket(models.Model):
    """A unit of work for the support team, usually about one conversation."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    class Priority(models.IntegerChoices):
        LOW = 1, "Low"
        NORMAL = 2, "Normal"
        HIGH = 3, "High"
        URGENT = 4, "Urgent"

    conversation = models.OneToOneField(
        "chat.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="ticket"
    )
    subject = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    tags = models.CharField(max_length=255, blank=True, help_text="Comma-separated, e.g. billing, vip.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "created_at"]
        permissions = [
            ("use_console", "Can use the agent console"),
            ("view_reports", "Can see the reports of every agent and export them"),
            ("use_playground", "Can try the bot in the playground"),
            ("supervise_conversations", "Can open and act on any conversation, not only queued or their own"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class CannedResponse(models.Model):
    """A ready-made reply agents insert and edit. Variables: {{customer_name}}, {{agent_name}}, {{company_name}}."""

    title = models.CharField(max_length=100)
    body = models.TextField()
    shortcut = models.SlugField(max_length=40, blank=True, help_text="Typed as /shortcut in the console.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class AgentPresence(models.Model):
    """Whether an agent can take chats now, and how many at once."""

    class Status(models.TextChoices):
        ONLINE = "online", "Online"
        AWAY = "away", "Away"
        OFFLINE = "offline", "Offline"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presence")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE)
    # Open console sockets: an agent with none is offline whatever they chose.
    connections = models.PositiveIntegerField(default=0)
    capacity = models.PositiveSmallIntegerField(default=3, help_text="Most conversations at once.")
    last_seen = models.DateTimeField(null=True, blank=True)
    # Email notifications the agent opted in to (helpdesk.notifications): a customer left a message; a conversation
    # has waited in the queue past NOTIFY_WAITING_AFTER.
    notify_left_messages = models.BooleanField(default=False)
    notify_waiting = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.user} · {self.status}"


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_events_validate(value) -> None:
    """A list of known event names; empty means every event."""
    if not isinstance(value, list) or any(event not in Webhook.Event.values for event in value):
        raise ValidationError(f"Events must be a list of: {', '.join(Webhook.Event.values)} (empty: all).")


class Webhook(models.Model):
    """An endpoint outside the helpdesk told about conversation events by a signed HTTP POST.

    The secret signs every request (X-Helpdesk-Signature); the receiver needs it to check that the request came
    from here, so staff can read it in the admin.
    """

    class Event(models.TextChoices):
        HANDED_OFF = "conversation.handed_off", "Handed off to the agents"
        CLAIMED = "conversation.claimed", "Claimed by an agent"
        RESOLVED = "conversation.resolved", "Resolved"
        RATED = "conversation.rated", "Rated by the customer"

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500, help_text="Receives a POST per event; answer 2xx within the timeout.")
    secret = models.CharField(max_length=64, default=webhook_secret_new, editable=False)
    events = models.JSONField(
        default=list, blank=True, validators=[webhook_events_validate], help_text="None chosen: every event."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def subscribes_to(self, event: str) -> bool:
        return not self.events or event in self.events


class WebhookDelivery(models.Model):
    """One event sent to one webhook: the exact payload, and how its attempts went.

    The id is sent as X-Helpdesk-Delivery and stays the same across retries, so receivers can drop duplicates.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64, choices=Webhook.Event.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_recent"),
            models.Index(fields=["status", "-created_at"], name="delivery_status_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id} · {self.status}"


class CustomerNote(models.Model):
    """A staff note about a customer (not one conversation), shown on the customer's profile. Customers are known
    by their email address (lower case) until they have a verified identity."""

    customer_email = models.EmailField(db_index=True)
    body = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.customer_email}: {self.body[:40]}"


class Invitation(models.Model):
    """An invitation to join the team in a role: a one-time link (its SHA-256 alone is stored) that lets the
    invitee choose a password; accepting it makes the account with the role's group and the staff flag."""

    email = models.EmailField()
    role = models.CharField(max_length=32, help_text="The group the new account joins: agent, manager or admin.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} as {self.role}"


class AgentNotification(models.Model):
    """An email sent to an agent about a conversation (helpdesk.notifications), so each is sent once per kind."""

    class Kind(models.TextChoices):
        LEFT_MESSAGE = "left_message", "A customer left a message"
        WAITING = "waiting", "A conversation waited past the threshold"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "conversation_id", "kind"], name="one_notification_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} · {self.conversation_id} → {self.user}"
