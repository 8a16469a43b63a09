"""Text as retrieval sees it: search terms (Chinese segmented by jieba, English stemmed), sentences, and Markdown
split into passages by heading and paragraph."""

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import jieba
import snowballstemmer

from inference.language import language_base

# Words that say nothing about what a question is about (question words, pronouns, particles).
STOPWORDS_EN = frozenset(
    """a an the and or but if of to in on at for from by with about as into over after before is are was
    were be been being am do does did doing have has had having i me my we our you your he she it its
    they them their this that these those there here what which who whom whose when where why how can
    could would should will shall may might must not no yes please hi hello hey thanks thank just also
    any some much many more most very so too than then get got tell know want need like let s t ll d re
    ve m isn aren don doesn didn won wouldn can couldn shouldn ok""".split()
)
STOPWORDS_ZH = frozenset(
    """的 了 吗 呢 啊 吧 呀 嘛 么 哦 喔 我 我们 你 你们 您 他 她 它 是 在 有 要 想
    会 能 可以 可 请 请问 问 问下 一下 怎么 怎样 怎么样 如何 什么 多少 几 哪 哪里 哪些
    吗 和 与 及 或 就 都 也 还 又 这 那 这个 那个 个 一 一个 们 给 对 把 被 让 到
    从 为 为了 如果 还是 是不是 没有 不 没 吧 啦 呗 该 应该 需要 告诉 知道 帮 帮我
    麻烦 谢谢 你好 您好""".split()
)

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*|[\u3400-\u9fff]+")
_CJK = re.compile(r"[\u3400-\u9fff]")
_jieba_lock = threading.Lock()
_jieba_words: set[str] = set()
# One stemmer per thread: a snowball stemmer keeps its word in instance state, so two threads stemming at once (reply
# threads storing messages' search terms) corrupt each other's work and raise IndexError.
_stemmers = threading.local()


def _stem(word: str) -> str:
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)


jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not the product's news


def normalize(text: str) -> str:
    """NFKC (full-width letters and digits to ASCII) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def jieba_words_add(words: Iterable[str]) -> None:
    """Teach the segmenter the knowledge base's own terms (titles, tags), so "包邮" or "发票" stay whole."""
    with _jieba_lock:
        for word in words:
            word = normalize(word).strip()
            if word and word not in _jieba_words and _CJK.search(word) and len(word) <= 12:
                jieba.add_word(word, freq=20000)
                _jieba_words.add(word)


def terms(text: str) -> list[str]:
    """The search terms of a text, in order, stop words dropped: English stemmed, Chinese segmented for search.

    Numbers are terms too ("30", "6.90"). A Chinese word also yields its shorter dictionary words (jieba's search
    mode: "退货运费" → 退货, 运费, 退货运费), so a question's words find a passage's compounds and back.
    """
    found = []
    for match in _WORD.finditer(normalize(text)):
        word = match.group()
        if _CJK.match(word):
            with _jieba_lock:
                pieces = list(jieba.cut_for_search(word))
            found.extend(p for p in pieces if p.strip() and p not in STOPWORDS_ZH)
        elif word not in STOPWORDS_EN:
            found.append(word.replace(",", "") if word[0].isdigit() else _stem(word))
    return found


_CJK_ENDS = ("。", "！", "？", "；")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=[.])\s+(?=[A-Z0-9\"'(])|\n+")


def sentences(text: str) -> list[str]:
    """The sentences (and list items) of a plain text, in order."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


@dataclass(frozen=True)
class Section:
    heading: str
    text: str


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)]*)\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def markdown_plain(line: str) -> str:
    """A Markdown line as plain text: links become "text (url)", emphasis and code marks go."""
    line = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) != m.group(2) else m.group(2), line)
    line = _EMPHASIS.sub(r"\2", line)
    return line.replace("\\", "").strip()


def markdown_sections(body: str, *, max_chars: int = 700) -> list[Section]:
    """The body's paragraphs (a list counts as one) under their nearest heading, as plain text.

    A paragraph longer than `max_chars` is cut between sentences, so every passage can be quoted whole.
    """
    sections: list[Section] = []
    heading, block = "", []

    def close() -> None:
        text = "\n".join(block).strip()
        block.clear()
        if not text:
            return
        piece = ""
        for sentence in sentences(text):
            if piece and len(piece) + len(sentence) > max_chars:
                sections.append(Section(heading, piece))
                piece = ""
            if piece and "\n" in text:
                piece = f"{piece}\n{sentence}"
            else:  # Chinese sentences follow each other without a space
                piece = f"{piece}{'' if piece.endswith(_CJK_ENDS) else ' '}{sentence}".strip()
        if piece:
            sections.append(Section(heading, piece.strip()))

    in_list = after_blank = False
    for raw in body.replace("\r\n", "\n").split("\n"):
        if match := _HEADING.match(raw):
            close()
            heading, in_list = markdown_plain(match.group(2)), False
        elif not raw.strip():
            if not in_list:
                close()
        else:
            is_item = bool(_LIST_ITEM.match(raw))
            indented = raw.startswith((" ", "\t"))
            # A list starts a passage of its own, and an unindented paragraph after a blank line ends it.
            if block and ((is_item and not in_list) or (in_list and after_blank and not is_item and not indented)):
                close()
            in_list = is_item or (in_list and indented)
            block.append(markdown_plain(_LIST_ITEM.sub("", raw)))
        after_blank = not raw.strip()
    close()
    return sections


def is_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def text_language(text: str, default: str) -> str:
    """The language a customer wrote in: Chinese when the text is, else their conversation's language."""
    return "zh" if is_chinese(text) else language_base(default) or "en"
