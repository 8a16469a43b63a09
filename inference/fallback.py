"""The rule fallback: keyword rules that answer when the engine cannot."""

from collections.abc import Iterable
from dataclasses import dataclass

from inference.language import language_base


@dataclass(frozen=True)
class Rule:
    keywords: tuple[str, ...]
    answer: str
    language: str = ""


def rule_answer(text: str, rules: Iterable[Rule], *, language: str = "") -> str | None:
    """The answer of the first rule (in the given order) with a keyword in `text` for this language, or None."""
    lowered = text.casefold()
    base_language = language_base(language)
    for rule in rules:
        if rule.language and language_base(rule.language) != base_language:
            continue
        if any(keyword.casefold() in lowered for keyword in rule.keywords if keyword):
            return rule.answer
    return None
