"""Grounding: the pipeline's knowledge steps, so that every bot output a customer reads states only the company's
facts.

For each customer turn the pipeline asks `plan()` how to answer:

- small talk ("hi", "谢谢") needs no knowledge: the model answers, guarded (no fact, no echo of its prompt), or,
  in extractive mode, the helpdesk's own words;
- a question about the customer's own order or account (it names its number) goes to a person: no article knows;
- otherwise the knowledge base is searched (knowledge.retrieval). Nothing over the threshold: the bot says it
  cannot confirm and the conversation goes to a person (`no_knowledge`);
- a curated answer (an article marked as one) matching over KNOWLEDGE_FAQ_MIN_SCORE is returned as written;
- extractive mode (the default for small models): the cited article's best sentences, without the model;
- generative mode (capable models): the passages go into the system prompt with ids, the model answers and cites
  them, and every sentence passes the fact guard before it is published (`FactGate`).

Checked as the answer streams, a sentence at a time: a sentence is published only once its facts are backed. When
one is not, the engine is stopped and the extractive answer follows what was already published.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from chat import strings
from chat.metrics import RETRIEVALS
from chat.prompting import attachment_notes_for_staff, without_attachment_notes
from inference.engines import Engine
from inference.types import ChatTurn
from knowledge.grounding import customer_specific, extract_answer, facts_unsupported, prompt_echo, small_talk_kind
from knowledge.retrieval import Hit, Retrieval, retrieve
from knowledge.selectors import article_body
from knowledge.text import text_language


class Grounding:
    """How an answer was made, stored on the bot message."""

    EXTRACTIVE = "extractive"  # the cited article's sentences, no model
    GENERATIVE = "generative"  # the model, from the passages it was given, fact-guarded
    CURATED = "curated"  # a curated answer, as written
    SMALL_TALK = "small_talk"  # the model, for a greeting or a thank-you, fact-guarded
    NO_KNOWLEDGE = "no_knowledge"  # nothing relevant: the bot says so and a person takes over
    RULES = "rules"  # the engine failed; a staff-written keyword rule answered
    ATTACHMENT = "attachment"  # a file sent without a word: fixed words saying the bot cannot see it (chat.reply)
    UNGROUNDED = ""  # not a customer answer (summaries, suggestions)


MODES = ("extractive", "generative")
SMALL_TALK_MAX_TOKENS = 48
GENERATIVE_PASSAGES = 3
CONTEXT_TURNS = 2  # the customer's earlier turns a follow-up is read with


@dataclass(frozen=True)
class Source:
    """A passage an answer rests on, as clients see it."""

    article_id: int
    slug: str
    title: str
    url: str
    passage_id: int
    score: float

    @classmethod
    def from_hit(cls, hit: Hit) -> "Source":
        return cls(hit.article_id, hit.slug, hit.title, hit.url, hit.passage_id, hit.score)

    def as_dict(self) -> dict:
        return {
            "article_id": self.article_id,
            "slug": self.slug,
            "title": self.title,
            "url": self.url,
            "passage_id": self.passage_id,
            "score": self.score,
        }


@dataclass
class Plan:
    """How the pipeline answers one customer turn."""

    grounding: str
    mode: str
    question: str
    context: list[str]
    language: str
    retrieval: Retrieval | None = None
    text: str | None = None  # the answer, when no engine is needed
    sources: list[Source] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)  # given to the model (generative)

    @property
    def needs_engine(self) -> bool:
        return self.text is None

    def fallback(self) -> tuple[str, "Source"] | None:
        """The extractive answer and its source, when a relevant passage exists (the engine failed, or the guard
        tripped)."""
        if self.retrieval is None or not self.retrieval.relevant:
            return None
        text, quoted = extractive_answer(self.question, self.retrieval.relevant, self.context, self.language)
        return text, Source.from_hit(quoted)


def answer_mode(engine: Engine | None, requested: str | None = None) -> str:
    """extractive or generative: as requested, else KNOWLEDGE_ANSWER_MODE, whose `auto` follows the model's size
    (and is extractive while no model can be loaded)."""
    mode = requested or settings.KNOWLEDGE_ANSWER_MODE
    if mode in MODES:
        return mode
    return "generative" if engine is not None and engine.trusted_with_facts else "extractive"


def extractive_answer(question: str, hits: Sequence[Hit], context: Sequence[str], language: str) -> tuple[str, Hit]:
    """The extractive answer (a lead naming the article, then its sentences) and the passage it quotes."""
    extract = extract_answer(question, hits, context=context)
    return strings.text("kb_lead", language, title=extract.hit.title) + "\n" + extract.text, extract.hit


def extractive_text(question: str, hits: Sequence[Hit], context: Sequence[str], language: str) -> str:
    return extractive_answer(question, hits, context, language)[0]


def plan(
    *,
    history: Sequence[ChatTurn],
    language: str,
    site: str,
    engine: Engine | None,
    mode: str | None = None,
    counted: bool = True,
) -> Plan:
    """Search the knowledge for the newest user turn and decide how it is answered.

    `counted`: whether the search counts in helpdesk_knowledge_retrievals_total (not for staff trying questions)."""
    # Searched for the customer's words only: the notes of files they sent (chat.prompting) are for the model.
    users = [without_attachment_notes(turn.content) for turn in history if turn.role == "user"]
    question, context = (users[-1] if users else ""), users[-1 - CONTEXT_TURNS : -1]
    language = text_language(question, language)  # a question written in Chinese is answered in Chinese
    chosen = answer_mode(engine, mode)
    if kind := small_talk_kind(question):
        # A small model's small talk wanders ("I'm a human translator"): it gets the helpdesk's own words.
        canned = strings.text(f"small_talk_{kind}", language) if chosen == "extractive" else None
        return Plan(Grounding.SMALL_TALK, chosen, question, context, language, text=canned)
    if customer_specific(question):
        if counted:
            RETRIEVALS.labels(result="customer_specific").inc()
        text = strings.text("no_knowledge_own", language)
        return Plan(Grounding.NO_KNOWLEDGE, chosen, question, context, language, text=text)
    retrieval = retrieve(question, language=language, site=site, context=context)
    relevant = retrieval.relevant
    if counted:
        RETRIEVALS.labels(result="hit" if relevant else "miss").inc()
    base = {"mode": chosen, "question": question, "context": context, "language": language, "retrieval": retrieval}
    if not relevant:
        return Plan(Grounding.NO_KNOWLEDGE, text=strings.text("no_knowledge", language), **base)
    best = relevant[0]
    if best.is_faq and best.score >= settings.KNOWLEDGE_FAQ_MIN_SCORE:
        body = article_body(best.article_id) or best.text
        return Plan(Grounding.CURATED, text=body, sources=[Source.from_hit(best)], **base)
    if chosen == "extractive":
        text, quoted = extractive_answer(question, relevant, context, language)
        return Plan(Grounding.EXTRACTIVE, text=text, sources=[Source.from_hit(quoted)], **base)
    passages = relevant[:GENERATIVE_PASSAGES]
    return Plan(Grounding.GENERATIVE, passages=passages, sources=[Source.from_hit(h) for h in passages], **base)


KNOWLEDGE_INSTRUCTIONS = """
Answer ONLY from the help-center passages below, in the customer's language, in at most three sentences, and cite
the passage you used like [1]. Copy prices, times and contact details exactly as written there. If the passages do
not answer the question, answer only [[HANDOFF]].
{passages}"""


def system_with_passages(system: str, passages: Sequence[Hit]) -> str:
    listed = "\n".join(f"[{i}] {h.title} — {h.heading}: {h.text}" for i, h in enumerate(passages, start=1))
    return system + "\n" + KNOWLEDGE_INSTRUCTIONS.format(passages=listed)


class GuardTripped(Exception):
    """A generated sentence stated a fact found in no passage (or echoed the prompt); its facts are the message."""


_SENTENCE = re.compile(r".+?(?:[。!?!?]+|[.?!]+(?=\s)|\n+)", re.DOTALL)
_CITATION = re.compile(r"\s*\[(\d{1,2})\]")
# A list item's number ("1.", "2)", "3、") is the list's, not a fact: it is not checked.
_LIST_MARKER = re.compile(r"^\s*\d{1,2}(?:[.)、]|\s*[.)])(?=\s|$)")


class FactGate:
    """Lets generated text through a sentence at a time, once each sentence's facts appear in `backing`.

    Sentences echoing the system prompt are dropped; citation markers ("[1]") are taken out and remembered; a list
    item's number is not taken for a fact.
    """

    def __init__(self, backing: Sequence[str], *, enabled: bool = True):
        self.backing = list(backing)
        self.enabled = enabled
        self.pending = ""
        self.cited: set[int] = set()

    def feed(self, text: str) -> str:
        self.pending += text
        passed, end = [], 0
        for match in _SENTENCE.finditer(self.pending):
            passed.append(self._check(match.group()))
            end = match.end()
        self.pending = self.pending[end:]
        return "".join(passed)

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return self._check(rest) if rest.strip() else rest

    def _check(self, sentence: str) -> str:
        self.cited |= {int(n) for n in _CITATION.findall(sentence)}
        sentence = _CITATION.sub("", sentence)
        if prompt_echo(sentence):
            return ""
        checked = _LIST_MARKER.sub("", sentence, count=1)
        if self.enabled and (unsupported := facts_unsupported(checked, self.backing)):
            raise GuardTripped(", ".join(unsupported))
        return sentence


def summary_from_knowledge(*, history: Sequence[ChatTurn], language: str, site: str) -> str:
    """The handoff summary for agents, built from the conversation and the knowledge base, not written by a model
    that cannot be trusted with facts: what the customer asked, and what the help center says of it (the console
    shows the handoff's reason beside it)."""
    users = [turn.content for turn in history if turn.role == "user"]
    if not users:
        return ""
    lines = [f"Customer asks: {_clip(attachment_notes_for_staff(users[-1]), 200)}"]
    if len(users) > 1:
        lines.append(f"Before that: {_clip(attachment_notes_for_staff(users[-2]), 120)}")
    # What the help center says of the newest question it answers: after "a person, please" that is the question
    # before it. It is searched for words, not file notes.
    for index in range(len(users) - 1, max(len(users) - 3, -1), -1):
        question = without_attachment_notes(users[index])
        if not question:
            continue
        context = users[max(0, index - CONTEXT_TURNS) : index]
        retrieval = retrieve(question, language=language, site=site, context=context)
        if retrieval.best is not None:
            extract = extract_answer(question, retrieval.relevant, context=context, max_chars=160)
            lines.append(f"Help center: “{extract.hit.title}”: {extract.text}")
            break
    else:
        lines.append("Help center: nothing relevant found.")
    return "\n".join(lines)


def suggestion_from_knowledge(*, history: Sequence[ChatTurn], language: str, site: str) -> str:
    """A draft reply for the agent: the extractive answer to the customer's last question; empty when the knowledge
    base has nothing relevant (the agent writes it, and the knowledge-gaps page will list the question)."""
    users = [turn.content for turn in history if turn.role == "user"]
    if not users:
        return ""
    context = users[-1 - CONTEXT_TURNS : -1]
    retrieval = retrieve(users[-1], language=language, site=site, context=context)
    if not retrieval.relevant:
        return ""
    return extractive_text(users[-1], retrieval.relevant, context, language)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
