"""Messages as the console's search reads them: their search terms, a query, and the highlighted snippet.

A message's terms are the knowledge base's (knowledge.text.terms: Chinese segmented by jieba in search mode, English
stemmed, stop words dropped) plus every pair of adjacent Chinese characters. Message.search_terms stores them
space-separated and PostgreSQL's 'simple' text-search configuration indexes them as they are, so "refunds" finds
"refunded". The pairs are there because a segmenter guesses: jieba cuts 我要退货运费 into 我要/退/货运费, without
退货. A Chinese query word therefore matches a message that has all its segmented terms or all its character
pairs (the word itself, as written). Nothing here touches the database: Message.save calls it.
"""

import re
from dataclasses import dataclass, field

from knowledge.text import is_chinese, normalize, terms

# How much of a long message its terms cover: enough for any message a person writes, and a bound on the index.
TERMS_SOURCE_MAX_CHARS = 20_000
# A query's words beyond these are ignored: every one must match, so more would only narrow the search.
QUERY_WORDS_MAX = 12
# The snippet shows this much text before and after the first match.
SNIPPET_BEFORE, SNIPPET_AFTER = 50, 110

_WORD = re.compile(r"[A-Za-z0-9\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+|[\u3400-\u9fff]+")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")


def _pairs(run: str) -> list[str]:
    """A run of Chinese characters as its pairs of adjacent characters (a lone character as itself)."""
    return [run[i : i + 2] for i in range(len(run) - 1)] or [run]


def message_search_terms(content: str) -> str:
    """The search terms of a message's content, space-separated, as Message.search_terms stores them."""
    content = content[:TERMS_SOURCE_MAX_CHARS]
    pairs = [pair for run in _CJK_RUN.findall(normalize(content)) for pair in _pairs(run)]
    return " ".join(dict.fromkeys([*terms(content), *pairs]))


@dataclass(frozen=True)
class Query:
    """What a message must contain to match a query: every one of `required` (English and number terms), and for
    each Chinese word of the query either all its segmented terms or all its character pairs."""

    required: list[str] = field(default_factory=list)
    chinese: list[tuple[list[str], list[str]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.required or self.chinese)

    @property
    def highlights(self) -> set[str]:
        """The terms a snippet marks: the English ones, and the Chinese words' character pairs."""
        return {*self.required, *(pair for _, pairs in self.chinese for pair in pairs)}


def query_parse(text: str) -> Query:
    """The query a search box's text stands for (stop words dropped; empty when nothing is left)."""
    required: list[str] = []
    chinese: list[tuple[list[str], list[str]]] = []
    for word in _WORD.findall(normalize(text))[:QUERY_WORDS_MAX]:
        if not is_chinese(word):
            required += [t for t in terms(word) if t not in required]
            continue
        segmented = list(dict.fromkeys(terms(word)))
        # Search mode yields a word and its parts (退货运费 → 退货, 运费, 退货运费): the parts are enough.
        segmented = [t for t in segmented if not any(o != t and o in t for o in segmented)]
        if not segmented and len(word) == 1:  # a lone stop word (的, 吗): nothing to look for
            continue
        if (segmented, _pairs(word)) not in chinese:
            chinese.append((segmented, _pairs(word)))
    return Query(required, chinese)


def _all(words: list[str]) -> str:
    return "(" + " & ".join("'" + w.replace("'", "''").replace("\\", "") + "'" for w in words) + ")"


def tsquery(query: Query) -> str:
    """PostgreSQL's to_tsquery text for `query` (which must not be empty)."""
    parts = [_all(query.required)] if query.required else []
    for segmented, pairs in query.chinese:
        parts.append(f"({_all(segmented)} | {_all(pairs)})" if segmented and segmented != pairs else _all(pairs))
    return " & ".join(parts)


@dataclass(frozen=True)
class Piece:
    """A piece of a snippet: its text and whether it is a match (shown highlighted)."""

    text: str
    match: bool


def _match_spans(text: str, words: set[str], phrase: str) -> list[tuple[int, int]]:
    """Where `text` matches: English words whose terms are among `words`, the Chinese `words` wherever they occur,
    and `phrase` itself (case-insensitive)."""
    spans = []
    chinese = [w for w in words if is_chinese(w)]
    for token in _WORD.finditer(text):
        if is_chinese(token.group()):
            for word in chinese:
                spans += [
                    (token.start() + m.start(), token.start() + m.end())
                    for m in re.finditer(re.escape(word), token.group())
                ]
        elif words & set(terms(token.group())):
            spans.append(token.span())
    if phrase:
        spans += [m.span() for m in re.finditer(re.escape(phrase), text, re.IGNORECASE)]
    return _merged(spans)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        elif end > start:
            merged.append((start, end))
    return merged


def snippet(text: str, *, words: list[str] | set[str] = (), phrase: str = "", whole: bool = False) -> list[Piece]:
    """`text` cut around its first match into pieces, the matches marked: what the search results show.

    `words` are a query's terms (English stemmed, so "refunds" marks "refunded"); `phrase` is matched as it is (the
    embedded mode's fallback, a name or an email). `whole` keeps all of a short text (a name) instead of cutting.
    """
    text = " ".join(text.split())  # one line: newlines and runs of spaces say nothing in a snippet
    spans = _match_spans(text, set(words), phrase.strip())
    start, end = 0, len(text)
    if not whole and spans:
        start = max(0, spans[0][0] - SNIPPET_BEFORE)
        end = min(len(text), spans[0][1] + SNIPPET_AFTER)
    elif not whole:
        end = min(len(text), SNIPPET_BEFORE + SNIPPET_AFTER)
    pieces = [Piece("…", False)] if start > 0 else []
    cursor = start
    for span_start, span_end in spans:
        if span_end <= start or span_start >= end:
            continue
        span_start, span_end = max(span_start, start), min(span_end, end)
        if span_start > cursor:
            pieces.append(Piece(text[cursor:span_start], False))
        pieces.append(Piece(text[span_start:span_end], True))
        cursor = span_end
    if end > cursor:
        pieces.append(Piece(text[cursor:end], False))
    if end < len(text):
        pieces.append(Piece("…", False))
    return pieces
