from django.contrib import admin

from helpdesk.models import CannedResponse, Ticket


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
