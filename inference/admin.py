from django.contrib import admin, messages

from inference import selectors, services
from inference.models import FallbackRule, SystemPrompt


@admin.register(SystemPrompt)
class SystemPromptAdmin(admin.ModelAdmin):
    """Saving always publishes a new version; old versions stay as they were and can be re-activated."""

    list_display = ("version", "is_active", "note", "created_by", "created_at")
    readonly_fields = ("version", "is_active", "created_by", "created_at")
    fields = ("template", "note", "version", "is_active", "created_by", "created_at")
    actions = ["activate"]

    def get_changeform_initial_data(self, request):
        return {"template": selectors.system_prompt_active()}

    def save_model(self, request, obj, form, change):
        published = services.system_prompt_publish(
            template=form.cleaned_data["template"], note=form.cleaned_data["note"], created_by=request.user
        )
        obj.pk, obj.version = published.pk, published.version
        self.message_user(request, f"Published and activated version {published.version}.", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None):
        return False

    # Activating an old version publishes it again: the right to publish (add) a version, which managers have.
    @admin.action(description="Make the selected version active", permissions=["add"])
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        prompt = services.system_prompt_activate(prompt_id=queryset.get().pk)
        self.message_user(request, f"Version {prompt.version} is active.", messages.SUCCESS)


@admin.register(FallbackRule)
class FallbackRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "language", "priority", "enabled", "updated_at")
    list_filter = ("enabled", "language")
    list_editable = ("priority", "enabled")
    search_fields = ("name", "keywords", "answer")
