"""Retrieval: the passages that answer a customer's turn, scored on one scale, with the "nothing relevant" threshold
applied to the final score.

Two signals, fused by a weighted sum of scores that are each in [0, 1]:

- lexical: the share of the question's information found in the passage: the IDF-weighted fraction of the
  question's search terms (Chinese segmented by jieba, English stemmed) that the passage contains. IDF comes from
  the published passages of that language. On PostgreSQL the candidates come from a full-text GIN index over the
  terms ('simple' configuration, so the segmentation is ours); on SQLite from an in-process inverted index. The
  score is computed the same way on both, so the threshold means the same thing everywhere.
- semantic (optional, KNOWLEDGE_SEMANTIC): the cosine similarity of multilingual USE v3 embeddings, mapped
  linearly from [SEMANTIC_FLOOR, SEMANTIC_CEILING] to [0, 1].

    score = (1 - w) · lexical + w · semantic        (w = KNOWLEDGE_SEMANTIC_WEIGHT, 0 when semantic is off)

A follow-up ("and for express?") is scored twice, alone and with the customer's previous turns (at half weight),
and the two scores are averaged: the context settles ties between articles without drowning a new question.
"""

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connection

from knowledge import semantic
from knowledge.models import IndexVersion, Passage
from knowledge.text import jieba_words_add, terms, text_language

SEMANTIC_FLOOR = 0.20  # cosine of unrelated texts (measured on the demo base: 0.0-0.25)
SEMANTIC_CEILING = 0.70  # cosine of a question and the passage that answers it (0.45-0.8)
CONTEXT_WEIGHT = 0.5  # the previous turns' terms, against the newest turn's
CANDIDATES = 100  # passages taken from the full-text index before scoring
SINGLE_CHARACTER_WEIGHT = 0.3


@dataclass(frozen=True)
class Hit:
    passage_id: int
    article_id: int
    slug: str
    title: str
    url: str
    heading: str
    text: str
    is_faq: bool
    score: float  # the fused score, on which the threshold is applied
    lexical: float
    semantic: float | None


@dataclass(frozen=True)
class Retrieval:
    language: str  # the language whose articles were searched
    query_terms: tuple[str, ...]
    hits: list[Hit] = field(default_factory=list)  # best first, including those under the threshold
    threshold: float = 0.0

    @property
    def relevant(self) -> list[Hit]:
        return [h for h in self.hits if h.score >= self.threshold]

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits and self.hits[0].score >= self.threshold else None


@dataclass
class _LanguageIndex:
    """One language's published passages, as the scorer needs them (cached per process, per index version)."""

    ids: list[int]
    terms: dict[int, frozenset[str]]
    sites: dict[int, str]
    df: Counter
    postings: dict[str, set[int]]
    vectors: np.ndarray | None  # rows in `ids` order; None when semantic search is off
    rows: dict[int, int]  # passage id → row in vectors

    def idf(self, term: str) -> float:
        return math.log(1 + len(self.ids) / (self.df.get(term, 0) + 1))


_cache_lock = threading.Lock()
_cache: dict[str, _LanguageIndex] = {}
_cache_languages: set[str] | None = None  # the languages with published passages
_cache_version = -1


def _index_version() -> int:
    return IndexVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0


def _cache_check() -> None:
    """Forget what this process cached when the index changed (one primary-key read per retrieval)."""
    global _cache_version, _cache_languages
    version = _index_version()
    with _cache_lock:
        if version != _cache_version:
            _cache.clear()
            _cache_languages = None
            _cache_version = version


def _language_index(language: str) -> _LanguageIndex:
    with _cache_lock:
        if language not in _cache:
            _cache[language] = _language_index_build(language)
        return _cache[language]


def _language_index_build(language: str) -> _LanguageIndex:
    rows = Passage.objects.filter(article__published=True, article__language=language).values_list(
        "id", "tokens", "article__site", "embedding", "article__title", "article__tags"
    )
    ids, by_id, sites, df, postings, vectors = [], {}, {}, Counter(), {}, []
    titles = []
    for pid, tokens, site, embedding, title, tags in rows.iterator(chunk_size=2000):
        words = frozenset(tokens.split())
        ids.append(pid)
        by_id[pid] = words
        sites[pid] = site
        df.update(words)
        for word in words:
            postings.setdefault(word, set()).add(pid)
        if settings.KNOWLEDGE_SEMANTIC:
            vector = semantic.from_bytes(embedding)
            vectors.append(vector if vector is not None else np.zeros(semantic.DIMENSIONS, dtype=np.float32))
        titles.append(title)
        titles.extend(tags or [])
    jieba_words_add(titles)  # a new process segments questions with the base's own words, as the index was
    matrix = np.vstack(vectors) if vectors else None
    return _LanguageIndex(ids, by_id, sites, df, postings, matrix, {pid: row for row, pid in enumerate(ids)})


def _languages_published() -> set[str]:
    global _cache_languages
    with _cache_lock:
        if _cache_languages is None:
            published = Passage.objects.filter(article__published=True)
            _cache_languages = set(published.values_list("article__language", flat=True).distinct())
        return _cache_languages


def _term_weight(term: str) -> float:
    """A single Chinese character (买, 钱, 寄) says little of what a question is about; a word says much more."""
    return SINGLE_CHARACTER_WEIGHT if len(term) == 1 and not term.isascii() else 1.0


def _weighted_terms(turn: str, context: Sequence[str]) -> tuple[dict[str, float], dict[str, float] | None]:
    current = {term: _term_weight(term) for term in terms(turn)}
    if not context:
        return current, None
    combined = dict(current)
    for earlier in context:
        for term in terms(earlier):
            combined.setdefault(term, CONTEXT_WEIGHT * _term_weight(term))
    return current, combined if combined != current else None


