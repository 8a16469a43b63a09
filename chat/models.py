"""Sites that embed the widget; conversations between a customer and the bot or an agent; messages; ratings."""

import datetime
import secrets
import uuid
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from chat.origins import origin_normalize
from chat.search import message_search_terms


def site_key_new() -> str:
    return secrets.token_urlsafe(18)


def identity_secret_new() -> str:
    return secrets.token_hex(32)


def origins_validate(value: str) -> None:
    """Each line must be a bare origin: scheme://host[:port], no path."""
    for line in value.split():
        if origin_normalize(line) is None:
            raise ValidationError(f"{line!r} is not an origin like https://www.example.com (no path).")


def timezone_validate(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone such as Europe/Paris.") from exc


class Site(models.Model):
    """A website that embeds the chat widget, with the widget's look, pre-chat form, hours and limits.

    The site key is public (it is in the page's script tag); what protects a site is its list of allowed origins.
    """

    class Field(models.TextChoices):
        REQUIRED = "required", "Required"
        OPTIONAL = "optional", "Optional"
        OFF = "off", "Not asked"

    class Language(models.TextChoices):
        EN = "en", "English"
        ZH = "zh", "简体中文"

    name = models.CharField(max_length=120)
    key = models.CharField(max_length=32, unique=True, default=site_key_new, editable=False)
    is_active = models.BooleanField(default=True)
    allowed_origins = models.TextField(
        blank=True,
        validators=[origins_validate],
        help_text="One origin per line, e.g. https://www.example.com. The helpdesk's own pages are always allowed.",
    )
    theme_color = models.CharField(
        max_length=7, default="#1f6feb", validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use #rrggbb.")]
    )
    welcome_message = models.TextField(blank=True, default="Hi! How can we help you today?")
    welcome_message_zh = models.TextField(blank=True, default="您好!请问有什么可以帮您?")
    language = models.CharField(
        max_length=8, choices=Language.choices, default=Language.EN, help_text="For browsers in other languages."
    )
    prechat_name = models.CharField(max_length=8, choices=Field.choices, default=Field.OPTIONAL)
    prechat_email = models.CharField(max_length=8, choices=Field.choices, default=Field.OPTIONAL)
    bot_enabled = models.BooleanField(default=True, help_text="Off: every chat goes straight to the agents.")
    timezone = models.CharField(max_length=64, default="UTC", validators=[timezone_validate])
    conversations_per_ip = models.PositiveIntegerField(
        default=6, help_text="New conversations one IP address may open on this site per window."
    )
    conversations_window_hours = models.PositiveIntegerField(default=12)
    messages_per_minute = models.PositiveIntegerField(default=20, help_text="Per conversation.")
    # Identity verification (chat.identity): the site's server signs its signed-in user's id with this secret
    # (HMAC-SHA256, hex) and the widget passes both; only a correct signature makes the customer verified. It must
    # stay on the site's server, never in a page.
    identity_secret = models.CharField(max_length=64, default=identity_secret_new, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def origins(self) -> set[str]:
        return {o for o in (origin_normalize(line) for line in self.allowed_origins.split()) if o}

    def is_open(self, at: datetime.datetime) -> bool:
        """Within business hours at `at` (aware). A site without hours is always open."""
        return hours_open(list(self.hours.all()), self.timezone, at)

    def business_seconds(self, start: datetime.datetime, end: datetime.datetime) -> float:
        """Seconds between `start` and `end` (aware) that fall within business hours; all of them without hours."""
        return business_seconds(list(self.hours.all()), self.timezone, start, end)


def hours_open(hours: list, tz_name: str, at: datetime.datetime) -> bool:
    """Whether `at` (aware) falls in one of the weekly opening periods `hours` (SiteHours); always without any."""
    if not hours:
        return True
    local = at.astimezone(zoneinfo.ZoneInfo(tz_name))
    now = local.time()
    return any(h.weekday == local.weekday() and h.opens <= now < h.closes for h in hours)


def business_seconds(hours: list, tz_name: str, start: datetime.datetime, end: datetime.datetime) -> float:
    """Seconds of [start, end) inside the weekly opening periods `hours` (SiteHours) of time zone `tz_name`.

    Each day's periods are placed on that local date, so a change of clock (daylight saving) is counted as it
    happened. Without periods every second counts.
    """
    if end <= start:
        return 0.0
    if not hours:
        return (end - start).total_seconds()
    zone = zoneinfo.ZoneInfo(tz_name)
    by_weekday: dict[int, list] = {}
    for period in hours:
        by_weekday.setdefault(period.weekday, []).append(period)
    total, day = 0.0, start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        for period in by_weekday.get(day.weekday(), ()):
            opens = datetime.datetime.combine(day, period.opens, zone).astimezone(datetime.UTC)
            closes = datetime.datetime.combine(day, period.closes, zone).astimezone(datetime.UTC)
            overlap = (min(closes, end) - max(opens, start)).total_seconds()
            total += max(overlap, 0.0)
        day += datetime.timedelta(days=1)
    return total


class SiteHours(models.Model):
    """One opening period of a site's team, in the site's time zone."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "business hours"
        constraints = [models.CheckConstraint(condition=Q(closes__gt=models.F("opens")), name="hours_close_after_open")]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"


class HandoffReason(models.TextChoices):
    MODEL_DEFERRED = "model_deferred", "The bot could not help"
    CUSTOMER_REQUEST = "customer_request", "The customer asked for a person"
    ENGINE_FAILURE = "engine_failure", "The bot failed and no rule answered"
    NO_KNOWLEDGE = "no_knowledge", "Nothing relevant is known"
    BOT_OFF = "bot_off", "The bot is off for this site"
    OFFLINE_MESSAGE = "offline_message", "Left a message while no one was available"


class ApiKey(models.Model):
    """A key an integration uses for the REST API. The key is shown once; only its SHA-256 is stored.

    A key reads `hd_<prefix>_<secret>`: the prefix finds the row (and names the key in logs and lists), the hash
    of the whole key proves it.
    """

    class Scope(models.TextChoices):
        CHAT = "chat", "chat: talk to the bot (/api/v1/chat, /v1/chat/completions)"
        READ = "read", "read: conversations, messages, tickets, ratings"
        AGENT = "agent", "agent: reply, note, assign, transfer, hand back, resolve and reopen; edit tickets"
        CONTACTS = "contacts", "contacts: create, read and update contacts"
        ADMIN = "admin", "admin: everything, and the API keys themselves"

    name = models.CharField(max_length=120, help_text="Who or what uses it, e.g. 'Shop backend'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="Any of chat, read, agent, contacts, admin.")
    # The staff member whose name agent actions through this key are taken in (replies, notes, assignments), with
    # that member's own permissions, checked on every request. Required for the agent scope.
    acts_as = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Agent actions through this key are taken as this staff member (required for the agent scope).",
    )
    # Requests per minute with this key; empty: API_RATE_LIMIT_PER_KEY.
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty for the default (API_RATE_LIMIT_PER_KEY)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (hd_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """Whether the key may use an endpoint that needs `scope` (admin may use every endpoint)."""
        return scope in self.scopes or self.Scope.ADMIN in self.scopes


class Contact(models.Model):
    """A customer known beyond one conversation: a site's signed-in user (verified by the site's signature, see
    chat.identity) or a record an integration keeps through the API. Conversations point at it."""

    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.CASCADE, related_name="contacts")
    # The site's own id for its user (verified identity); empty for a contact made by staff or the API without one.
    external_id = models.CharField(max_length=128, blank=True)
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    language = models.CharField(max_length=16, blank=True)
    # external_id was proven with the site's identity secret (HMAC), not merely claimed.
    verified = models.BooleanField(default=False)
    # Free-form facts an integration keeps about the customer (plan, order count): JSON object, shown to staff.
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["email"], name="contact_email")]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "external_id"], condition=~Q(external_id=""), name="one_contact_per_site_user"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.external_id or f"Contact {self.pk}"


class Conversation(models.Model):
    """One customer's chat. The customer proves ownership with a secret whose SHA-256 alone is stored."""

    class Status(models.TextChoices):
        BOT = "bot", "Bot"
        QUEUED = "queued", "Waiting for an agent"
        AGENT = "agent", "With an agent"
        SNOOZED = "snoozed", "Snoozed"
        RESOLVED = "resolved", "Resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The site whose widget opened it (None: opened through the API).
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="conversations")
    page_url = models.URLField(max_length=500, blank=True)
    # Opened through the REST API: the key that opened it and the integration's own session id for it.
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations")
    session_id = models.CharField(max_length=128, blank=True)
    secret_hash = models.CharField(max_length=64, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOT, db_index=True)
    language = models.CharField(max_length=16, default="en")
    region = models.CharField(max_length=64, blank=True)
    customer_name = models.CharField(max_length=120, blank=True)
    customer_email = models.EmailField(blank=True)
    # The contact this customer is (a verified signed-in user, or one linked by staff or the API), if known.
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations")
    # Opened by a customer whose identity the site signed (chat.identity): shown as verified to the staff.
    identity_verified = models.BooleanField(default=False)
    # When a socket of the customer last closed or opened: agent replies after it, while none is open, are emailed.
    customer_last_seen_at = models.DateTimeField(null=True, blank=True)
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
    # Snoozed by its agent: back to them at this time, or (None) when the customer writes again.
    snoozed_until = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the customer was last asked to rate the conversation: a conversation resolved again (reopened, say)
    # does not ask twice.
    rating_requested_at = models.DateTimeField(null=True, blank=True)
    # Report figures, kept by chat's services as the conversation goes (helpdesk.reports aggregates them in the
    # database; the definitions are on the reports page). Durations are seconds.
    first_customer_message_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)  # the newest customer or agent message
    bot_first_response_s = models.FloatField(null=True, blank=True)  # first customer message -> first bot reply
    first_handoff_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)  # the first claim after the first handoff
    released_at = models.DateTimeField(null=True, blank=True)  # that agent's hold ended (resolved or handed back)
    queue_wait_s = models.FloatField(null=True, blank=True)  # first handoff -> first claim
    human_first_response_s = models.FloatField(null=True, blank=True)  # first handoff -> first agent message
    resolution_s = models.FloatField(null=True, blank=True)  # created -> resolved
    resolution_business_s = models.FloatField(null=True, blank=True)  # the same within the site's business hours
    # The customer came back: wrote to the resolved conversation, or to the bot after a day of silence.
    reopened_count = models.PositiveIntegerField(default=0)
    # The customer thanked the bot, or said its answer helped, while the bot had the conversation.
    customer_confirmed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["site", "created_at"], name="conversation_site_created"),
            models.Index(fields=["assignee", "created_at"], name="conversation_assignee_created"),
            models.Index(fields=["customer_email"], name="conversation_customer_email"),
            models.Index(fields=["status", "last_message_at"], name="conversation_status_last"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "session_id"], condition=~Q(session_id=""), name="one_conversation_per_api_session"
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_name or 'Customer'} · {self.id}"

    @property
    def channel(self) -> str:
        """Where the customer writes from: the widget, or an integration through the API."""
        return "api" if self.api_key_id or self.session_id else "widget"

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
    # For a bot reply: how it was made (chat.grounding.Grounding: extractive, generative, curated, small_talk,
    # no_knowledge, rules), the knowledge passages it rests on, and whether the fact guard replaced generated text.
    grounding = models.CharField(max_length=16, blank=True)
    sources = models.JSONField(default=list, blank=True)
    fact_guard_tripped = models.BooleanField(default=False)
    # For a bot reply: when each stage before its first text ended, in ms after the customer's message was stored
    # (chat.metrics.REPLY_MARKS: queued, picked_up, retrieval, prompt_built, engine_first_token, first_publish).
    # A stage that did not happen (no engine for a quoted answer) is absent.
    timings = models.JSONField(default=dict, blank=True)
    # The content's search terms, space-separated (Chinese segmented, English stemmed: knowledge.text.terms), for
    # the console's full-text search (a GIN index on PostgreSQL). Private notes are indexed too (staff only).
    search_terms = models.TextField(blank=True, default="")
    # How a customer message arrived: "" (the widget or the API) or "email" (a reply to one of our emails).
    via = models.CharField(max_length=16, blank=True)
    # For an agent message: when it was emailed to a customer who was not there to read it (chat.email).
    emailed_at = models.DateTimeField(null=True, blank=True)
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

    def save(self, *args, **kwargs):
        """Save, with search_terms kept in step with the content whoever writes it (a service, the admin, a retry);
        a save of other fields only (update_fields without "content") leaves them be."""
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "content" in update_fields:
            self.search_terms = message_search_terms(self.content)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "search_terms"}
        super().save(*args, **kwargs)


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


