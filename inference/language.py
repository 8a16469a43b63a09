"""Language tags as the bot uses them: the one place that turns "zh-CN" into "zh" and names languages."""

import re

# Names the system prompt's {{language}} gets, by base language.
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}

# CJK ideographs, kana and hangul: text in these scripts is answered in Chinese.
_CJK_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def language_base(tag: str) -> str:
    """The base language of a BCP 47 tag, lower-cased: "zh-Hans-CN" → "zh", "EN_us" → "en", "" → ""."""
    return re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower() if isinstance(tag, str) else ""


def language_name(tag: str) -> str:
    """How the prompt names the language: "Chinese (简体中文)" for any Chinese tag; unknown tags as given."""
    return LANGUAGE_NAMES.get(language_base(tag), tag)


def language_guess(text: str) -> str:
    """zh when the text is written in Chinese (or Japanese or Korean script), else en."""
    return "zh" if _CJK_SCRIPT.search(text) else "en"
