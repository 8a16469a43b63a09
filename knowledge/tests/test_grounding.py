"""The building blocks of grounded answers: the facts an answer states and whether its passages back them, the
extractive answer, small talk and questions about a customer's own order."""

import pytest

from knowledge.grounding import customer_specific, extract_answer, facts, facts_unsupported, small_talk_kind
from knowledge.retrieval import Hit
from knowledge.text import jieba_words_add


def hit(text: str, **fields) -> Hit:
    values = dict(passage_id=1, article_id=1, slug="returns", title="Returns", url="", heading="", is_faq=False)
    values |= dict(score=1.0, lexical=1.0, semantic=None) | fields
    return Hit(text=text, **values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Return shipping costs $6.90 per order.", {"n:6.9"}),
        ("A sofa costs $1,299.00 or 1299 dollars.", {"n:1299"}),
        ("Standard shipping takes 5–7 business days.", {"n:5", "n:7"}),
        ("You can return items within 30 days; 10% restocking fee.", {"n:30", "n:10"}),
        ("Call 1-800-555-0142, toll-free.", {"n:1", "n:800", "n:555", "n:0142"}),
        ("客服热线400-820-6688", {"n:400", "n:820", "n:6688"}),
        ("Open 9:00 to 18:30.", {"n:9", "n:00", "n:18", "n:30"}),
        ("Email support@northwind.example.", {"email:support@northwind.example"}),
        ("See https://northwind.example/help/returns.", {"url:https://northwind.example/help/returns"}),
        ("退货请访问https://northwind.example.cn/help/2024，谢谢", {"url:https://northwind.example.cn/help/2024"}),
        ("请发送邮件至fapiao@northwind.example.cn查询", {"email:fapiao@northwind.example.cn"}),
        ("签收后七天内可以退货", {"n:7"}),
        ("十五天无理由退货，每单二十元", {"n:15", "n:20"}),
        ("家具保修两年", {"n:2"}),
        ("上门取件费一百二十元", {"n:120"}),
        ("满三千零五元包邮", {"n:3005"}),
        ("一万五千元以上分期", {"n:15000"}),
        ("ＦＵＬＬ－ＷＩＤＴＨ ６.９０", {"n:6.9"}),
        ("我们一起看看，有一些办法", set()),  # numerals without a unit are words, not quantities
        ("No numbers here.", set()),
    ],
)
def test_facts_are_found_in_a_normal_form(text, expected):
    assert facts(text) == expected


PASSAGES = ["Return shipping costs $6.90 per order. The warranty lasts 2 years.", "Refunds take 5-7 business days."]


@pytest.mark.parametrize(
    "answer",
    [
        "Return shipping is $6.90.",
        "Return shipping is $6.9.",
        "It costs 6.90 dollars and the warranty is 2 years.",
        "Your refund arrives within 7 business days.",  # one end of the passage's range
        "There is no fee when the item arrived damaged.",  # no facts at all
    ],
)
def test_an_answer_whose_facts_are_in_the_passages_is_supported(answer):
    assert facts_unsupported(answer, PASSAGES) == []


def test_trailing_zeros_do_not_make_a_different_price():
    assert facts_unsupported("It costs $6.90.", ["It costs $6.9."]) == []
    assert facts_unsupported("It costs $6.9.", ["It costs $6.90."]) == []
    assert facts_unsupported("It costs $69.", ["It costs $6.90."]) == ["69"]


def test_invented_prices_and_durations_are_unsupported():
    assert facts_unsupported("Return shipping costs $1.50 and the warranty lasts 1 year.", PASSAGES) == ["1", "1.5"]
    assert facts_unsupported("The warranty lasts 10 years.", PASSAGES) == ["10"]


