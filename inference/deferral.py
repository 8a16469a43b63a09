"""Deferral: when the conversation should go to a person instead of the bot.

Two signals are read here: the customer asking for a person (in Chinese or English), and the model's reserved
HANDOFF_SIGNAL, which the system prompt teaches and which is cut out of the stream before the customer sees any
character of it.
"""

import re

HANDOFF_SIGNAL = "[[HANDOFF]]"

_ASK_ZH = re.compile(r"转人工|人工客服|人工服务|找人工|要人工|真人客服|客服人员|接人工")
# Phrases that mean "a person, please" wherever they stand.
_ASK_EN = re.compile(
    r"\b(?:talk|speak|chat|connect me|put me through)\b[^.?!]{0,20}\b(?:agent|human|person|someone|representative|"
    r"operator|staff)\b|\b(?:real|live|actual) (?:person|human|agent)\b|\bhuman (?:agent|support|being)\b|"
    r"\b(?:want|need|get|give me) (?:(?:a|an|to) )?(?:human|agent|person|representative)\b",
    re.IGNORECASE,
)
# A short message that is just the word ("human", "agent please").
_ASK_EN_SHORT = re.compile(r"^\W*(?:a )?(?:human|agent|person|representative|operator)\b[\w\s,!.]*$", re.IGNORECASE)


_SPACES = re.compile(r"\s+")


def customer_asks_for_human(text: str) -> bool:
    """Whether a customer message asks for a person rather than the bot.

    Whitespace runs become one space first, and the patterns never let two quantifiers compete for the same
    characters: the time stays linear in the message's length, whatever a customer crafts ("want" and 4,000 tabs
    took a second with two whitespace quantifiers side by side).
    """
    text = _SPACES.sub(" ", text)
    if _ASK_ZH.search(text) or _ASK_EN.search(text):
        return True
    return len(text.split()) <= 4 and bool(_ASK_EN_SHORT.match(text.strip()))


class DeferralFilter:
    """Passes streamed text through, holding back anything that could be the start of HANDOFF_SIGNAL.

    `feed()` returns what is safe to show now; once the signal is seen, `deferred` is True and nothing more is
    shown. `flush()` returns what was held back when the stream ends without the signal.
    """

    def __init__(self, signal: str = HANDOFF_SIGNAL):
        self.signal = signal
        self.held = ""
        self.deferred = False

    def feed(self, text: str) -> str:
        if self.deferred:
            return ""
        buffer = self.held + text
        index = buffer.find(self.signal)
        if index >= 0:
            self.deferred = True
            self.held = ""
            return buffer[:index]
        # Keep the longest tail of the buffer that is a prefix of the signal.
        for size in range(min(len(self.signal) - 1, len(buffer)), 0, -1):
            if self.signal.startswith(buffer[-size:]):
                self.held = buffer[-size:]
                return buffer[:-size]
        self.held = ""
        return buffer

    def flush(self) -> str:
        held, self.held = ("", "") if self.deferred else (self.held, "")
        return held
