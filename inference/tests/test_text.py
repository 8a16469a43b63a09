import pytest

from inference.text import FullwidthPunctuation, fullwidth_punctuation


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
