"""The contacts API (scope `contacts`): list, read, create, update, and link a conversation, through real keys."""

import pytest
from django.test import Client

from chat import services
from chat.api.keys import api_key_create
from chat.models import Contact, Conversation, Site

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def generous_ip_limit(settings):
    settings.API_RATE_LIMIT_PER_IP = 100_000


def client_for(scopes: list[str]) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_key_create(name='crm', scopes=scopes)[1]}"})


@pytest.fixture
def crm() -> Client:
    return client_for(["contacts"])


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def create(client: Client, **body):
    return client.post("/api/v1/contacts", body, content_type="application/json")


def test_a_contact_is_created_read_and_updated_but_never_verified_here(crm):
    site = Site.objects.create(name="Shop")
    made = create(
        crm,
        site=site.key,
        external_id="u-42",
        name="Li Lei",
        email="li@example.com",
        language="zh-CN",
        attributes={"plan": "gold", "orders": 3},
    )
    assert made.status_code == 201, made.content
    contact = made.json()
    assert {k: contact[k] for k in ("site", "external_id", "name", "email", "language", "verified", "attributes")} == {
        "site": site.key,
        "external_id": "u-42",
        "name": "Li Lei",
        "email": "li@example.com",
        "language": "zh-CN",
        "verified": False,
        "attributes": {"plan": "gold", "orders": 3},
    }
    assert crm.get(f"/api/v1/contacts/{contact['id']}").json() == contact
    changed = crm.patch(
        f"/api/v1/contacts/{contact['id']}", {"phone": "+86 10 1234", "name": ""}, content_type="application/json"
    )
    assert changed.status_code == 200
    assert (changed.json()["phone"], changed.json()["name"], changed.json()["email"]) == (
        "+86 10 1234",
        "",
        "li@example.com",
    )
    # A new external id is only claimed: a contact the site had verified is no longer.
    Contact.objects.filter(pk=contact["id"]).update(verified=True)
    moved = crm.patch(f"/api/v1/contacts/{contact['id']}", {"external_id": "u-43"}, content_type="application/json")
    assert moved.json()["verified"] is False


def test_contacts_are_listed_newest_first_filtered_and_paginated(crm):
    site = Site.objects.create(name="Shop")
    for i in range(3):
        assert (
            create(crm, name=f"C{i}", email=f"c{i}@example.com", site=site.key, external_id=f"x{i}").status_code == 201
        )
    create(crm, name="Elsewhere", email="C1@Example.com")

    def names(query: str = "") -> list[str]:
        response = crm.get(f"/api/v1/contacts?{query}")
        assert response.status_code == 200, response.content
        return [item["name"] for item in response.json()["items"]]

    assert names() == ["Elsewhere", "C2", "C1", "C0"]
    assert names("email=c1@example.com") == ["Elsewhere", "C1"]  # an address in any case
    assert names("external_id=x2") == ["C2"] and names(f"site={site.key}&external_id=x1") == ["C1"]
    assert names("external_id=x") == [] and names("verified=true") == []
    page = crm.get("/api/v1/contacts?page_size=3").json()
    assert page["count"] == 4 and len(page["items"]) == 3 and "page=2" in page["next"]


def test_refusals_answer_in_the_apis_format(crm):
    site = Site.objects.create(name="Shop")
    for body in (
        {},
        {"name": "   "},
        {"email": "not an address"},
        {"name": 5},
        {"attributes": [1]},
        {"name": "a" * 121},
    ):
        assert error_of(create(crm, **body)) == (400, "invalid_request"), body
    assert error_of(create(crm, name="A", attributes={"notes": "x" * 9000})) == (400, "invalid_contact")
    assert error_of(create(crm, name="A", site="no-such-site")) == (404, "unknown_site")
    assert create(crm, site=site.key, external_id="u-1").status_code == 201
    assert error_of(create(crm, site=site.key, external_id="u-1")) == (409, "contact_exists")
    assert error_of(crm.get("/api/v1/contacts/999999")) == (404, "not_found")
    patch = crm.patch("/api/v1/contacts/999999", {"name": "B"}, content_type="application/json")
    assert error_of(patch) == (404, "not_found")
    assert Contact.objects.count() == 1


def test_a_conversation_is_linked_to_a_contact_and_unlinked(crm):
    conversation, _ = services.conversation_start(customer_name="Li")
    contact = create(crm, name="Li Lei").json()
    path = f"/api/v1/conversations/{conversation.id}/contact"
    linked = crm.post(path, {"contact_id": contact["id"]}, content_type="application/json")
    assert linked.status_code == 200 and linked.json()["contact_id"] == contact["id"]
    conversation.refresh_from_db()
    assert conversation.contact_id == contact["id"] and not conversation.identity_verified
    assert crm.post(path, {"contact_id": None}, content_type="application/json").json()["contact_id"] is None
    assert error_of(crm.post(path, {"contact_id": 999999}, content_type="application/json")) == (404, "unknown_contact")
    assert error_of(crm.post(path, {}, content_type="application/json")) == (400, "invalid_request")
    # Another integration's API session is not this key's to touch, as for the read endpoints.
    other, _raw = api_key_create(name="other", scopes=["chat"])
    session = services.conversation_for_api_session(api_key=other, session_id="s-1")
    refused = crm.post(
        f"/api/v1/conversations/{session.id}/contact", {"contact_id": contact["id"]}, content_type="application/json"
    )
    assert error_of(refused) == (404, "not_found")
    assert Conversation.objects.get(pk=session.pk).contact_id is None


def test_contacts_need_the_contacts_scope(crm):
    assert error_of(Client().get("/api/v1/contacts")) == (401, "missing_api_key")
    for scopes in (["read"], ["chat"]):
        assert error_of(client_for(scopes).get("/api/v1/contacts")) == (403, "insufficient_scope")
        assert error_of(create(client_for(scopes), name="A")) == (403, "insufficient_scope")
    assert client_for(["admin"]).get("/api/v1/contacts").status_code == 200
    assert create(client_for(["admin"]), name="A").status_code == 201


def test_attributes_are_stored_as_json_postgresql_can_hold(crm):
    made = crm.post(
        "/api/v1/contacts",
        '{"name": "A", "attributes": {"note\\u0000": "a\\u0000b", "list": ["\\ud800"]}}',
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    assert made.json()["attributes"] == {"note": "ab", "list": ["\ufffd"]}
    nan = crm.post("/api/v1/contacts", '{"name": "A", "attributes": {"x": NaN}}', content_type="application/json")
    assert error_of(nan) == (400, "invalid_request")
