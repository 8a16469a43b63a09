"""Reads of what staff configured for the bot."""

from inference.fallback import Rule
from inference.models import FallbackRule, SystemPrompt
from inference.prompt import DEFAULT_SYSTEM_PROMPT


def system_prompt_active() -> str:
    """The template of the active system prompt version, or the built-in default when staff made none."""
    prompt = SystemPrompt.objects.filter(is_active=True).only("template").first()
    return prompt.template if prompt else DEFAULT_SYSTEM_PROMPT


def system_prompt_active_version() -> dict:
    """The active template and its version number (0: the built-in default)."""
    prompt = SystemPrompt.objects.filter(is_active=True).only("template", "version").first()
    if prompt is None:
        return {"template": DEFAULT_SYSTEM_PROMPT, "version": 0}
    return {"template": prompt.template, "version": prompt.version}


def fallback_rules() -> list[Rule]:
    """The enabled keyword rules, in the order they are tried."""
    return [
        Rule(keywords=tuple(rule.keyword_list), answer=rule.answer, language=rule.language)
        for rule in FallbackRule.objects.filter(enabled=True).order_by("priority", "id")
    ]
