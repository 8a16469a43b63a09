"""The read endpoints (conversations, messages, ratings) and the API-key endpoints, through the real views and keys."""

import datetime
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from chat.api.keys import api_key_create, api_key_revoke
from chat.models import ApiKey, Conversation, Message, Rating, Site

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def generous_ip_limit(settings):
    # Every test client request comes from 127.0.0.1: the suite would otherwise share one per-IP window.
    settings.API_RATE_LIMIT_PER_IP = 100_000


def client_for(scopes: list[str]) -> tuple[Client, ApiKey]:
    key, raw = api_key_create(name="integration", scopes=scopes)
    return Client(headers={"Authorization": f"Bearer {raw}"}), key


@pytest.fixture
def reader() -> Client:
    return client_for(["read"])[0]


@pytest.fixture
def admin_reader() -> Client:
    return client_for(["admin"])[0]


@pytest.fixture
def agent():
    return get_user_model().objects.create_user("ana", password="x")


@pytest.fixture
def site() -> Site:
    return Site.objects.create(name="Shop")


def conversation_at(when: datetime.datetime, **fields) -> Conversation:
    conversation = Conversation.objects.create(**fields)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=when)
    conversation.refresh_from_db()
    return conversation


def message(conversation: Conversation, role: str, content: str, **fields) -> Message:
    conversation.last_seq += 1
    conversation.save(update_fields=["last_seq"])
    return Message.objects.create(
        conversation=conversation, seq=conversation.last_seq, role=role, content=content, **fields
    )


def ids(body: dict) -> list[str]:
    return [item["id"] for item in body["items"]]


def test_conversations_are_listed_newest_first_with_the_count_and_a_link_to_the_next_page(reader):
    now = timezone.now()
    conversations = [conversation_at(now - datetime.timedelta(hours=h)) for h in range(5)]
    first = reader.get("/api/v1/conversations?page_size=2").json()
    assert first["count"] == 5 and first["page"] == 1 and first["page_size"] == 2
    assert ids(first) == [str(c.id) for c in conversations[:2]]
    assert first["next"] == "http://testserver/api/v1/conversations?page_size=2&page=2"
    last = reader.get("/api/v1/conversations?page_size=2&page=3").json()
    assert ids(last) == [str(conversations[4].id)] and last["next"] is None


def test_a_page_past_the_end_is_empty_and_an_invalid_page_is_a_400(reader):
    conversation_at(timezone.now())
    past = reader.get("/api/v1/conversations?page=99")
    assert past.status_code == 200 and past.json()["items"] == [] and past.json()["count"] == 1
    for query in ("page=0", "page=abc", "page_size=101", "page_size=0", "page=99999999999999999999999"):
        response = reader.get(f"/api/v1/conversations?{query}")
        if query.startswith("page=9"):  # a huge but valid page number is past the end, not a database error
            assert response.status_code == 200 and response.json()["items"] == []
            continue
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "invalid_request"


