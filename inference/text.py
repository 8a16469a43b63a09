"""Text clean-up of model output."""

import re

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
