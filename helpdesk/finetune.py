"""The fine-tuning export (`manage.py export_finetune`): finished conversations as chat-format JSONL, scrubbed.

One line per conversation, the chat format of OpenAI's fine-tuning API and Hugging Face TRL:
`{"messages": [{"role": "system" | "user" | "assistant", "content": ...}, ...], "metadata": {...}}`.

Which conversations, and whose words are the targets (the assistant turns):
- Only resolved conversations: an open one may still change.
- Bot conversations (never handed off, no agent message) when rated at least `min_rating`; the bot's replies are
  the assistant turns. Unrated ones are skipped: nobody said the answers were good.
- Human-handled conversations (handed off, or an agent wrote): the agents' replies are the assistant turns. The
  bot's replies stay in only when the conversation was rated at least `min_rating`; otherwise they are dropped,
  so no bot text that led to a handoff is learnt, and the customer's messages around them join the next user turn
  (what the agent read before answering). Rated below the minimum: skipped. Unrated: exported.
- Turns: customer → user, bot and agent → assistant. System messages and private notes never go out, nor failed,
  streaming or empty messages. Consecutive turns of one role are joined with a newline; leading assistant turns
  (a greeting) and trailing user turns (a last "thanks") are cut, so an example starts with the user and ends on
  an answer. The system turn is the given template (by default the active system prompt) rendered with the
  conversation's variables, its time being the conversation's start.

What is scrubbed (see `Scrubber`): email addresses, phone numbers, order numbers and other identifiers, and the
names and email the conversation knows (the customer's, the agents'), in every turn, the system turn included.
Not caught: names the conversation does not know, street addresses, a 7-digit local number with no label
(555-1234 reads like a range). Never exported: rating comments, handoff summaries, and the knowledge passages a
grounded answer rested on (the metadata names the answer modes and the articles' slugs, so such examples can be
told apart or dropped).

Conversations are read in chunks (`iterator(chunk_size)` with their messages prefetched per chunk), so memory does
not grow with the number exported; the skip reasons decided from the conversation row alone are counted by the
database in one query.
"""

import datetime
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    OuterRef,
    Prefetch,
    Q,
    Value,
    When,
)
from django.db.models.query import QuerySet
from django.utils import timezone

from chat.models import Conversation, Message, Site
from chat.prompting import prompt_variables
from inference.language import language_base
from inference.prompt import prompt_variables_check, system_prompt_render

EMAIL, PHONE, ORDER, NAME, AGENT = "[EMAIL]", "[PHONE]", "[ORDER]", "[NAME]", "[AGENT]"
KINDS = ("bot", "human", "all")
DEFAULT_MIN_RATING = 4

# Why a conversation was left out, as the command reports it.
SKIP_REASONS = {
    "still_open": "not resolved yet",
    "rating_below_minimum": "rated below the minimum",
    "unrated_bot_conversation": "the bot alone answered and nobody rated it",
    "handed_off_without_agent_answer": "handed off, but no agent answered",
    "no_assistant_turn": "no answer after a customer message",
    "no_user_turn": "no customer message",
}

# ---------------------------------------------------------------------------------------------------------------
# Scrubbing

# Full-width forms (Chinese input methods type them) read as ASCII, one character for one, so "１３８" matches like
# "138" and the spans found stay aligned with the original text.
_HALF_WIDTH = str.maketrans({**{chr(0xFF01 + i): chr(0x21 + i) for i in range(94)}, "\u3000": " ", "\u00a0": " "})
_NB, _NA = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"  # no ASCII letter or digit before / after (CJK may touch)
_KEEP = ""  # a rule's verdict: keep the text as it is and let no later rule touch it


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    verdict: Callable[[str], str | None]  # the placeholder, _KEEP, or None (not this rule's business)
    group: str | int = 0


def _always(placeholder: str) -> Callable[[str], str]:
    return lambda _text: placeholder


def _phone_if(low: int, high: int = 15) -> Callable[[str], str | None]:
    return lambda text: PHONE if low <= _digits(text) <= high else None


