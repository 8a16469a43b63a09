"""The widget's HTTP API: site config, opening a conversation, leaving a message; origins, CORS and limits."""

import datetime
import json

import pytest
from django.core.cache import cache
from django.utils import timezone

from chat import availability
from chat.models import Conversation, HandoffReason, Message, Site, SiteHours
from helpdesk.models import Ticket

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()  # rate-limit counters and the bot-failing flag live in the cache
    yield
    cache.clear()


@pytest.fixture
def site():
    return Site.objects.create(name="Shop", allowed_origins=f"{SHOP}\nhttps://www.example.com:8443")


def post(client, site, path, body, origin=SHOP, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return client.post(
        f"/widget/v1/sites/{site.key}/{path}", data=data, content_type="application/json", **headers, **extra
    )


def test_config_answers_an_allowed_origin_with_cors(client, site):
    response = client.get(f"/widget/v1/sites/{site.key}", HTTP_ORIGIN=SHOP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SHOP and "Origin" in response["Vary"]
    data = response.json()
    assert data["site"]["name"] == "Shop" and data["site"]["theme_color"] == "#1f6feb"
    assert data["site"]["prechat"] == {"name": "optional", "email": "optional"}
    assert data["availability"]["mode"] == "chat"


def test_a_foreign_origin_is_refused_everywhere(client, site):
    evil = "https://evil.example"
    config = client.get(f"/widget/v1/sites/{site.key}", HTTP_ORIGIN=evil)
    opened = post(client, site, "conversations", {}, origin=evil)
    left = post(client, site, "messages", {"email": "a@b.co", "content": "hi"}, origin=evil)
    preflight = client.options(f"/widget/v1/sites/{site.key}/conversations", HTTP_ORIGIN=evil)
    for response in (config, opened, left, preflight):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "origin_not_allowed"
    assert not Conversation.objects.exists()


def test_origin_matching_is_exact_but_canonical(client, site):
    def status(origin):
        return client.get(f"/widget/v1/sites/{site.key}", HTTP_ORIGIN=origin).status_code

    assert status("HTTPS://Shop.Example.com:443") == 200  # same origin, other spelling
    assert status("https://www.example.com:8443") == 200
    assert status("https://www.example.com") == 403  # other port
    assert status("http://shop.example.com") == 403  # other scheme
    assert status("https://shop.example.com.evil.example") == 403
    assert status("null") == 403


def test_the_helpdesks_own_pages_are_always_allowed(client, site):
    response = client.get(f"/widget/v1/sites/{site.key}", HTTP_ORIGIN="http://testserver", HTTP_HOST="testserver")
    assert response.status_code == 200


def test_preflight_allows_the_json_post(client, site):
    response = client.options(
        f"/widget/v1/sites/{site.key}/conversations",
        HTTP_ORIGIN=SHOP,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Allow-Headers"] == "Content-Type"


def test_unknown_or_inactive_site_is_404(client, site):
    assert client.get("/widget/v1/sites/nope", HTTP_ORIGIN=SHOP).json()["error"]["code"] == "unknown_site"
    site.is_active = False
    site.save()
    assert client.get(f"/widget/v1/sites/{site.key}", HTTP_ORIGIN=SHOP).status_code == 404


def test_opening_a_conversation_stores_the_pre_chat_form(client, site):
    body = {
        "name": " Ann ",
        "email": "ann@example.com",
        "language": "zh",
        "region": "Asia/Shanghai",
        "page_url": "https://shop.example.com/cart?x=1",
    }
    response = post(client, site, "conversations", body)
    assert response.status_code == 201
    data = response.json()
    conversation = Conversation.objects.get(pk=data["id"])
    assert data["secret"] and data["secret"] not in conversation.secret_hash
    assert data["websocket"] == f"/ws/chat/{conversation.id}/"
    assert conversation.site == site
    assert (conversation.customer_name, conversation.customer_email) == ("Ann", "ann@example.com")
    assert (conversation.language, conversation.region) == ("zh", "Asia/Shanghai")
    assert conversation.page_url == "https://shop.example.com/cart"


@pytest.mark.parametrize("kind", ["conversations", "messages"])
def test_the_page_address_is_stored_without_query_fragment_or_credentials(client, site, kind):
    # Reset and OAuth tokens live in the query and fragment of the customer's page; a password in its user-info.
    page = "https://ann:hunter2@shop.example.com/account/reset?token=s3cr3t-reset#access_token=oauth-s3cr3t"
    body = {"name": "Ann", "email": "ann@example.com", "page_url": page, "content": "Hello"}
    response = post(client, site, kind, body)
    assert response.status_code == 201, response.content
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.page_url == "https://shop.example.com/account/reset"


def test_a_page_address_that_is_not_http_is_not_stored(client, site):
    response = post(client, site, "conversations", {"page_url": "javascript:alert(1)//?token=x"})
    assert Conversation.objects.get(pk=response.json()["id"]).page_url == ""


def test_a_proxy_region_header_beats_the_browser(client, site, settings):
    settings.CHAT_REGION_HEADER = "CF-IPCountry"
    response = post(client, site, "conversations", {"region": "Europe/Paris"}, HTTP_CF_IPCOUNTRY="DE")
    assert Conversation.objects.get(pk=response.json()["id"]).region == "DE"


def test_required_fields_follow_the_site(client, site):
    site.prechat_name = Site.Field.REQUIRED
    site.prechat_email = Site.Field.REQUIRED
    site.save()
    missing = post(client, site, "conversations", {"name": "Ann"})
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "code": "field_required",
        "message": missing.json()["error"]["message"],
        "field": "email",
    }
    assert post(client, site, "conversations", {"name": "Ann", "email": "ann@example.com"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{oops", 400, "invalid_json"),
        ("[]", 400, "invalid_body"),
        ({"name": 5}, 400, "invalid_field"),
        ({"email": "not-an-email"}, 400, "invalid_email"),
        ({"name": "x" * 30000}, 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_create_nothing(client, site, body, status, code):
    response = post(client, site, "conversations", body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response["Access-Control-Allow-Origin"] == SHOP  # the widget can read why
    assert not Conversation.objects.exists()


def test_get_on_a_post_endpoint_is_405(client, site):
    assert client.get(f"/widget/v1/sites/{site.key}/conversations", HTTP_ORIGIN=SHOP).status_code == 405


def test_new_conversations_per_ip_are_limited_per_site(client, site):
    other = Site.objects.create(name="Other", allowed_origins=SHOP)
    for _ in range(6):
        assert post(client, site, "conversations", {}).status_code == 201
    refused = post(client, site, "conversations", {})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and 12 * 3600 - 5 <= error["retry_after"] <= 12 * 3600
    assert refused["Retry-After"] == str(error["retry_after"])
    # Another address, and the same address on another site, are counted apart.
    assert post(client, site, "conversations", {}, REMOTE_ADDR="10.0.0.2").status_code == 201
    assert post(client, other, "conversations", {}).status_code == 201
    assert Conversation.objects.count() == 8


def test_behind_a_proxy_the_forwarded_address_is_counted(client, site, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's address is the proxy
    site.conversations_per_ip = 1
    site.save()
    assert post(client, site, "conversations", {}, HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 201
    assert post(client, site, "conversations", {}, HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 429
    assert post(client, site, "conversations", {}, HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 201
    # A customer cannot pretend to be someone else by prepending addresses: only the proxy's entry counts.
    assert post(client, site, "conversations", {}, HTTP_X_FORWARDED_FOR="9.9.9.9, 1.1.1.1").status_code == 429


def test_leaving_a_message_opens_a_ticket_for_the_team(client, site):
    body = {"name": "Bo", "email": "bo@example.com", "content": "Please call me back about my invoice."}
    response = post(client, site, "messages", body)
    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.status == Conversation.Status.QUEUED
    assert conversation.handoff_reason == HandoffReason.OFFLINE_MESSAGE
    messages = list(conversation.messages.order_by("seq").values_list("role", "content"))
    assert messages[0] == ("customer", body["content"])
    assert messages[1][0] == "system" and "bo@example.com" in messages[1][1]
    assert len(messages) == 2  # no "leave your email" request: the customer just did
    ticket = Ticket.objects.get(conversation=conversation)
    assert ticket.subject.startswith("Please call me back")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"content": "hi"}, "field_required", "email"),
        ({"email": "bo@example.com", "content": "  "}, "empty_message", "content"),
        ({"email": "bo@example.com", "content": "x" * 5000}, "message_too_long", "content"),
    ],
)
def test_a_bad_left_message_is_refused_and_nothing_is_stored(client, site, body, code, field):
    response = post(client, site, "messages", body)
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_nobody_to_answer_means_offline_mode(client, site):
    def mode():
        return client.get(f"/widget/v1/sites/{site.key}", HTTP_ORIGIN=SHOP).json()["availability"]["mode"]

    assert mode() == "chat"  # the bot answers
    site.bot_enabled = False
    site.save()
    assert mode() == "offline"  # bot off and no agent online
    availability.agents_available_register(lambda: True)
    try:
        assert mode() == "chat"  # an agent is online within business hours (none set: always open)
        yesterday = (timezone.now().astimezone(datetime.UTC) - datetime.timedelta(days=1)).weekday()
        SiteHours.objects.create(site=site, weekday=yesterday, opens=datetime.time(0), closes=datetime.time(23, 59))
        assert mode() == "offline"  # agents online, but outside business hours
        site.bot_enabled = True
        site.save()
        assert mode() == "chat"
        availability.bot_failed()
        assert mode() == "offline"  # the bot is failing and it is outside hours
        availability.bot_recovered()
        assert mode() == "chat"
    finally:
        from helpdesk.services import agents_available

        availability.agents_available_register(agents_available)


def test_business_hours_follow_the_sites_time_zone():
    site = Site.objects.create(name="Shanghai", timezone="Asia/Shanghai")
    SiteHours.objects.create(site=site, weekday=0, opens=datetime.time(9), closes=datetime.time(18))
    monday_utc = datetime.datetime(2026, 11, 23, tzinfo=datetime.UTC)  # a Monday
    assert site.is_open(monday_utc.replace(hour=2))  # 10:00 in Shanghai
    assert not site.is_open(monday_utc.replace(hour=11))  # 19:00 in Shanghai
    assert not site.is_open(monday_utc.replace(hour=0, minute=30))  # 08:30
    assert not site.is_open(monday_utc.replace(day=24, hour=2))  # Tuesday


def test_the_hosted_page_embeds_the_first_site(client, site):
    first = Site.objects.filter(is_active=True).first()  # the one a migration creates, on a fresh install
    response = client.get("/")
    assert response.status_code == 200
    assert f'data-site-key="{first.key}"'.encode() in response.content and b"widget.js" in response.content


def test_the_hosted_page_says_when_no_site_is_set_up(client):
    Site.objects.all().delete()
    response = client.get("/")
    assert response.status_code == 503 and b"add a site" in response.content