def _candidates(index: _LanguageIndex, language: str, site: str, words: set[str]) -> set[int]:
    if not words:
        return set()
    if connection.vendor == "postgresql":
        query = " | ".join("'" + w.replace("'", "''").replace("\\", "") + "'" for w in sorted(words))
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT p.id FROM knowledge_passage p JOIN knowledge_article a ON a.id = p.article_id
                WHERE a.published AND a.language = %s AND (a.site = '' OR a.site = %s)
                  AND to_tsvector('simple', p.tokens) @@ to_tsquery('simple', %s)
                ORDER BY ts_rank(to_tsvector('simple', p.tokens), to_tsquery('simple', %s)) DESC
                LIMIT %s
                """,
                [language, site, query, query, CANDIDATES],
            )
            return {row[0] for row in cursor.fetchall()}
    found: set[int] = set()
    for word in words:
        found |= index.postings.get(word, set())
    return {pid for pid in found if index.sites.get(pid, "") in ("", site)}


def _lexical(index: _LanguageIndex, weights: dict[str, float], pid: int) -> float:
    total = sum(w * index.idf(t) for t, w in weights.items())
    if total <= 0:
        return 0.0
    present = index.terms.get(pid, frozenset())
    return sum(w * index.idf(t) for t, w in weights.items() if t in present) / total


def _semantic(index: _LanguageIndex, text: str) -> np.ndarray:
    """Every passage's semantic score for `text`, in the index's row order, in [0, 1]."""
    similarity = index.vectors @ semantic.embed([text])[0]
    return np.clip((similarity - SEMANTIC_FLOOR) / (SEMANTIC_CEILING - SEMANTIC_FLOOR), 0.0, 1.0)


def _semantic_candidates(index: _LanguageIndex, scores: np.ndarray, site: str, count: int = 20) -> set[int]:
    return {
        index.ids[row]
        for row in np.argsort(-scores)[:count]
        if scores[row] > 0 and index.sites.get(index.ids[row], "") in ("", site)
    }


def retrieve(question: str, *, language: str, site: str = "", context: Sequence[str] = (), limit: int = 5) -> Retrieval:
    """The passages that best answer `question` for a customer of this language and site, best first.

    `context` is the customer's earlier turns, oldest first (a follow-up is read with them). The language searched is
    the question's own when it is written in Chinese, else `language`; when nothing is published in it,
    KNOWLEDGE_FALLBACK_LANGUAGE's articles are searched.
    """
    _cache_check()
    language = text_language(question, language)
    if language not in _languages_published():
        language = settings.KNOWLEDGE_FALLBACK_LANGUAGE
    index = _language_index(language)
    threshold = settings.KNOWLEDGE_MIN_SCORE
    current, combined = _weighted_terms(question, context)
    if not current:
        return Retrieval(language, (), [], threshold)
    semantic_on = settings.KNOWLEDGE_SEMANTIC and index.vectors is not None
    weight = settings.KNOWLEDGE_SEMANTIC_WEIGHT if semantic_on else 0.0
    # Only passages this process has indexed: the full-text index may already hold some committed since.
    candidates = {
        pid for pid in _candidates(index, language, site, set(current) | set(combined or ())) if pid in index.rows
    }
    semantic_now = semantic_context = None
    if weight and len(index.ids):
        semantic_now = _semantic(index, question)
        candidates |= _semantic_candidates(index, semantic_now, site)
        if combined is not None:
            semantic_context = _semantic(index, " ".join([*context[-2:], question]))
            candidates |= _semantic_candidates(index, semantic_context, site)

    def fused(weights: dict[str, float], scores: np.ndarray | None, pid: int) -> tuple[float, float, float | None]:
        lexical = _lexical(index, weights, pid)
        if scores is None:
            return lexical, lexical, None
        sem = float(scores[index.rows[pid]])
        return (1 - weight) * lexical + weight * sem, lexical, sem

    scored = []
    for pid in candidates:
        score, lexical, sem = fused(current, semantic_now, pid)
        if combined is not None:
            score_c, lexical_c, sem_c = fused(
                combined, semantic_now if semantic_context is None else semantic_context, pid
            )
            score, lexical = (score + score_c) / 2, (lexical + lexical_c) / 2
            sem = None if sem is None else (sem + sem_c) / 2
        scored.append((score, lexical, sem, pid))
    scored.sort(key=lambda item: (-item[0], -item[1], item[3]))
    top = scored[:limit]
    passages = Passage.objects.select_related("article").in_bulk([pid for *_, pid in top])
    hits = [
        Hit(
            passage_id=pid,
            article_id=passages[pid].article_id,
            slug=passages[pid].article.slug,
            title=passages[pid].article.title,
            url=passages[pid].article.url,
            heading=passages[pid].heading,
            text=passages[pid].text,
            is_faq=passages[pid].article.is_faq,
            score=round(score, 4),
            lexical=round(lexical, 4),
            semantic=None if sem is None else round(sem, 4),
        )
        for score, lexical, sem, pid in top
        if pid in passages
    ]
    return Retrieval(language, tuple(current), hits, threshold)


def retrieval_warm_up() -> None:
    """Load the segmenter's dictionary, the embedding model and every language's index now, rather than on a
    customer's first question (about a second on this machine)."""
    terms("预热 warm up")  # jieba reads its dictionary on first use
    if settings.KNOWLEDGE_SEMANTIC:
        semantic.embed(["warm up"])
    _cache_check()
    for language in _languages_published():
        _language_index(language)