_TLD_DOT = r"(?:\.|\s*[(\[{<]\s*dot\s*[)\]}>]\s*)"
_EMAIL_RULES = [
    # ann.lee+shop@example.co.uk, ann @ example.com, ann(at)example(dot)com, ann%40example.com (in a URL)
    _Rule(
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+(?:\s*@\s*|%40|\s*[(\[{<]\s*at\s*[)\]}>]\s*)"
            rf"[A-Za-z0-9-]+(?:{_TLD_DOT}[A-Za-z0-9-]+)*{_TLD_DOT}[A-Za-z]{{2,}}(?![A-Za-z0-9-])",
            re.IGNORECASE,
        ),
        _always(EMAIL),
    ),
    # ann at example dot com (spelled out, common top-level domains only)
    _Rule(
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+\s+at\s+[A-Za-z0-9-]+(?:\s+dot\s+[A-Za-z0-9-]+)*"
            r"\s+dot\s+(?:com|net|org|edu|gov|io|cn|uk|de|fr|jp|co)(?![A-Za-z])",
            re.IGNORECASE,
        ),
        _always(EMAIL),
    ),
    # whatever is left before an @domain (a local part in Chinese: 张三@example.com)
    _Rule(re.compile(r"[^\s@]*@\s*[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])"), _always(EMAIL)),
]


def _date_verdict(text: str) -> str | None:
    """Keep a plausible date (month 1-12, day 1-31), not 12-34-5678."""
    first, second, third = (int(n) for n in re.findall(r"\d+", text)[:3])
    month_day = (second, third) if re.match(r"\d{4}", text) else (first, second)  # or dd.mm.yyyy, mm/dd/yyyy
    return _KEEP if 1 <= min(month_day) <= 12 and max(month_day) <= 31 else None


_PROTECT_RULES = [
    # dates and times: 2024-01-15, 2024/1/5 10:30, 15.01.2024 (never a phone or an order number)
    _Rule(
        re.compile(
            _NB + r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"
            r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?" + _NA
        ),
        _date_verdict,
    ),
    # amounts: $25, ¥1,299.00, 3000元, 25 USD
    _Rule(
        re.compile(
            r"[$¥€£￥]\s?\d[\d,]*(?:\.\d+)?"
            r"|"
            + _NB
            + r"\d[\d,]*(?:\.\d+)?\s?(?:元|块|美元|欧元|英镑|(?:USD|RMB|CNY|EUR|GBP|dollars?|yuan)(?![A-Za-z]))",
            re.IGNORECASE,
        ),
        _always(_KEEP),
    ),
]

_PHONE_LABELLED = _Rule(
    # phone: 5550100123, tel. +44 20 7946 0958, 手机号：13812345678, 电话 021-1234567
    re.compile(
        r"(?:(?:phone|tel|mobile|cell|whats\s?app|fax|call(?:\s+me)?(?:\s+(?:at|on))?|text\s+me(?:\s+at)?)"
        r"(?![A-Za-z])|电话|手机|座机|联系方式)"
        r"(?:\s*(?:number|no\.?|#|号码?))?\s*(?:is\s+|:\s*)?(?P<v>\+?\(?\d[\d ().-]{4,}\d)",
        re.IGNORECASE,
    ),
    _phone_if(6),
    "v",
)

# Quantities with a unit and sizes, not identifiers: 10000mAh, 1080p, 500ml, 1920x1080.
_MEASURE = re.compile(r"\d{1,5}[A-Za-z]{1,4}|\d{1,5}x\d{1,5}", re.IGNORECASE)


def _labelled_code(code: str) -> bool:
    """After an order label: "#" and 3 more characters, 4 characters with a letter, or 5 digits (not 100pcs)."""
    if not _digits(code) or _MEASURE.fullmatch(code):
        return False
    if code.startswith("#") or re.search(r"[A-Za-z]", code):
        return len(code) >= 4
    return _digits(code) >= 5


_ORDER_LABELLED = _Rule(
    # order #A12345, order number: 12345, tracking no. SF1234567890, 订单号 202312010001, 运单号：YT123456789
    re.compile(
        r"(?:(?:orders?|invoice|tracking|shipment|parcel|package|reference|ref|receipt|transaction|case|ticket"
        r"|booking|reservation|confirmation)(?![A-Za-z])|订单|单号|运单|快递单|发票|物流|工单)"
        r"\s*(?:(?:number|no\.?|id|code|num|号码?|编号)\s*)?(?:is\s+|:\s*)?(?P<v>#?[A-Za-z0-9][A-Za-z0-9/_-]*)",
        re.IGNORECASE,
    ),
    lambda code: ORDER if _labelled_code(code) else None,
    "v",
)

