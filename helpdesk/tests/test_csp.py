"""Every HTML page carries a Content-Security-Policy without inline script, and no page needs inline script."""

from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Conversation, Message, Site

pytestmark = pytest.mark.django_db


class InlineScripts(HTMLParser):
    """Collects what a `script-src 'self'` policy would block: inline <script> bodies and on* handler attributes."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and not names.get("src") and names.get("type", "") not in ("application/json",):
            self.found.append(f"inline <script> {attrs}")
        self.found += [f"<{tag} {name}=...>" for name, _ in attrs if name.startswith("on")]
        self.found += [
            f"<{tag} {name}=javascript:>" for name, value in attrs if (value or "").startswith("javascript:")
        ]


def inline_scripts(html: str) -> list[str]:
    parser = InlineScripts()
    parser.feed(html)
    return parser.found


def directives(policy: str) -> dict[str, list[str]]:
    parts = [part.split() for part in policy.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def conversation():
    site = Site.objects.create(name="Shop")
    conversation = Conversation.objects.create(site=site, status="resolved", last_seq=1)
    Message.objects.create(conversation=conversation, seq=1, role="customer", content="<script>alert(1)</script>")
    return conversation


STAFF_PAGES = [
    "/console/",
    "/console/gaps/",
    "/playground/",
    "/reports/",
    "/reports/conversations/?metric=conversations",
    "/reports/conversations/{conversation}/",
    "/admin/",
    "/admin/helpdesk/webhook/add/",
    "/admin/chat/conversation/",
    "/admin/chat/conversation/{conversation}/change/",
]
ANONYMOUS_PAGES = ["/accounts/login/", "/admin/login/", "/accounts/password_reset/", "/"]


def check_page(response) -> None:
    assert response.status_code in (200, 503), response.status_code  # / is 503 without an active site
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    assert inline_scripts(response.content.decode()) == []


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_each_staff_page_has_a_policy_without_inline_script_and_needs_none(staff_client, conversation, path):
    check_page(staff_client.get(path.format(conversation=conversation.pk)))


@pytest.mark.parametrize("path", ANONYMOUS_PAGES)
def test_sign_in_and_public_pages_have_the_policy_too(path):
    check_page(Client().get(path))


def test_json_answers_need_no_policy(staff_client):
    response = Client().get("/widget/v1/sites/none")
    assert response["Content-Type"].startswith("application/json")
    assert "Content-Security-Policy" not in response


def test_no_template_has_an_inline_script_or_handler(settings):
    templates = sorted((settings.BASE_DIR / "templates").rglob("*.html"))
    assert templates
    found = {str(path): inline_scripts(path.read_text()) for path in templates}
    assert {path: items for path, items in found.items() if items} == {}