def attachment_path(instance: "Attachment", filename: str) -> str:
    """Where an attachment's file is stored: by date and the attachment's id, never the name its sender gave."""
    return f"attachments/{timezone.now():%Y/%m}/{instance.id.hex}"


def attachment_thumbnail_path(instance: "Attachment", filename: str) -> str:
    return f"attachments/{timezone.now():%Y/%m}/{instance.id.hex}-thumb"


class Attachment(models.Model):
    """A file a customer or an agent sent in a conversation, stored through Django's storage API (chat.attachments).

    Served only to the conversation's customer and its staff, never from a public URL. The type is what the content
    is (checked by its bytes), not what the name says.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="attachments")
    # The message it was sent with (a customer or agent message, its content the caption, possibly empty).
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=255)
    # A small JPEG or PNG of an image, for inline display; empty for other files.
    thumbnail = models.FileField(upload_to=attachment_thumbnail_path, max_length=255, blank=True)
    name = models.CharField(max_length=255)  # the sender's file name, cleaned, for display and download only
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_type}, {self.size} bytes)"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class EmailSuppression(models.Model):
    """An address that asked for no more email from the helpdesk (the unsubscribe link), or that bounced."""

    email = models.EmailField(unique=True)  # lower case
    reason = models.CharField(max_length=32, default="unsubscribed")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"