def test_a_changed_phone_number_email_or_address_is_unsupported():
    passage = ["Call 1-800-555-0142 or email support@northwind.example, see https://northwind.example/help."]
    assert facts_unsupported("Call 1-800-555-0199.", passage) == ["0199"]
    assert facts_unsupported("Email help@northwind.example.", passage) == ["help@northwind.example"]
    assert facts_unsupported("See https://evil.example/help.", passage) == ["https://evil.example/help"]
    assert facts_unsupported("Call 1-800-555-0142, see https://northwind.example/help.", passage) == []


def test_chinese_numerals_and_digits_back_each_other():
    assert facts_unsupported("签收后七天内可以退货。", ["签收后7天内可以退货。"]) == []
    assert facts_unsupported("退货运费每单15元。", ["退货运费每单十五元。"]) == []
    assert facts_unsupported("退货运费每单二十元。", ["退货运费每单15元。"]) == ["20"]


def test_an_address_written_against_chinese_text_is_the_passages_address():
    passage = [
        "如需换开发票，请发送邮件至 fapiao@northwind.example.cn 。详见 https://northwind.example.cn/help/invoices 。"
    ]
    answer = "请发送邮件至fapiao@northwind.example.cn，详见https://northwind.example.cn/help/invoices，谢谢。"
    assert facts_unsupported(answer, passage) == []


def test_a_time_in_a_passage_backs_its_hour():
    assert facts_unsupported("We open at 9 a.m.", ["Open 9:00-18:00 ET."]) == []
    assert facts_unsupported("We open at 8 a.m.", ["Open 9:00-18:00 ET."]) == ["8"]


def test_nothing_is_backed_without_passages():
    assert facts_unsupported("It costs $6.90.", []) == ["6.9"]


RETURNS = (
    "We accept returns of most items. Return shipping costs $6.90 per order. "
    "Refunds are issued within 5-7 business days after we receive the return. Gift wrap is available for $5."
)


def test_the_extract_is_the_sentences_that_hold_the_questions_terms():
    extract = extract_answer("How much does return shipping cost?", [hit(RETURNS), hit("Other passage.")])
    assert "Return shipping costs $6.90 per order." in extract.text
    assert "Gift wrap" not in extract.text  # it shares no term with the question
    assert extract.hit.text == RETURNS  # the best hit is quoted, the others are not


def test_when_little_fits_the_extract_is_the_best_sentence_alone():
    extract = extract_answer("How much does return shipping cost?", [hit(RETURNS)], max_chars=60)
    assert extract.text == "Return shipping costs $6.90 per order."


def test_the_extract_keeps_the_passages_order_and_fits_its_limit():
    extract = extract_answer("When is my refund for a return issued?", [hit(RETURNS)], max_chars=200)
    assert len(extract.text) <= 200
    sentences = [s for s in RETURNS.split(". ") if s.rstrip(".") in extract.text]
    assert "Refunds are issued" in extract.text
    assert extract.text.index(sentences[0]) < extract.text.index(sentences[-1])


def test_an_extract_cut_at_its_limit_ends_with_an_ellipsis():
    long = "Return shipping costs $6.90 per order and this sentence goes on about parcels, boxes and labels. " * 3
    extract = extract_answer("return shipping cost", [hit(long)], max_chars=60)
    assert len(extract.text) == 60 and extract.text.endswith("…")


def test_a_passage_that_shares_no_term_with_the_question_gives_its_first_sentences():
    extract = extract_answer("Can I pay by cheque?", [hit(RETURNS)])
    assert extract.text.startswith("We accept returns of most items.")


def test_the_earlier_turn_picks_between_sentences_that_match_the_follow_up_alike():
    passage = "Parcels cost $6.90 to send back. Returning a sofa costs $49 for the pickup."
    assert "$49" not in extract_answer("what does it cost?", [hit(passage)]).text.split(". ")[0]
    extract = extract_answer("what does it cost?", [hit(passage)], context=["I want to return my sofa"])
    assert extract.text.startswith("Returning a sofa costs $49") or extract.text == passage
    assert "$49" in extract.text


