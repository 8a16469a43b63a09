import pytest
from django.core.exceptions import ValidationError

from inference import selectors, services
from inference.fallback import Rule, rule_answer
from inference.models import FallbackRule, SystemPrompt
from inference.prompt import DEFAULT_SYSTEM_PROMPT

RULES = [
    Rule(keywords=("退款", "refund"), answer="Refunds take 5 days.", language=""),
    Rule(keywords=("password",), answer="Use 'Forgot password' on the login page.", language="en"),
    Rule(keywords=("password", "密码"), answer="请在登录页点击“忘记密码”。", language="zh"),
]


@pytest.mark.parametrize(
    ("text", "language", "answer"),
    [
        ("I forgot my PASSWORD", "en-US", "Use 'Forgot password' on the login page."),
        ("我的密码忘了", "zh-CN", "请在登录页点击“忘记密码”。"),
        ("password 不对", "zh", "请在登录页点击“忘记密码”。"),
        ("我要退款", "zh", "Refunds take 5 days."),
        ("Where is my parcel?", "en", None),
    ],
)
def test_first_matching_rule_for_the_language_answers(text, language, answer):
    assert rule_answer(text, RULES, language=language) == answer


@pytest.mark.django_db
def test_rules_come_from_the_database_in_priority_order():
    FallbackRule.objects.create(name="late", keywords="order", answer="B", priority=50)
    FallbackRule.objects.create(name="early", keywords="where is\norder", answer="A", priority=10)
    FallbackRule.objects.create(name="off", keywords="order", answer="C", priority=1, enabled=False)
    assert rule_answer("Where is my order?", selectors.fallback_rules()) == "A"


@pytest.mark.django_db
def test_prompt_versions_are_published_and_activated():
    assert selectors.system_prompt_active() == DEFAULT_SYSTEM_PROMPT
    first = services.system_prompt_publish(template="You help {{company_name}} customers.", note="short")
    second = services.system_prompt_publish(template="Be brief. It is {{current_time}}.")
    assert (first.version, second.version) == (1, 2)
    assert selectors.system_prompt_active() == "Be brief. It is {{current_time}}."
    services.system_prompt_activate(prompt_id=first.pk)
    assert selectors.system_prompt_active() == "You help {{company_name}} customers."
    assert SystemPrompt.objects.filter(is_active=True).count() == 1


@pytest.mark.django_db
def test_an_unknown_variable_is_refused_at_save_time():
    with pytest.raises(ValidationError, match="customer_age"):
        services.system_prompt_publish(template="Hello {{customer_age}}")
    assert not SystemPrompt.objects.exists()


@pytest.mark.django_db
def test_admin_saves_edits_as_a_new_version(admin_client):
    response = admin_client.post(
        "/admin/inference/systemprompt/add/", {"template": "Hi from {{company_name}}.", "note": "first"}
    )
    assert response.status_code == 302
    response = admin_client.post("/admin/inference/systemprompt/add/", {"template": "Bad {{nope}}", "note": "broken"})
    assert response.status_code == 200 and b"unknown prompt variables: nope" in response.content
    assert list(SystemPrompt.objects.values_list("version", "is_active")) == [(1, True)]
