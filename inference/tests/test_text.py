import pytest

from inference.text import FullwidthPunctuation, fullwidth_punctuation, reply_cut_short, sentence_end_last


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("您好,请问有什么可以帮您?", "您好，请问有什么可以帮您？"),
        ("订单已发货.预计3.5天到达!", "订单已发货。预计3.5天到达！"),
        ("请访问 https://example.com/a,b?x=1 查看.", "请访问 https://example.com/a,b?x=1 查看。"),
        ("运行 `print(a, b)` 即可:", "运行 `print(a, b)` 即可："),
        ("金额为 1,299.00 元(含税).", "金额为 1,299.00 元（含税）。"),
        ("Hello, world. No change!", "Hello, world. No change!"),
    ],
)
def test_chinese_punctuation_becomes_full_width_outside_code_urls_and_numbers(raw, expected):
    assert fullwidth_punctuation(raw) == expected


def test_streamed_pieces_convert_like_the_whole_text():
    text = "好的,我来查一下(订单 `a.b`).稍等!"
    converter = FullwidthPunctuation()
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    assert "".join(converter.feed(p) for p in pieces) == fullwidth_punctuation(text)


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("Hello. How are", 6),
        ("It costs 3.5 euros and", 0),
        ("Steps:\n1. Open the app\n2. Tap", 0),
        ("您好。订单已发货，预计", 3),
        ('He said "yes." Then', 14),
        ("Nothing ends here", 0),
    ],
)
def test_the_last_sentence_end_skips_numbers_and_list_markers(text, end):
    assert sentence_end_last(text) == end


def test_a_cut_reply_goes_back_to_its_last_sentence_when_that_keeps_most_of_it():
    text = "Your parcel left our warehouse on Monday. It should arrive within three days. If it does not, we"
    assert (
        reply_cut_short(text, "en") == "Your parcel left our warehouse on Monday. It should arrive within three days."
    )
    chinese = "您的包裹已于周一发出。预计三天内送达！如果没有按时送达，我们"
    assert reply_cut_short(chinese, "zh-CN") == "您的包裹已于周一发出。预计三天内送达！"


def test_a_cut_reply_with_little_before_its_last_sentence_says_that_it_was_cut():
    text = "Sure. To change your delivery address, open the order page, choose the parcel, then pick a new address,"
    assert reply_cut_short(text, "en") == (
        "Sure. To change your delivery address, open the order page, choose the parcel, then pick a new address… "
        "(reply cut short)"
    )
    assert reply_cut_short("要修改收货地址，请打开订单页面，选择包裹，然后", "zh") == (
        "要修改收货地址，请打开订单页面，选择包裹，然后…（回复已截断）"
    )


def test_a_reply_that_happens_to_end_a_sentence_stays_whole():
    assert reply_cut_short("It arrives on Monday.  ", "en") == "It arrives on Monday."
