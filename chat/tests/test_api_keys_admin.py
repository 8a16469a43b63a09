"""Staff create, edit and revoke API keys in the admin; the secret is shown once and only its hash is stored."""

import hashlib
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from chat import services as chat_services
from chat.api.keys import api_key_create, api_key_revoke
from chat.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(staff, settings):
    settings.API_RATE_LIMIT_PER_IP = 10_000
    response = staff.post(
        "/admin/chat/apikey/add/",
        {"name": "Shop backend", "scopes": ["read", "chat"], "rate_limit_per_minute": "120"},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    shown = re.findall(r"hd_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}", page)
    assert len(shown) == 1 and "it will not be shown again" in page
    raw = shown[0]

    key = ApiKey.objects.get()
    assert key.name == "Shop backend" and key.scopes == ["chat", "read"] and key.rate_limit_per_minute == 120
    assert key.created_by.username == "boss" and raw.startswith(f"hd_{key.prefix}_")
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert not ApiKey.objects.filter(key_hash=raw).exists() and raw not in str(ApiKey.objects.values().get())

    # The key works, and no later page shows it again.
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/v1/ratings").status_code == 200
    for path in ("/admin/chat/apikey/", f"/admin/chat/apikey/{key.pk}/change/"):
        later = staff.get(path).content.decode()
        assert raw not in later and key.key_hash not in later and f"hd_{key.prefix}_…" in later


def test_a_key_needs_at_least_one_scope(staff):
    response = staff.post("/admin/chat/apikey/add/", {"name": "Nothing", "rate_limit_per_minute": ""})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_list_shows_scopes_creator_and_whether_a_key_is_active(staff):
    user = get_user_model().objects.get(username="boss")
    api_key_create(name="Reporting", scopes=["read"], created_by=user)
    old, _raw = api_key_create(name="Retired", scopes=["chat", "admin"])
    api_key_revoke(key_id=old.pk)
    page = staff.get("/admin/chat/apikey/").content.decode()
    assert "Reporting" in page and "read" in page and "boss" in page and "chat, admin" in page
    assert 'alt="True"' in page and 'alt="False"' in page
    revoked = staff.get("/admin/chat/apikey/?status=revoked").content.decode()
    assert "Retired" in revoked and "Reporting" not in revoked


def test_name_scopes_and_limit_are_editable_but_the_key_itself_is_not(staff):
    key, _raw = api_key_create(name="Old name", scopes=["read"])
    response = staff.post(
        f"/admin/chat/apikey/{key.pk}/change/",
        {"name": "New name", "scopes": ["admin"], "rate_limit_per_minute": "", "prefix": "ffffffff"},
    )
    assert response.status_code == 302
    edited = ApiKey.objects.get(pk=key.pk)
    assert (edited.name, edited.scopes, edited.prefix, edited.key_hash) == (
        "New name",
        ["admin"],
        key.prefix,
        key.key_hash,
    )


def test_the_revoke_action_stops_the_selected_keys(staff, settings):
    settings.API_RATE_LIMIT_PER_IP = 10_000
    leaked, leaked_raw = api_key_create(name="Leaked", scopes=["read"])
    kept, kept_raw = api_key_create(name="Kept", scopes=["read"])
    response = staff.post("/admin/chat/apikey/", {"action": "revoke", "_selected_action": [leaked.pk]}, follow=True)
    assert "Revoked 1 API key" in response.content.decode()
    leaked.refresh_from_db()
    kept.refresh_from_db()
    assert leaked.revoked_at is not None and kept.revoked_at is None
    refused = Client(headers={"Authorization": f"Bearer {leaked_raw}"}).get("/api/v1/ratings")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "api_key_revoked"
    assert Client(headers={"Authorization": f"Bearer {kept_raw}"}).get("/api/v1/ratings").status_code == 200


def test_an_agent_key_is_refused_without_a_member_to_act_as_and_acts_as_the_one_chosen(staff, settings):
    settings.API_RATE_LIMIT_PER_IP = 10_000
    ann = get_user_model().objects.create_user("ann", password="x")
    ann.groups.add(Group.objects.get(name="agent"))
    refused = staff.post("/admin/chat/apikey/add/", {"name": "Bot", "scopes": ["agent"], "rate_limit_per_minute": ""})
    assert refused.status_code == 200 and "acts as a staff member" in refused.content.decode()
    assert not ApiKey.objects.exists()
    response = staff.post(
        "/admin/chat/apikey/add/",
        {"name": "Bot", "scopes": ["agent", "contacts"], "acts_as": ann.pk, "rate_limit_per_minute": ""},
        follow=True,
    )
    raw = re.findall(r"hd_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}", response.content.decode())[0]
    key = ApiKey.objects.get()
    assert (key.scopes, key.acts_as) == (["agent", "contacts"], ann)
    # Taking the member away from a key that needs one is refused too.
    edit = staff.post(
        f"/admin/chat/apikey/{key.pk}/change/", {"name": "Bot", "scopes": ["agent"], "rate_limit_per_minute": ""}
    )
    assert edit.status_code == 200 and ApiKey.objects.get().acts_as == ann
    # The key works as ann (a waiting conversation is no one's: nothing to resolve, 409 and not 403).
    conversation, _ = chat_services.conversation_start(customer_name="Li")
    answer = Client(headers={"Authorization": f"Bearer {raw}"}).post(f"/api/v1/conversations/{conversation.id}/resolve")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_assigned"
    listed = Client(headers={"Authorization": f"Bearer {api_key_create(name='a', scopes=['admin'])[1]}"})
    assert [item["acts_as"] for item in listed.get("/api/v1/api-keys").json()["items"]] == [None, "ann"]
