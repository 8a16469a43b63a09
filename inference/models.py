"""What staff tune about the bot: the system prompt (versioned) and the keyword rules of the fallback."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from inference.prompt import PromptError, prompt_variables_check


def validate_prompt_template(template: str) -> None:
    try:
        prompt_variables_check(template)
    except PromptError as exc:
        raise ValidationError(str(exc)) from exc


class SystemPrompt(models.Model):
    """One version of the system prompt. Versions are never edited: saving a change adds the next version."""

    version = models.PositiveIntegerField(unique=True, editable=False)
    template = models.TextField(
        validators=[validate_prompt_template],
        help_text="Variables: {{company_name}}, {{current_time}}, {{user_region}}, {{language}}.",
    )
    note = models.CharField(max_length=200, blank=True, help_text="What changed in this version.")
    is_active = models.BooleanField(default=False, help_text="The version the bot uses; exactly one at a time.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_prompt")
        ]

    def __str__(self) -> str:
        return f"v{self.version}{' (active)' if self.is_active else ''}"


class FallbackRule(models.Model):
    """A canned answer given when the engine fails or is too slow and the customer's message has a keyword."""

    name = models.CharField(max_length=100)
    keywords = models.TextField(help_text="One keyword or phrase per line; matched case-insensitively.")
    answer = models.TextField()
    language = models.CharField(max_length=16, blank=True, help_text="e.g. en or zh; empty for every language.")
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower numbers are tried first.")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def keyword_list(self) -> list[str]:
        return [k.strip() for k in self.keywords.splitlines() if k.strip()]