def test_conversations_are_filtered_by_status_channel_site_session_assignee_rating_and_date(reader, site, agent):
    now = timezone.now()
    reader, api_key = client_for(["chat", "read"])  # the sessions are its own: a read key sees no other key's
    widget = conversation_at(now - datetime.timedelta(days=3), site=site, status="resolved", assignee=agent)
    Rating.objects.create(conversation=widget, score=5)
    through_api = conversation_at(now - datetime.timedelta(days=1), api_key=api_key, session_id="cust-7")
    queued = conversation_at(now, site=site, status="queued")

    def listed(query: str) -> list[str]:
        response = reader.get(f"/api/v1/conversations?{query}")
        assert response.status_code == 200, response.content
        return ids(response.json())

    assert listed("status=resolved") == [str(widget.id)]
    assert listed("channel=api") == [str(through_api.id)]
    assert listed("channel=widget") == [str(queued.id), str(widget.id)]
    assert listed(f"site={site.key}") == [str(queued.id), str(widget.id)]
    assert listed("session_id=cust-7") == [str(through_api.id)]
    assert listed("assignee=ana") == [str(widget.id)]
    assert listed("rated=true") == [str(widget.id)]
    assert listed("rated=false") == [str(queued.id), str(through_api.id)]
    after = (now - datetime.timedelta(days=2)).isoformat()
    before = (now - datetime.timedelta(hours=1)).isoformat()
    assert listed(f"created_after={after.replace('+', '%2B')}") == [str(queued.id), str(through_api.id)]
    assert listed(f"created_after={after.replace('+', '%2B')}&created_before={before.replace('+', '%2B')}") == [
        str(through_api.id)
    ]
    assert listed("status=queued&channel=api") == []
    assert listed("site=no-such-site") == []
    for bad in (
        "status=lost",
        "channel=email",
        "created_after=yesterday",
        "created_after=0.5",  # pydantic alone takes numbers as Unix times
        "created_before=2025-02-30T10:00:00Z",
        "rated=perhaps",
        "assignee=%00",
    ):
        response = reader.get(f"/api/v1/conversations?{bad}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request", bad


def test_a_listed_conversation_names_its_site_key_agent_and_rating(reader, site, agent):
    reader, api_key = client_for(["chat", "read"])  # the sessions are its own: a read key sees no other key's
    conversation = conversation_at(timezone.now(), site=site, assignee=agent, customer_name="Bo", status="agent")
    Rating.objects.create(conversation=conversation, score=4, comment="quick")
    conversation_at(timezone.now() - datetime.timedelta(minutes=1), api_key=api_key, session_id="s-1")
    items = reader.get("/api/v1/conversations").json()["items"]
    assert items[0]["site"] == {"key": site.key, "name": "Shop"} and items[0]["assignee"] == "ana"
    assert items[0]["rating"]["score"] == 4 and items[0]["rating"]["comment"] == "quick"
    assert items[0]["channel"] == "widget" and items[0]["customer_name"] == "Bo" and items[0]["status"] == "agent"
    assert items[1]["channel"] == "api" and items[1]["api_key"] == api_key.prefix and items[1]["session_id"] == "s-1"
    assert items[1]["site"] is None and items[1]["rating"] is None and items[1]["assignee"] is None


def test_listing_conversations_runs_a_bounded_number_of_queries(reader, site, django_assert_max_num_queries):
    reader, api_key = client_for(["chat", "read"])  # the sessions are its own: a read key sees no other key's
    users = get_user_model().objects.bulk_create([get_user_model()(username=f"agent{i}") for i in range(5)])
    for i in range(30):
        conversation = conversation_at(
            timezone.now(), site=site, assignee=users[i % 5], api_key=api_key if i % 2 else None
        )
        Rating.objects.create(conversation=conversation, score=1 + i % 5)
    # Key lookup, last-used update, count, the page: never one query per conversation.
    with django_assert_max_num_queries(4):
        body = reader.get("/api/v1/conversations?page_size=30").json()
    assert len(body["items"]) == 30 and all(item["rating"] and item["assignee"] for item in body["items"])


def test_a_conversation_is_read_by_its_id(reader, site):
    conversation = conversation_at(timezone.now(), site=site, language="zh", region="Asia/Shanghai")
    response = reader.get(f"/api/v1/conversations/{conversation.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(conversation.id) and body["language"] == "zh" and body["region"] == "Asia/Shanghai"


def test_an_unknown_or_malformed_conversation_id_is_a_json_404(reader):
    for path in (
        f"/api/v1/conversations/{uuid.uuid4()}",
        "/api/v1/conversations/not-a-uuid",
        f"/api/v1/conversations/{uuid.uuid4()}/messages",
        "/api/v1/conversations/12345/messages",
    ):
        response = reader.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"
    # A NUL cannot reach PostgreSQL: refused as a bad address before any view (helpdesk.limits).
    response = reader.get("/api/v1/conversations/%00")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_an_unknown_address_under_the_api_is_a_json_404(reader):
    response = reader.get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_messages_carry_the_agents_name_and_the_bots_generation_stats_oldest_first(reader, agent):
    conversation = conversation_at(timezone.now())
    message(conversation, "customer", "Where is my order?")
    message(
        conversation,
        "bot",
        "Let me check.",
        engine="llamacpp",
        prompt_tokens=120,
        completion_tokens=4,
        ttft_ms=85,
        tokens_per_s=31.5,
    )
    message(conversation, "agent", "It ships today.", author=agent)
    body = reader.get(f"/api/v1/conversations/{conversation.id}/messages").json()
    assert [(m["seq"], m["role"]) for m in body["items"]] == [(1, "customer"), (2, "bot"), (3, "agent")]
    customer, bot, human = body["items"]
    assert customer["author"] is None and customer["stats"] is None and customer["content"] == "Where is my order?"
    assert bot["stats"] == {
        "engine": "llamacpp",
        "prompt_tokens": 120,
        "completion_tokens": 4,
        "ttft_ms": 85,
        "tokens_per_s": 31.5,
    }
    assert human["author"] == "ana" and human["stats"] is None and human["state"] == "complete"
    later = reader.get(f"/api/v1/conversations/{conversation.id}/messages?after_seq=2&page_size=1").json()
    assert [m["seq"] for m in later["items"]] == [3] and later["count"] == 1 and later["next"] is None


def test_a_message_lists_its_files_read_in_one_query_for_the_page(reader):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat import services

    conversation = conversation_at(timezone.now())
    for name in ("receipt.pdf", "order.pdf"):
        services.attachment_post_customer(
            conversation_id=conversation.id, upload=SimpleUploadedFile(name, b"%PDF-1.4\n%%EOF\n"), caption=name
        )
    path = f"/api/v1/conversations/{conversation.id}/messages"
    with CaptureQueriesContext(connection) as queries:
        body = reader.get(path).json()
    files = [[(a["name"], a["content_type"], a["size"]) for a in m["attachments"]] for m in body["items"]]
    assert files == [[("receipt.pdf", "application/pdf", 15)], [("order.pdf", "application/pdf", 15)]]
    assert sum('"chat_attachment"' in q["sql"] for q in queries.captured_queries) == 1


def test_a_key_downloads_a_listed_file_at_its_url_and_no_file_of_a_conversation_it_cannot_read(reader):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from chat import services
    from chat.tests.test_attachments import image_bytes

    photo = image_bytes("PNG", (640, 480))
    conversation = conversation_at(timezone.now())
    services.attachment_post_customer(conversation_id=conversation.id, upload=SimpleUploadedFile("sofa.png", photo))
    [item] = reader.get(f"/api/v1/conversations/{conversation.id}/messages").json()["items"][0]["attachments"]
    assert item["url"] == f"/api/v1/conversations/{conversation.id}/attachments/{item['id']}"

    response = reader.get(item["url"])
    assert response.status_code == 200 and b"".join(response.streaming_content) == photo
    assert (response["Content-Type"], response["X-Content-Type-Options"]) == ("image/png", "nosniff")
    assert response["Content-Disposition"] == 'inline; filename="sofa.png"'
    thumb = reader.get(item["url"] + "?thumb=1")
    assert thumb["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(b"".join(thumb.streaming_content))).size == (320, 240)

    # Not without a key, not under another conversation's id, nor in another key's API session.
    assert Client().get(item["url"]).status_code == 401
    elsewhere = conversation_at(timezone.now())
    assert reader.get(f"/api/v1/conversations/{elsewhere.id}/attachments/{item['id']}").status_code == 404
    assert reader.get(f"/api/v1/conversations/{conversation.id}/attachments/not-a-uuid").status_code == 404
    _, other_key = client_for(["chat"])
    Conversation.objects.filter(pk=conversation.pk).update(api_key=other_key)
    missing = reader.get(item["url"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_private_notes_are_only_shown_to_keys_with_the_admin_scope(reader, admin_reader, agent):
    conversation = conversation_at(timezone.now())
    message(conversation, "customer", "Hello")
    message(conversation, "note", "VIP, be nice", author=agent)
    path = f"/api/v1/conversations/{conversation.id}/messages"
    assert [m["role"] for m in reader.get(path).json()["items"]] == ["customer"]
    notes = [m for m in admin_reader.get(path).json()["items"] if m["role"] == "note"]
    assert [(n["content"], n["author"]) for n in notes] == [("VIP, be nice", "ana")]


def test_ratings_are_filtered_by_score_date_and_site_with_their_conversation_and_agent(reader, site, agent):
    now = timezone.now()
    ratings = {}
    for score, days_ago in ((1, 3), (3, 2), (5, 1)):
        conversation = conversation_at(now, site=site if score != 3 else None, assignee=agent if score == 5 else None)
        ratings[score] = Rating.objects.create(conversation=conversation, score=score)
        Rating.objects.filter(pk=ratings[score].pk).update(created_at=now - datetime.timedelta(days=days_ago))

    def scores(query: str = "") -> list[int]:
        response = reader.get(f"/api/v1/ratings?{query}")
        assert response.status_code == 200, response.content
        return [item["score"] for item in response.json()["items"]]

    assert scores() == [5, 3, 1]
    assert scores("score=3") == [3]
    assert scores("min_score=2") == [5, 3] and scores("max_score=3") == [3, 1]
    assert scores("min_score=2&max_score=4") == [3]
    since = (now - datetime.timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert scores(f"created_after={since}") == [5, 3]
    assert scores(f"site={site.key}") == [5, 1]
    top = reader.get("/api/v1/ratings?score=5").json()["items"][0]
    assert top["conversation_id"] == str(ratings[5].conversation_id) and top["assignee"] == "ana"
    assert top["site"] == site.key
    assert reader.get("/api/v1/ratings?score=6").status_code == 400


def test_requests_without_a_key_or_with_a_wrong_key_are_401(reader):
    anonymous = Client().get("/api/v1/conversations")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"
    _, raw = api_key_create(name="x", scopes=["read"])
    wrong = Client(headers={"Authorization": f"Bearer {raw[:-2]}xx"}).get("/api/v1/conversations")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    garbage = Client(headers={"X-API-Key": "sk-not-ours"}).get("/api/v1/ratings")
    assert garbage.status_code == 401 and garbage.json()["error"]["code"] == "invalid_api_key"


def test_a_revoked_key_is_refused(reader):
    key, raw = api_key_create(name="old", scopes=["read"])
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    assert client.get("/api/v1/conversations").status_code == 200
    api_key_revoke(key_id=key.pk)
    response = client.get("/api/v1/conversations")
    assert response.status_code == 401 and response.json()["error"]["code"] == "api_key_revoked"


def test_a_chat_only_key_may_not_read(site):
    client, _ = client_for(["chat"])
    conversation = conversation_at(timezone.now(), site=site)
    for path in (
        "/api/v1/conversations",
        f"/api/v1/conversations/{conversation.id}",
        f"/api/v1/conversations/{conversation.id}/messages",
        "/api/v1/ratings",
        "/api/v1/api-keys",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "insufficient_scope"


def test_using_a_key_records_when_it_was_last_used():
    client, key = client_for(["read"])
    assert key.last_used_at is None
    before = timezone.now()
    client.get("/api/v1/ratings")
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_at >= before


def test_admin_keys_list_every_key_without_its_secret_or_hash(admin_reader, reader):
    listed = admin_reader.get("/api/v1/api-keys")
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert {item["scopes"][0] for item in items} == {"admin", "read"}
    assert all(item["active"] and item["revoked_at"] is None and len(item["prefix"]) == 8 for item in items)
    stored = ApiKey.objects.values_list("key_hash", flat=True)
    assert not any(key_hash in listed.content.decode() for key_hash in stored)
    assert set(items[0]) == {
        "name",
        "prefix",
        "scopes",
        "rate_limit_per_minute",
        "acts_as",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "active",
    }
    assert reader.get("/api/v1/api-keys").json()["error"]["code"] == "insufficient_scope"


def test_an_admin_key_revokes_another_key_which_then_stops_working(admin_reader):
    victim, raw = api_key_create(name="leaked", scopes=["read"])
    response = admin_reader.post(f"/api/v1/api-keys/{victim.prefix}/revoke")
    assert response.status_code == 200
    assert response.json()["active"] is False and response.json()["revoked_at"] is not None
    refused = Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/v1/ratings")
    assert refused.json()["error"]["code"] == "api_key_revoked"
    assert admin_reader.post("/api/v1/api-keys/deadbeef/revoke").status_code == 404
    assert admin_reader.post("/api/v1/api-keys/NOT-A-PREFIX/revoke").status_code == 400
