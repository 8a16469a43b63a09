import pytest

from inference.language import language_base, language_guess, language_name


@pytest.mark.parametrize(
    ("tag", "base"),
    [("zh-CN", "zh"), ("zh-Hans-CN", "zh"), ("ZH_tw", "zh"), ("en", "en"), ("EN-us", "en"), (" fr ", "fr"), ("", "")],
)
def test_a_tag_is_reduced_to_its_base_language(tag, base):
    assert language_base(tag) == base


def test_the_prompt_names_the_language_and_keeps_unknown_tags_as_given():
    assert language_name("zh-TW") == "Chinese (简体中文)" and language_name("en-GB") == "English"
    assert language_name("pt-BR") == "pt-BR"


def test_the_answer_language_follows_the_customers_script():
    assert language_guess("我的订单在哪里?") == "zh" and language_guess("Where is my order?") == "en"
    assert language_guess("注文はどこ") == "zh"  # CJK script: answered in Chinese, the bot's other language
