"""The staff side's records. Tickets track conversations that need a person (the handoff issue fills them)."""

from django.conf import settings
from django.db import models


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
        permissions = [("use_console", "Can use the agent console")]

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

    def __str__(self) -> str:
        return f"{self.user} · {self.status}"
