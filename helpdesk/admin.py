import json

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html

from helpdesk.models import CannedResponse, Ticket, Webhook, WebhookDelivery
from helpdesk.webhooks import webhook_deliveries_resend


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("id", "subject", "status", "priority", "assignee", "tags", "created_at")
    list_filter = ("status", "priority")
    search_fields = ("subject", "tags")
    raw_id_fields = ("conversation",)


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ("title", "shortcut", "created_at")
    search_fields = ("title", "body", "shortcut")


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