def test_a_chinese_extract_is_the_sentences_that_answer():
    jieba_words_add(["退货运费"])  # as indexing the returns article does, so the test does not depend on the order
    passage = "签收后15天内可以退货。非质量问题退货，退货运费为每单15元，由顾客承担。退款3至5个工作日到账。"
    assert extract_answer("退款几天到账？", [hit(passage)]).text == "退款3至5个工作日到账。"
    extract = extract_answer("退货运费多少钱？", [hit(passage)])
    assert "非质量问题退货，退货运费为每单15元，由顾客承担。" in extract.text
    assert "退款3至5个工作日" not in extract.text and " " not in extract.text


def test_how_long_is_the_questions_form_not_its_subject():
    # "多长时间" holds 时间 ("time"): a sentence about delivery time in remote areas must not beat the one about
    # standard delivery, which is what was asked (scored as retrieval scores them for this question on the demo base).
    remote = "配送至新疆、西藏、青海每单加收30元偏远地区运费，配送时间延长3至5天。"
    standard = "标准快递由中通快递承运，3至5天送达，运费为每单10元。"
    extract = extract_answer("标准配送需要多长时间？", [hit(remote, score=0.253), hit(standard, score=0.289)])
    assert extract.text == standard
    assert extract_answer("偏远地区配送需要多长时间？", [hit(remote), hit(standard)]).text == remote


def test_list_items_keep_their_lines():
    extract = extract_answer("how do I return an order", [hit("Sign in\nOpen your orders\nClick Return items")])
    assert "\n" in extract.text and "Click Return items" in extract.text


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("hi", "greeting"),
        ("Hello!", "greeting"),
        ("good morning", "greeting"),
        ("hello, I have a question", "greeting"),
        ("你好", "greeting"),
        ("您好！", "greeting"),
        ("在吗？", "greeting"),
        ("有人吗", "greeting"),
        ("thanks a lot", "thanks"),
        ("Thank you!", "thanks"),
        ("thx", "thanks"),
        ("谢谢", "thanks"),
        ("谢谢你啊", "thanks"),
        ("多谢了", "thanks"),
        ("bye", "goodbye"),
        ("that's all", "goodbye"),
        ("no thanks", "goodbye"),
        ("再见", "goodbye"),
        ("拜拜~", "goodbye"),
        ("没事了", "goodbye"),
        ("ok", "acknowledgement"),
        ("Got it", "acknowledgement"),
        ("好的", "acknowledgement"),
        ("知道了", "acknowledgement"),
        ("hi, how do I return an item?", None),
        ("thanks, what about express?", None),
        ("ok but where is my order", None),
        ("how much is shipping", None),
        ("hey can you help", None),
        ("hiking boots return", None),
        ("history of my orders", None),
        ("你好，退货运费多少？", None),
        ("谢谢，怎么退货", None),
        ("好的，那退货呢", None),
        ("好的？", None),
        ("", None),
        ("hello " * 10, None),  # too long to be only a greeting
    ],
)
def test_small_talk_is_recognised_by_kind_and_a_question_is_not_small_talk(text, kind):
    assert small_talk_kind(text) == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is my order #12345?", True),
        ("order 123456 has not arrived", True),
        ("ticket # 4567 is still open", True),
        ("我的订单12345到哪了？", True),
        ("订单号20240101123怎么还没到", True),
        ("我的订单 88888 到哪了", True),
        ("１２３４５６号订单", True),  # full-width digits are digits
        ("How much is shipping for orders over $99?", False),
        ("I paid 1,299.00 for a sofa", False),  # a price, not an order number
        ("Is 12345.67 the right total?", False),
        ("Call 1-800-555-0142", False),
        ("退货要几天？", False),
        ("满2999元包邮吗", False),
        ("ticket #12", False),
    ],
)
def test_a_question_naming_an_order_or_account_number_is_customer_specific(text, expected):
    assert customer_specific(text) is expected
