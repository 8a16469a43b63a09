"""Text clean-up of model output."""

import re

from inference.language import language_base

# CJK ideographs, kana, hangul and the CJK punctuation block.
_CJK = re.compile(r"[\u2e80-\u9fff\u3000-\u303f\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_FULLWIDTH = {",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；", "(": "（", ")": "）"}


class FullwidthPunctuation:
    """Streams Chinese text, turning ASCII punctuation that follows a CJK character into its full-width form.

    Feed it the deltas in order; it keeps what it needs across them. Code (inside backticks) is left alone, and so
    are URLs and numbers, because their punctuation never directly follows a CJK character ("3.5", "a.com").
    A ")" is converted when it closes a "(" that was converted.
    """

    def __init__(self) -> None:
        self.previous = ""
        self.in_code = False
        self.open_parens = 0

    def feed(self, text: str) -> str:
        out = []
        for char in text:
            if char == "`":
                self.in_code = not self.in_code
            elif not self.in_code and char in _FULLWIDTH:
                if char == ")" and self.open_parens:
                    self.open_parens -= 1
                    char = _FULLWIDTH[char]
                elif char != ")" and _CJK.match(self.previous):
                    if char == "(":
                        self.open_parens += 1
                    char = _FULLWIDTH[char]
            out.append(char)
            if not char.isspace():
                self.previous = char
        return "".join(out)


def fullwidth_punctuation(text: str) -> str:
    """`FullwidthPunctuation` over a whole text."""
    return FullwidthPunctuation().feed(text)


# What a reply stopped by the token limit ends with when no sentence boundary keeps enough of it.
CUT_NOTES = {"en": "(reply cut short)", "zh": "（回复已截断）"}
# Cutting back to the last sentence end keeps at least this share of the text, or the note is added instead.
CUT_KEEP_MIN_SHARE = 0.5
# Sentence-ending punctuation and the closing quotes or brackets after it. An ASCII one ends a sentence only
# before a space or the end of the text ("3.5", "a.com" do not); a Chinese one ends it wherever it stands.
_SENTENCE_END = re.compile(r"[.!?。！？]+[\"'”’)）」』\]]*")
_LIST_MARKER = re.compile(r"\d+")
# Left off before the ellipsis: a dangling comma or colon reads oddly before it.
_DANGLING = " \t\n,;:，；：、-–—(（…"


def sentence_end_last(text: str) -> int:
    """Where the last complete sentence of `text` ends (0 when none does)."""
    last = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        chinese = any(char in "。！？" for char in match.group())
        if not chinese and end < len(text) and not text[end].isspace():
            continue
        line = text[text.rfind("\n", 0, match.start()) + 1 : match.start()].strip()
        if match.group() == "." and _LIST_MARKER.fullmatch(line):
            continue  # "2." of a numbered list
        last = end
    return last


def reply_cut_short(text: str, language: str) -> str:
    """A reply that the token limit stopped, made not to look complete.

    It is cut back to its last sentence end when that keeps at least CUT_KEEP_MIN_SHARE of it; otherwise it ends with
    "…" and a short note in the reply's language that it was cut. A text that happens to end a sentence stays whole.
    """
    text = text.rstrip()
    end = sentence_end_last(text)
    if end == len(text):
        return text
    if end and end >= CUT_KEEP_MIN_SHARE * len(text):
        return text[:end]
    chinese = language_base(language) == "zh"
    note = CUT_NOTES["zh" if chinese else "en"]
    return text.rstrip(_DANGLING) + "…" + ("" if chinese else " ") + note
