"""Text as retrieval sees it: search terms, sentences, and Markdown split into passages."""

import pytest

from knowledge.text import Section, jieba_words_add, markdown_sections, sentences, terms, text_language


def test_chinese_is_segmented_into_the_knowledge_bases_words_and_their_parts():
    jieba_words_add(["退货运费"])  # what indexing an article tagged 退货运费 teaches the segmenter
    found = terms("退货运费怎么算")
    assert {"退货", "运费", "退货运费"} <= set(found)
    assert "怎么" not in found


def test_chinese_words_of_jiebas_own_dictionary_need_no_teaching():
    assert "退货" in terms("我想退货")
    assert terms("退货期限") == ["退货", "期限"]


def test_english_words_are_stemmed_so_their_forms_share_a_term():
    assert terms("returns") == terms("returning") == terms("returned") == ["return"]
    assert terms("invoices") == terms("invoice")


def test_stop_words_are_dropped_in_both_languages():
    assert terms("What is the return policy for my order?") == ["return", "polici", "order"]
    assert terms("Hi, can you tell me how I do it?") == []
    assert terms("请问我的退货怎么办") == ["退货", "怎么办"]
    assert terms("你好，谢谢") == []


def test_numbers_are_terms_and_full_width_text_is_normalised():
    assert terms("Return shipping costs $6.90 for 1,000 items") == ["return", "ship", "cost", "6.90", "1000", "item"]
    assert terms("ＲＥＴＵＲＮＳ　３０") == ["return", "30"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Returns take 5 days. Refunds cost $6.90.", ["Returns take 5 days.", "Refunds cost $6.90."]),
        ("Is it free? Yes! Always.", ["Is it free?", "Yes!", "Always."]),
        ("The fee is $6.90 per order. 3 items ship free.", ["The fee is $6.90 per order.", "3 items ship free."]),
        ("退货期限是15天。运费由顾客承担！可以吗？好的", ["退货期限是15天。", "运费由顾客承担！", "可以吗？", "好的"]),
        ("第一行\n第二行", ["第一行", "第二行"]),
        ("", []),
    ],
)
def test_sentences_split_at_sentence_ends_in_both_languages(text, expected):
    assert sentences(text) == expected


def test_markdown_is_split_by_heading_and_paragraph_with_the_heading_attached():
    body = """Intro paragraph. **Second** sentence with a [link](https://example.com/a).

## Return window

You can return items within 30 days.

Items must be unused.

### Exceptions ###

Mattresses cannot be returned.
"""
    assert markdown_sections(body) == [
        Section("", "Intro paragraph. Second sentence with a link (https://example.com/a)."),
        Section("Return window", "You can return items within 30 days."),
        Section("Return window", "Items must be unused."),
        Section("Exceptions", "Mattresses cannot be returned."),
    ]


def test_a_list_is_one_passage_and_the_paragraph_after_it_another():
    body = """## How to return

1. Sign in.
2. Open *Orders*.

3. Click Return items.
   We email you a label.

The label is free when the item is damaged.
"""
    assert markdown_sections(body) == [
        Section("How to return", "Sign in.\nOpen Orders.\nClick Return items.\nWe email you a label."),
        Section("How to return", "The label is free when the item is damaged."),
    ]


def test_a_list_after_a_paragraph_starts_a_passage_of_its_own():
    sections = markdown_sections("We accept:\n- Visa\n- Mastercard")
    assert [s.text for s in sections] == ["We accept:", "Visa\nMastercard"]


def test_a_long_paragraph_is_cut_between_sentences():
    paragraph = " ".join(f"Sentence number {i} says something about returns." for i in range(20))
    sections = markdown_sections(f"## Long\n\n{paragraph}", max_chars=200)
    assert len(sections) > 3
    assert all(s.heading == "Long" and len(s.text) <= 200 for s in sections)
    assert all(s.text.startswith("Sentence number") and s.text.endswith("returns.") for s in sections)
    assert " ".join(s.text for s in sections) == paragraph  # nothing lost, nothing repeated


def test_a_long_chinese_paragraph_is_cut_between_sentences_too():
    paragraph = "".join(f"第{i}条规定说明了退货的条件。" for i in range(40))
    sections = markdown_sections(paragraph, max_chars=100)
    assert len(sections) > 3
    assert all(len(s.text) <= 100 and s.text.endswith("。") for s in sections)
    assert "".join(s.text for s in sections) == paragraph  # no space put between Chinese sentences


def test_an_empty_body_has_no_passages():
    assert markdown_sections("") == []
    assert markdown_sections("## Only a heading\n\n\n") == []


@pytest.mark.parametrize(
    ("text", "conversation", "expected"),
    [("退货运费多少钱？", "en", "zh"), ("How much?", "zh-CN", "zh"), ("How much?", "en-US", "en"), ("?", "", "en")],
)
def test_the_language_of_a_question_is_chinese_when_it_is_written_so(text, conversation, expected):
    assert text_language(text, conversation) == expected


def test_english_terms_are_right_when_many_threads_stem_at_once():
    """Reply threads store their messages' search terms at the same time: a stemmer shared between them mixed their
    words up (wrong stems, IndexError), and a reply whose completion raised was never finished."""
    import sys
    import threading

    text = "Shipping returns refunds delivered cancellations addresses passwords payments ordering exchanged " * 20
    expected = terms(text)
    problems = []

    def stem_repeatedly():
        for _ in range(30):
            try:
                if terms(text) != expected:
                    problems.append("wrong terms")
            except Exception as exc:  # the shared stemmer raised IndexError and AssertionError
                problems.append(type(exc).__name__)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a busy worker does
    try:
        threads = [threading.Thread(target=stem_repeatedly) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert problems == []
