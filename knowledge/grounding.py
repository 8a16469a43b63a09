"""The building blocks of grounded answers: the extractive answer (an article's best sentences), the fact guard's
check (every fact in an answer must be in the passages it was given), and small talk, which needs no knowledge."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from knowledge.retrieval import Hit
from knowledge.text import is_chinese, normalize, sentences, terms

# Facts an answer can state, each found by a pattern and compared in a normal form.
# Matched in normalised text (NFKC turns "，" into ","): a URL also ends at a comma and at Chinese text.
_URL = re.compile(r"https?://[^\s)<>\]\"',，。\u3000-\u303f\u3400-\u9fff]+", re.IGNORECASE)
_EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.IGNORECASE)  # ASCII: \w is Chinese too
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_ZH_NUMERAL = re.compile(
    r"[零〇一二两三四五六七八九十百千万]+(?=\s*(?:个|天|日|年|月|周|小时|分钟|元|块|%|倍|次|件|折|工作日|星期))"
)
_ZH_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}


def _zh_numeral_value(text: str) -> int:
    """ "十五" → 15, "二十四" → 24, "三百" → 300, "一万" → 10000."""
    total, number = 0, 0
    for char in text:
        if char in _ZH_DIGITS:
            number = _ZH_DIGITS[char]
        elif char in _ZH_UNITS:
            unit = _ZH_UNITS[char]
            if unit == 10000:
                total, number = (total + number) * unit, 0
            else:
                total, number = total + (number or 1) * unit, 0
    return total + number


def _number_normal(text: str) -> str:
    """ "6.90" and "6.9" are one fact, "1,000" and "1000" too."""
    text = text.replace(",", "")
    if "." in text and ":" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def facts(text: str) -> set[str]:
    """The checkable facts a text states, in normal form: URLs, email addresses, and numbers (prices, durations,
    dates, phone numbers and model numbers are numbers here, so each of their numbers must be backed)."""
    text = normalize(text)
    found = set()
    for url in _URL.findall(text):
        found.add("url:" + url.rstrip(".,;:!?"))
    text = _URL.sub(" ", text)
    for email in _EMAIL.findall(text):
        found.add("email:" + email.rstrip("."))
    text = _EMAIL.sub(" ", text)
    for number in _NUMBER.findall(text):
        found.update("n:" + _number_normal(part) for part in re.split(r"[:]", number) if part)
    for numeral in _ZH_NUMERAL.findall(text):
        found.add(f"n:{_zh_numeral_value(numeral)}")
    return found


def facts_unsupported(answer: str, sources: Iterable[str]) -> list[str]:
    """The facts of `answer` that appear in none of `sources` (the passages the model was given)."""
    backed = set()
    for source in sources:
        backed |= facts(source)
        # "7-10" in a passage backs "7" and "10"; a time "9:00" backs "9".
        backed |= {f"n:{_number_normal(n)}" for n in _NUMBER.findall(normalize(source).replace(":", " "))}
    return sorted(f.split(":", 1)[1] for f in facts(answer) - backed)


@dataclass(frozen=True)
class Extract:
    text: str
    hit: Hit


# What a question asks for, and the sentences that state it: "how long" wants a duration, "how much" a price.
_ASKS = {
    "duration": re.compile(
        r"\bhow long\b|\bhow many (?:days|hours|weeks)\b|\bwhen\b|多久|几天|多长时间|什么时候|多少天", re.I
    ),
    "price": re.compile(r"\bhow much\b|\bcosts?\b|\bprice\b|\bfees?\b|多少钱|费用|价格|运费|收费", re.I),
}
_STATES = {
    "duration": re.compile(
        r"\d\s*(?:[-–至到]\s*\d+\s*)?(?:business |working )?(?:days?|hours?|weeks?|months?|years?|minutes?)\b"
        r"|\d\s*(?:[-–至到]\s*\d+\s*)?(?:个)?(?:工作日|天|小时|周|个月|年|分钟)",
        re.I,
    ),
    "price": re.compile(r"[$¥€£]\s*\d|\d\s*(?:元|块|dollars?|usd|rmb)\b|\bfree\b|免费|包邮", re.I),
}
CONTEXT_SENTENCE_WEIGHT = 0.3  # the earlier turns' terms, when choosing sentences: they pick the topic, not the fact
ASKED_FACT_BONUS = 1.0  # a sentence stating what the question asks for (a duration, a price)
EXTRACT_PASSAGES = 5  # the relevant passages whose sentences compete (retrieval returns at most 5)
SUBJECT_BONUS = 0.5  # a sentence that starts with what the question is about ("Refunds are issued ...")
RETRIEVAL_WEIGHT = 0.5  # the passage's retrieval score, when its sentences compete with another passage's


def extract_answer(question: str, hits: Sequence[Hit], *, context: Sequence[str] = (), max_chars: int = 360) -> Extract:
    """The sentences of the relevant passages that best answer the question, at most `max_chars`.

    Sentences of the best article's relevant passages (up to five) are scored by the question's terms they contain
    (the earlier turns' at a lower weight), plus a bonus when they start with one of the question's words (their
    subject) and when they state what the question asks for (a duration for "how long", a price for "how much"),
    plus half their passage's retrieval score. The best one is kept with the best-scoring others of its passage, in
    the passage's order; that passage is the one cited. A passage whose sentences share nothing with the question
    (it matched by meaning) gives its first sentences.
    """
    wanted = dict.fromkeys(terms(question), 1.0)
    for earlier in context:
        for term in terms(earlier):
            wanted.setdefault(term, CONTEXT_SENTENCE_WEIGHT)
    asks = [kind for kind, pattern in _ASKS.items() if pattern.search(question)]
    if "duration" in asks:
        # "多长时间" / "how long" is the question's form, scored by what a sentence states (a duration), not a topic:
        # its words ("时间") would otherwise favour any sentence that mentions time over the one about the subject.
        form = set(terms(" ".join(m.group(0) for m in _ASKS["duration"].finditer(question))))
        if set(wanted) - form:
            wanted = {t: w for t, w in wanted.items() if t not in form}

    def score(sentence: str) -> float:
        found = terms(sentence)
        present = set(found)
        value = sum(w for t, w in wanted.items() if t in present)
        if value <= 0:
            return 0.0  # a sentence sharing no word with the question is not chosen for what it states
        subject = SUBJECT_BONUS if any(wanted.get(t) == 1.0 for t in found[:2]) else 0.0
        return value + subject + sum(ASKED_FACT_BONUS for kind in asks if _STATES[kind].search(sentence))

    best_hit, best_parts, best_scores, best_value = hits[0], [], [], float("-inf")
    # The best article's passages only: the sentence is chosen within the article retrieval ranked first.
    for hit in [h for h in hits[:EXTRACT_PASSAGES] if h.article_id == hits[0].article_id]:
        parts = sentences(hit.text)
        scores = [score(p) for p in parts]
        value = (max(scores) if scores else 0.0) + RETRIEVAL_WEIGHT * hit.score
        if parts and value > best_value:
            best_hit, best_parts, best_scores, best_value = hit, parts, scores, value
    hit, parts, scores = best_hit, best_parts, best_scores
    if not parts:
        return Extract(hit.text[:max_chars], hit)
    chosen = {max(range(len(parts)), key=lambda i: (scores[i], -i))} if max(scores) > 0 else {0}
    # Add the next best sentences while they fit, best first (ties: the earlier), then the following one.
    for i in sorted(range(len(parts)), key=lambda i: (-scores[i], i)):
        if scores[i] <= 0 or i in chosen:
            continue
        if len(_joined(parts, chosen | {i})) <= max_chars and len(chosen) < 3:
            chosen.add(i)
    if len(chosen) == 1 and (i := next(iter(chosen)) + 1) < len(parts):
        if len(_joined(parts, chosen | {i})) <= max_chars // 1.5:
            chosen.add(i)  # a short answer reads better with the sentence after it
    text = _joined(parts, chosen)
    return Extract(text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…", hit)


def _joined(parts: list[str], chosen: set[int]) -> str:
    pieces = [parts[i] for i in sorted(chosen)]
    if any(not p.endswith(_SENTENCE_ENDS) for p in pieces):  # list items keep their lines
        return "\n".join(pieces)
    return ("" if is_chinese("".join(pieces)) else " ").join(pieces)


_SENTENCE_ENDS = (".", "。", "!", "！", "?", "？", ";", "；", ":", "：")


# Small talk, by kind: answered without knowledge and never handed off. English words may be followed by a few
# more ("thanks a lot", "hello, I have a question"), but not by a question.
_SMALL_TALK_EN = {
    "greeting": r"hi|hello|hey|hiya|good (?:morning|afternoon|evening|day)",
    "thanks": r"thanks?|thank you|thx|ty|cheers|much appreciated",
    "goodbye": r"bye|goodbye|see you|that'?s all|no thanks|nothing else",
    "acknowledgement": r"ok(?:ay)?|cool|great|perfect|got it|nice|awesome|alright|sure|understood",
}
_SMALL_TALK_ZH = {
    "greeting": r"你好|您好|嗨|哈喽|在吗|在不在|有人吗",
    "thanks": r"谢谢|多谢|感谢|谢啦",
    "goodbye": r"再见|拜拜|没事了|没有了|没别的了",
    "acknowledgement": r"好的|好|嗯|行|明白|了解|知道了|收到",
}
_SMALL_TALK = {
    kind: re.compile(
        rf"^\W*(?:(?:{_SMALL_TALK_EN[kind]})\b[\s\w,!.'~]{{0,30}}|(?:{_SMALL_TALK_ZH[kind]})[\W啊呀呢吧了哈的您你]*)$",
        re.IGNORECASE,
    )
    for kind in _SMALL_TALK_EN
}
_QUESTION = re.compile(r"[?？]|\b(?:how|what|when|where|why|which|can|could|do|does|is|are)\b", re.IGNORECASE)


def small_talk_kind(text: str) -> str | None:
    """greeting, thanks, goodbye or acknowledgement, when that is all a short message is; else None."""
    text = text.strip()
    if not text or len(text) > 40 or (_QUESTION.search(text) and not re.search("在吗|在不在|有人吗", text)):
        return None
    return next((kind for kind, pattern in _SMALL_TALK.items() if pattern.match(text)), None)


def is_small_talk(text: str) -> bool:
    """A greeting, a thank-you, an acknowledgement or a goodbye: answered without knowledge, never handed off."""
    return small_talk_kind(text) is not None


# A number of five digits or more, or "#123": an order, a ticket or an account of this customer, which the knowledge
# base cannot know about. Such a question goes to a person.
_CUSTOMER_SPECIFIC = re.compile(r"#\s?\d{3,}|(?<![\d.,])\d{5,}(?![\d.,])")


def customer_specific(text: str) -> bool:
    """Whether a question is about this customer's own order or account (it names its number)."""
    return bool(_CUSTOMER_SPECIFIC.search(normalize(text)))


_PROMPT_ECHO = re.compile(
    r"current time is|the customer is in|customer-service assistant of|answer in (?:english|chinese)|"
    r"\[\[handoff\]\]|system prompt|my instructions|knowledge above|当前时间|客户所在",
    re.IGNORECASE,
)


def prompt_echo(text: str) -> bool:
    """Whether a generated text repeats the system prompt (a small model does: "The customer is in unknown.")."""
    return bool(_PROMPT_ECHO.search(text))
