"""Reply emails keep the customer's own words: quoted history and signatures of common mail clients are cut off."""

import pytest

from chat.email.quotes import reply_text

ADDRESS = "reply+0f3c9a1e2b5d4c6f8a7b9c0d1e2f3a4b.0123456789abcdef@reply.example.com"

CASES = {
    "gmail": (
        f"Thanks, that works!\n\nOn Tue, Dec 3, 2026 at 10:00 AM Acme Support <{ADDRESS}> wrote:\n"
        "> Hello Ann,\n> Your parcel ships today.\n",
        "Thanks, that works!",
    ),
    "gmail_wrapped_header": (
        f"Great, see you then.\r\n\r\nOn Tue, Dec 3, 2026 at 10:00 AM Acme Support <\r\n{ADDRESS}> wrote:\r\n\r\n"
        "> Hello\r\n",
        "Great, see you then.",
    ),
    "apple_mail_iphone": (
        "Perfect\n\nSent from my iPhone\n\n> On 3 Dec 2026, at 10:00, Acme Support <support@acme.test> wrote:\n>\n"
        "> Hi\n",
        "Perfect",
    ),
    "outlook_desktop": (
        "Yes please, go ahead.\n\nRegards\n\n-----Original Message-----\nFrom: Acme Support <support@acme.test>\n"
        "Sent: Tuesday, December 3, 2026 10:00 AM\nTo: Ann\nSubject: New reply from Acme\n\nHello Ann\n",
        "Yes please, go ahead.\n\nRegards",
    ),
    "outlook_web": (
        "Sure.\n\n________________________________\nFrom: Acme Support <support@acme.test>\n"
        "Sent: Tuesday, December 3, 2026 10:00\nTo: ann@example.com\nSubject: Re: order\n\nHello\n",
        "Sure.",
    ),
    "signature_delimiter": ("Thanks a lot\n-- \nAnn Smith\nHead of Ops, Foo Ltd\n", "Thanks a lot"),
    "chinese_gmail": (
        f"收到,谢谢!\n\nAcme Support <{ADDRESS}> 于2026年12月3日周二 10:00写道:\n\n> 您好,包裹今天发货。\n",
        "收到,谢谢!",
    ),
    "chinese_apple_mail": (
        "好的,明天见。\n\n在 2026年12月3日,10:00,Acme Support <support@acme.test> 写道:\n\n> 您好\n",
        "好的,明天见。",
    ),
    "chinese_qq_foxmail": (
        '可以退款吗?\n\n------------------ 原始邮件 ------------------\n发件人: "Acme"<support@acme.test>;\n'
        '发送时间: 2026年12月3日(星期二) 上午10:00\n收件人: "安"<ann@example.com>;\n',
        "可以退款吗?",
    ),
    "chinese_outlook": (
        "没问题\n\n发件人: Acme Support <support@acme.test>\n发送时间: 2026年12月3日 10:00\n收件人: 安\n主题: 回复\n",
        "没问题",
    ),
    "chinese_phone_signature": ("好的\n\n\n发自我的iPhone\n", "好的"),
    "interleaved_quotes_keep_the_answers": (
        "> Which size?\nLarge\n> Which colour?\nBlue\n",
        "Large\nBlue",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_quoted_history_and_signatures_are_stripped(case):
    body, expected = CASES[case]
    assert reply_text(body) == expected


def test_a_reply_without_quotes_is_kept_whole_including_lines_that_merely_look_like_headers():
    body = "From: my experience the blue one fits better.\n\nOn Monday I can collect it.\nThanks"
    assert reply_text(body) == body


def test_a_reply_that_is_only_quotes_is_empty():
    assert reply_text("> quoted\n> only\n") == ""
