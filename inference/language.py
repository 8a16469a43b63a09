"""Language tags as the bot uses them: the one place that turns "zh-CN" into "zh" and names languages."""

import re

# Names the system prompt's {{language}} gets, by base language.
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}

# CJK ideographs, kana and hangul: text in these scripts is answered in Chinese.
_CJK_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def language_base(tag: str) -> str:
    """The base language of a BCP 47 tag, lower-cased: "zh-Hans-CN" → "zh", "EN_us" → "en", "" → ""."""
    return re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower() if isinstance(tag, str) else ""


# A BCP 47 language tag as browsers send them ("en", "zh-Hans-CN", "pt_BR"), up to 16 characters; anything else is
# not a language.
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,4}")


def language_tag_clean(tag, default: str = "en") -> str:
    """The tag if it is one, else `default`: what a client sends as its language is stored and shown as this."""
    return tag if isinstance(tag, str) and len(tag) <= 16 and _TAG.fullmatch(tag) else default


def language_name(tag: str) -> str:
    """How the prompt names the language: "Chinese (简体中文)" for any Chinese tag; other valid tags as given,
    anything that is not a tag as English (it reaches the system prompt)."""
    return LANGUAGE_NAMES.get(language_base(tag), language_tag_clean(tag, "English"))


def language_guess(text: str) -> str:
    """zh when the text is written in Chinese (or Japanese or Korean script), else en."""
    return "zh" if _CJK_SCRIPT.search(text) else "en"