_PHONE_RULES = [
    # international: +86 138 1234 5678, +1 (555) 123-4567, 0044 20 7946 0958
    _Rule(re.compile(r"(?<![0-9A-Za-z+])(?:\+|00)\s?\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,6}" + _NA), _phone_if(8)),
    # Chinese mobile: 13812345678, 138 1234 5678, 138-1234-5678
    _Rule(re.compile(_NB + r"1[3-9]\d[ -]?\d{4}[ -]?\d{4}" + _NA), _always(PHONE)),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
    _Rule(re.compile(_NB + r"(?:1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}" + _NA), _always(PHONE)),
    # Chinese landline: 010-12345678, (0755) 1234567
    _Rule(re.compile(_NB + r"(?:\(0\d{2,3}\)\s?|0\d{2,3}[ -])\d{7,8}" + _NA), _always(PHONE)),
    # other grouped numbers: 020 7946 0958, 06 12 34 56 78 (8-15 digits); longer ones (cards) are identifiers
    _Rule(
        re.compile(_NB + r"\d{2,5}(?:[ .-]\d{2,5}){2,5}" + _NA),
        lambda text: PHONE if 8 <= _digits(text) <= 15 else ORDER if _digits(text) > 15 else None,
    ),
]


def _identifier_verdict(token: str) -> str | None:
    digits = _digits(token)
    if re.search(r"[A-Za-z]", token):  # ORD-2024-00123, A12345, SF1234567890, 11010519491231002X
        return ORDER if digits >= 4 and not _MEASURE.fullmatch(token) else None
    groups = re.split(r"[-_]", token)
    if len(groups) == 1:  # a run of 6 or more digits: 202312010001
        return ORDER if digits >= 6 else None
    # digits joined by dashes (2024-00123), but not a range (1000-2000)
    is_range = len(groups) == 2 and all(len(g) <= 4 for g in groups)
    return ORDER if digits >= 8 and not is_range else None


_ORDER_RULES = [
    # #A123, #12345 (but not #1 or #12)
    _Rule(re.compile(r"#[A-Za-z0-9-]*\d[A-Za-z0-9-]*"), lambda text: ORDER if len(text) >= 4 else None),
    # identifier-like tokens; never the tail of a decimal number (3.1415926)
    _Rule(
        re.compile(r"(?<![A-Za-z0-9])(?<!\d[.,])(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*(?![A-Za-z0-9])"),
        _identifier_verdict,
    ),
]

_CJK = re.compile(r"[\u3400-\u9fff]")
_HONORIFICS = "先生|女士|小姐|老师|同学|经理"


def _name_rules(names: Iterable[str], placeholder: str) -> list[_Rule]:
    """The rules that find these people's names: the whole name in any case; a Latin name's parts as written (or
    capitalized), since "Will" or "He" in lower case are ordinary words; a Chinese name's given name and its
    surname with an honorific (李先生)."""
    rules = []
    for name in {" ".join(n.split()) for n in names if n and len(n.strip()) >= 2}:
        if _CJK.search(name):
            compact = name.replace(" ", "")
            forms = {compact, name} | ({compact[1:]} if len(compact) >= 3 else set())
            alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
            rules.append(_Rule(re.compile(alternatives), _always(placeholder)))
            rules.append(_Rule(re.compile(re.escape(compact[0]) + f"(?={_HONORIFICS})"), _always(placeholder)))
            continue
        rules.append(_Rule(re.compile(_NB + re.escape(name) + _NA, re.IGNORECASE), _always(placeholder)))
        parts = {form for part in name.split() if len(part) >= 2 for form in (part, part.capitalize(), part.upper())}
        if parts:
            alternatives = "|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True))
            rules.append(_Rule(re.compile(_NB + f"(?:{alternatives})" + _NA), _always(placeholder)))
    return rules


