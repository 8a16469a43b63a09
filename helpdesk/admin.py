"""The staff side in Django's admin. Conversations and tickets change here through the same services as in the
console, so an edit sends the same events, moves the same queue and fires the same webhooks."""

import json
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html

from chat import services as chat_services
from chat.models import Conversation, Message
from helpdesk import invitations, selectors, services
from helpdesk.login_throttle import AdminLoginForm
from helpdesk.models import CannedResponse, CustomerNote, Invitation, Ticket, Webhook, WebhookDelivery
from helpdesk.webhook_destinations import DestinationRefused, destination_check_on_save
from helpdesk.webhooks import webhook_deliveries_resend

# The admin's sign-in is throttled like the staff sign-in page (helpdesk.login_throttle), or it would be the way
# around the limits.
admin.site.login_form = AdminLoginForm


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("seq", "role", "state", "content", "completion_tokens", "ttft_ms", "tokens_per_s", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ConversationForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ("status", "assignee")
        help_texts = {
            "status": "Assign (choose an agent), hand back to the bot, or resolve: each as the console does it."
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "assignee" in self.fields:  # absent for staff who may only view conversations (the fields are read-only)
            self.fields["assignee"].queryset = selectors.console_users()

    def clean(self):
        cleaned = super().clean()
        try:  # self.instance is still the conversation as stored: the form's values are applied after clean()
            services.conversation_staff_action(
                self.instance, status=cleaned.get("status"), assignee=cleaned.get("assignee")
            )
        except chat_services.ActionRefused as exc:
            raise forms.ValidationError(str(exc), code=exc.code) from exc
        return cleaned


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Status and assignee are edited through services.conversation_staff_update; the rest is the record."""

    form = ConversationForm
    list_display = ("id", "site", "customer_name", "customer_email", "status", "language", "region", "created_at")
    list_filter = ("status", "site", "language")
    list_select_related = ("site",)
    search_fields = ("id", "customer_name", "customer_email")
    inlines = [MessageInline]
    actions = ["resolve_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # customers open conversations

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Conversation._meta.fields if f.name not in ("status", "assignee", "secret_hash")]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "assignee":  # choose among the agents; users are not made or edited from here
            widget = field.widget
            widget.can_add_related = widget.can_change_related = widget.can_delete_related = False
            widget.can_view_related = False
        return field

    def get_fields(self, request, obj=None):
        return ["status", "assignee", *self.get_readonly_fields(request, obj)]

    def save_model(self, request, obj: Conversation, form, change: bool) -> None:
        try:
            services.conversation_staff_update(
                conversation_id=obj.pk, status=form.cleaned_data["status"], assignee=form.cleaned_data["assignee"]
            )
        except chat_services.ActionRefused as exc:  # the conversation changed since the form was shown
            messages.error(request, str(exc))

    @admin.action(description="Resolve selected conversations", permissions=["change"])
    def resolve_selected(self, request, queryset) -> None:
        ids = list(queryset.exclude(status=Conversation.Status.RESOLVED).values_list("pk", flat=True))
        for conversation_id in ids:
            chat_services.conversation_resolve(conversation_id=conversation_id)
        self.message_user(request, f"Resolved {len(ids)} conversation(s); the customers are asked to rate them.")


class TicketForm(forms.ModelForm):
    class Meta:
        model = Ticket
        fields = ("subject", "status", "priority", "tags")


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    """Tickets open with their conversations; status, priority, tags and subject change through ticket_update."""

    form = TicketForm
    list_display = ("id", "subject", "status", "priority", "assignee", "tags", "created_at")
    list_filter = ("status", "priority")
    list_select_related = ("assignee",)
    search_fields = ("subject", "tags")
    fields = ("subject", "status", "priority", "tags", "conversation", "assignee", "created_at", "updated_at")
    readonly_fields = ("conversation", "assignee", "created_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False  # a ticket is opened when its conversation is handed to the team

    def save_model(self, request, obj: Ticket, form, change: bool) -> None:
        data = form.cleaned_data
        try:
            services.ticket_update(
                ticket_id=obj.pk,
                agent=request.user,
                status=data["status"],
                priority=data["priority"],
                tags=data["tags"],
                subject=data["subject"],
            )
        except chat_services.ActionRefused as exc:
            messages.error(request, str(exc))


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ("title", "shortcut", "created_at")
    search_fields = ("title", "body", "shortcut")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are made on the invitation page (its link is shown once there); here they are listed and revoked."""

    list_display = ("email", "role", "state", "invited_by", "created_at", "expires_at", "accepted_user")
    list_filter = ("role",)
    list_select_related = ("invited_by", "accepted_user")
    search_fields = ("email",)
    fields = ("email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "accepted_user", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # made on the invitation page, where the one-time link is shown

    @admin.display(description="State")
    def state(self, invitation: Invitation) -> str:
        return invitations.invitation_state(invitation)

    @admin.action(description="Revoke selected invitations", permissions=["change"])
    def revoke_selected(self, request, queryset) -> None:
        revoked = invitations.invitations_revoke(invitation_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Revoked {revoked} invitation(s); their links no longer work.")


@admin.register(CustomerNote)
class CustomerNoteAdmin(admin.ModelAdmin):
    """Notes are written on the customer's profile (helpdesk.customers.customer_note_add); here they are found and
    removed."""

    list_display = ("customer_email", "__str__", "author", "created_at")
    search_fields = ("customer_email", "body")
    readonly_fields = ("customer_email", "body", "author", "created_at")

    def has_add_permission(self, request) -> bool:
        return False


class WebhookForm(forms.ModelForm):
    url = forms.URLField(
        max_length=500, assume_scheme="https", help_text=Webhook._meta.get_field("url").help_text, label="URL"
    )
    events = forms.MultipleChoiceField(
        choices=Webhook.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None chosen: every event.",
    )

    class Meta:
        model = Webhook
        fields = ("name", "url", "events", "is_active")

    def clean_url(self) -> str:
        """Public destinations only (helpdesk.webhook_destinations); checked again at every delivery."""
        url = self.cleaned_data["url"]
        parts = urlsplit(url)
        try:
            destination_check_on_save(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        except (DestinationRefused, ValueError) as exc:
            raise forms.ValidationError(str(exc), code="destination_refused") from exc
        return url


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ("name", "url", "events_display", "is_active", "last_delivery", "deliveries_link")
    list_filter = ("is_active",)
    search_fields = ("name", "url")
    readonly_fields = ("secret", "created_at")
    fields = ("name", "url", "events", "is_active", "secret", "created_at")

    def get_queryset(self, request):
        latest = WebhookDelivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at")
        return super().get_queryset(request).annotate(last_delivery_status=Subquery(latest.values("status")[:1]))

    @admin.display(description="Events")
    def events_display(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events) or "all"

    @admin.display(description="Last delivery", ordering="last_delivery_status")
    def last_delivery(self, webhook: Webhook) -> str:
        return webhook.last_delivery_status or "-"

    @admin.display(description="Deliveries")
    def deliveries_link(self, webhook: Webhook) -> str:
        url = reverse("admin:helpdesk_webhookdelivery_changelist") + f"?webhook__id__exact={webhook.pk}"
        return format_html('<a href="{}">View</a>', url)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Read-only history of what was sent; failed deliveries can be sent again."""

    list_display = ("created_at", "webhook", "event", "status", "attempts", "last_status_code", "delivered_at")
    list_filter = ("status", "event", "webhook")
    list_select_related = ("webhook",)
    search_fields = ("id",)
    date_hierarchy = "created_at"
    actions = ["send_again"]
    fields = (
        "id",
        "webhook",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
        "payload_display",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Payload")
    def payload_display(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Send again", permissions=["change"])
    def send_again(self, request, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        sent = webhook_deliveries_resend(delivery_ids=ids)
        level = messages.SUCCESS if sent else messages.WARNING
        self.message_user(request, f"{sent} of {len(ids)} sent again (delivered ones are not sent twice).", level)
