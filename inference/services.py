"""Writes of the bot's configuration."""

from django.db import transaction
from django.db.models import Max

from inference.models import SystemPrompt


@transaction.atomic
def system_prompt_publish(*, template: str, note: str = "", created_by=None) -> SystemPrompt:
    """Save `template` as the next version and make it the active one. Raises ValidationError on a bad template."""
    SystemPrompt.objects.select_for_update().filter(is_active=True).update(is_active=False)
    version = (SystemPrompt.objects.aggregate(top=Max("version"))["top"] or 0) + 1
    prompt = SystemPrompt(version=version, template=template, note=note, created_by=created_by, is_active=True)
    prompt.full_clean()
    prompt.save()
    return prompt


@transaction.atomic
def system_prompt_activate(*, prompt_id: int) -> SystemPrompt:
    """Go back to (or forward to) an existing version."""
    SystemPrompt.objects.select_for_update().filter(is_active=True).update(is_active=False)
    prompt = SystemPrompt.objects.get(pk=prompt_id)
    prompt.is_active = True
    prompt.save(update_fields=["is_active"])
    return prompt