class Scrubber:
    """Replaces personal data in a text with placeholders: [EMAIL], [PHONE], [ORDER], [NAME], [AGENT].

    Rules run in this order, and text one rule replaced or kept is not looked at again:
    1. the conversation's known email addresses, then any email address (also "ann (at) example (dot) com");
    2. kept as they are: dates and times (2024-01-15 10:30), amounts with a currency ($25, ¥1,299, 300元);
    3. a number of 6 or more digits after a phone label (phone, tel, call me at, 电话, 手机...) → [PHONE]; a code
       after an order label (order, tracking, invoice, ref, 订单号, 运单...) → [ORDER] when it has 5 digits, or 4
       characters with a letter and a digit, or a # (order #A12345, 订单号 202312010001; not "order 3 items");
    4. phone shapes → [PHONE]: international (+ or 00), Chinese mobiles (13812345678, 138 1234 5678), North
       American ((555) 123-4567, 555-123-4567), Chinese landlines (010-12345678), other numbers of 8-15 digits in
       groups (06 12 34 56 78);
    5. identifiers → [ORDER]: #123 and longer, tokens mixing letters with 4 or more digits (ORD-2024-00123,
       A12345; not units like 10000mAh or 1080p), runs of 6 or more digits, dashed numbers of 8 or more digits
       that are not a range, grouped numbers over 15 digits (card numbers);
    6. the customer's and the agents' names → [NAME], [AGENT].
    Ordinary numbers stay: prices, durations and ranges (3-5 business days), years, quantities, versions.
    Full-width digits and signs are read like ASCII ones.
    """

    def __init__(self, *, emails: Iterable[str] = (), names: Iterable[str] = (), agent_names: Iterable[str] = ()):
        known = sorted({e.strip() for e in emails if e and e.strip()}, key=len, reverse=True)
        known_rules = [_Rule(re.compile(re.escape(e), re.IGNORECASE), _always(EMAIL)) for e in known]
        self.rules = [
            *known_rules,
            *_EMAIL_RULES,
            *_PROTECT_RULES,
            _PHONE_LABELLED,
            _ORDER_LABELLED,
            *_PHONE_RULES,
            *_ORDER_RULES,
            *_name_rules(names, NAME),
            *_name_rules(agent_names, AGENT),
        ]

    def scrub(self, text: str) -> str:
        # Pieces of the text, each with what the rules read (its half-width form), or None once a rule settled it.
        pieces: list[tuple[str, str | None]] = [(text, text.translate(_HALF_WIDTH))]
        for rule in self.rules:
            pieces = _apply(pieces, rule)
        return "".join(piece for piece, _shadow in pieces)


def _apply(pieces: list[tuple[str, str | None]], rule: _Rule) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for text, shadow in pieces:
        if shadow is None:
            out.append((text, None))
            continue
        last = 0
        for match in rule.pattern.finditer(shadow):
            start, end = match.span(rule.group)
            verdict = rule.verdict(match.group(rule.group)) if start >= 0 else None
            if verdict is None:
                continue
            if start > last:
                out.append((text[last:start], shadow[last:start]))
            out.append((text[start:end] if verdict == _KEEP else verdict, None))
            last = end
        if last < len(text):
            out.append((text[last:], shadow[last:]))
    return out


def scrub(text: str, *, emails: Iterable[str] = (), names: Iterable[str] = ()) -> str:
    """`text` without personal data (see Scrubber); `emails` and `names` are ones known to belong to the customer."""
    return Scrubber(emails=emails, names=names).scrub(text)


# ---------------------------------------------------------------------------------------------------------------
# Export


@dataclass(frozen=True)
class ExportOptions:
    since: datetime.datetime | None = None  # conversations started at or after
    until: datetime.datetime | None = None  # ... and before
    language: str = ""  # base language: "zh" takes zh-CN too
    site: Site | None = None
    min_rating: int = DEFAULT_MIN_RATING
    kind: str = "all"  # bot, human or all
    system_prompt: str | None = None  # a template with {{variables}}; None: no system turn


@dataclass
class ExportStats:
    written: Counter = field(default_factory=Counter)  # by kind
    skipped: Counter = field(default_factory=Counter)  # by reason (SKIP_REASONS)


_MODEL_ROLES = {Message.Role.CUSTOMER: "user", Message.Role.BOT: "assistant", Message.Role.AGENT: "assistant"}


def conversations_for_export(options: ExportOptions) -> QuerySet[Conversation]:
    """The conversations the filters select, annotated with `is_human` and `skip_reason` ("" when exportable)."""
    agent_answer = Message.objects.filter(
        conversation=OuterRef("pk"), role=Message.Role.AGENT, state=Message.State.COMPLETE
    ).exclude(content="")
    rows = Conversation.objects.annotate(has_agent_answer=Exists(agent_answer)).annotate(
        is_human=ExpressionWrapper(
            Q(handed_off_at__isnull=False) | Q(has_agent_answer=True), output_field=BooleanField()
        )
    )
    if options.since:
        rows = rows.filter(created_at__gte=options.since)
    if options.until:
        rows = rows.filter(created_at__lt=options.until)
    if options.site:
        rows = rows.filter(site=options.site)
    if options.language:
        base = language_base(options.language)
        rows = rows.filter(
            Q(language__iexact=base) | Q(language__istartswith=f"{base}-") | Q(language__istartswith=f"{base}_")
        )
    if options.kind != "all":
        rows = rows.filter(is_human=options.kind == "human")
    return rows.annotate(
        skip_reason=Case(
            When(~Q(status=Conversation.Status.RESOLVED), then=Value("still_open")),
            When(rating__score__lt=options.min_rating, then=Value("rating_below_minimum")),
            When(is_human=False, rating__isnull=True, then=Value("unrated_bot_conversation")),
            When(is_human=True, has_agent_answer=False, then=Value("handed_off_without_agent_answer")),
            default=Value(""),
            output_field=CharField(),
        )
    )


def _agent_names(messages: Sequence[Message]) -> set[str]:
    authors = {m.author for m in messages if m.role == Message.Role.AGENT and m.author is not None}
    return {name for a in authors for name in (a.get_full_name(), a.first_name, a.last_name) if name.strip()}


def conversation_example(
    conversation: Conversation, messages: Sequence[Message], *, min_rating: int, system_prompt: str | None
) -> dict | str:
    """One conversation as a training example, or the reason (a key of SKIP_REASONS) it cannot be one.

    `messages` are the conversation's messages in order; `system_prompt` a template, or None for no system turn.
    """
    rating = getattr(conversation, "rating", None)
    rated_well = rating is not None and rating.score >= min_rating
    human = bool(conversation.handed_off_at) or any(m.role == Message.Role.AGENT for m in messages)
    scrubber = Scrubber(
        emails=[conversation.customer_email], names=[conversation.customer_name], agent_names=_agent_names(messages)
    )
    turns: list[dict] = []
    used: list[list[Message]] = []  # the messages behind each turn
    for message in messages:
        role = _MODEL_ROLES.get(message.role)
        content = message.content.strip()
        if role is None or message.state != Message.State.COMPLETE or not content:
            continue
        if human and message.role == Message.Role.BOT and not rated_well:
            continue
        text = scrubber.scrub(content)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n" + text
            used[-1].append(message)
        else:
            turns.append({"role": role, "content": text})
            used.append([message])
    roles = {turn["role"] for turn in turns}
    while turns and turns[0]["role"] == "assistant":
        del turns[0], used[0]
    while turns and turns[-1]["role"] == "user":
        del turns[-1], used[-1]
    if not turns:
        return "no_user_turn" if "assistant" in roles and "user" not in roles else "no_assistant_turn"
    if system_prompt is not None:
        variables = prompt_variables(language=conversation.language, region=conversation.region)
        system = system_prompt_render(system_prompt, variables, now=timezone.localtime(conversation.created_at))
        turns.insert(0, {"role": "system", "content": Scrubber().scrub(system)})
    answers = [m for group in used for m in group if m.role == Message.Role.BOT]
    metadata = {
        "conversation_id": str(conversation.id),
        "kind": "human" if human else "bot",
        "site": conversation.site.key if conversation.site_id else None,
        "channel": conversation.channel,
        "language": conversation.language,
        "created_at": conversation.created_at.isoformat(),
        "rating": rating.score if rating is not None else None,
        "handoff_reason": conversation.handoff_reason or None,
        "bot_answers": len(answers),
        "agent_answers": sum(m.role == Message.Role.AGENT for group in used for m in group),
        "groundings": sorted({m.grounding for m in answers if m.grounding}),
        "sources": sorted({s["slug"] for m in answers for s in m.sources if isinstance(s, dict) and s.get("slug")}),
    }
    return {"messages": turns, "metadata": metadata}


def jsonl_line(example: dict) -> str:
    """One JSON line; the line separators str.splitlines() would split on are escaped too."""
    text = json.dumps(example, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085") + "\n"


def export_write(stream: TextIO, options: ExportOptions, *, chunk_size: int = 500) -> ExportStats:
    """Write the selected conversations to `stream` as JSONL, oldest first; return what was written and skipped."""
    if options.system_prompt is not None:
        prompt_variables_check(options.system_prompt)  # PromptError before anything is written
    rows = conversations_for_export(options)
    stats = ExportStats()
    for row in rows.exclude(skip_reason="").values("skip_reason").annotate(n=Count("pk")).order_by():
        stats.skipped[row["skip_reason"]] += row["n"]
    messages = (
        Message.objects.filter(role__in=list(_MODEL_ROLES), state=Message.State.COMPLETE)
        .exclude(content="")
        .select_related("author")
        .order_by("seq")
    )
    exportable = (
        rows.filter(skip_reason="")
        .select_related("site", "rating")
        .prefetch_related(Prefetch("messages", queryset=messages, to_attr="export_messages"))
        .order_by("created_at", "pk")
    )
    for conversation in exportable.iterator(chunk_size=chunk_size):
        example = conversation_example(
            conversation,
            conversation.export_messages,
            min_rating=options.min_rating,
            system_prompt=options.system_prompt,
        )
        if isinstance(example, str):
            stats.skipped[example] += 1
            continue
        stream.write(jsonl_line(example))
        stats.written[example["metadata"]["kind"]] += 1
    return stats
