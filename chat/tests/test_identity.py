"""Verified customer identity: the site's signature of its signed-in user (chat.identity), the widget's identity
endpoint, and conversations opened with an identity. An unsigned or wrongly signed identity is ignored."""

import hashlib
import hmac
import json

import pytest
from django.core.cache import cache
from prometheus_client import REGISTRY

from chat import services
from chat.identity import identity_hash, identity_verify
from chat.models import Contact, Conversation, Message, Site
from chat.selectors import ConversationAccessDenied, conversation_get_for_customer

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()  # the per-address limit of new conversations lives in the cache
    yield
    cache.clear()


@pytest.fixture
def site():
    return Site.objects.create(name="Shop", allowed_origins=SHOP)


@pytest.fixture
def other_site():
    return Site.objects.create(name="Other shop", allowed_origins=SHOP)


def signed(site: Site, user_id: str, **extra) -> dict:
    """What the site's server puts in the script tag: the user id signed with the site's secret, as its docs say."""
    digest = hmac.new(site.identity_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return {"user_id": user_id, "user_hash": digest, **extra}


def post(client, site, path, body, origin=SHOP):
    return client.post(
        f"/widget/v1/sites/{site.key}/{path}",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_ORIGIN=origin,
    )


def checks(result: str) -> float:
    return REGISTRY.get_sample_value("helpdesk_identity_checks_total", {"result": result}) or 0.0


def test_each_site_gets_its_own_long_random_identity_secret(site, other_site):
    assert len(site.identity_secret) == 64 and site.identity_secret != other_site.identity_secret


def test_the_signature_is_the_hex_hmac_sha256_of_the_user_id_under_the_sites_secret(site):
    expected = hmac.new(site.identity_secret.encode(), b"user-42", hashlib.sha256).hexdigest()
    assert identity_hash(site.identity_secret, "user-42") == expected
    assert identity_verify(site, "user-42", expected)
    assert identity_verify(site, "user-42", expected.upper())  # hex in capitals is the same signature


def test_a_wrong_signature_an_absent_one_and_another_sites_are_refused_and_counted(site, other_site):
    before = {result: checks(result) for result in ("verified", "invalid", "unsigned")}
    good = signed(site, "user-42")["user_hash"]
    assert identity_verify(site, "user-42", good)
    assert not identity_verify(site, "user-43", good)  # another user's id with this user's signature
    assert not identity_verify(site, "user-42", good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert not identity_verify(site, "user-42", signed(other_site, "user-42")["user_hash"])  # another site's secret
    assert not identity_verify(site, "user-42", hashlib.sha256(b"user-42").hexdigest())  # a plain hash, no secret
    assert not identity_verify(site, "user-42", None)
    assert not identity_verify(site, "user-42", "")
    assert not identity_verify(site, ["user-42"], good)  # not text
    after = {result: checks(result) for result in ("verified", "invalid", "unsigned")}
    assert {result: after[result] - before[result] for result in after} == {"verified": 1, "invalid": 5, "unsigned": 2}


def test_the_identity_endpoint_answers_a_signed_user_with_their_contact(client, site):
    response = post(client, site, "identity", signed(site, "user-42", name="Ann Lee", email="ann@example.com"))
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == SHOP
    body = response.json()
    assert body["verified"] is True and body["conversations"] == []
    assert {k: body["contact"][k] for k in ("user_id", "name", "email")} == {
        "user_id": "user-42",
        "name": "Ann Lee",
        "email": "ann@example.com",
    }
    contact = Contact.objects.get()
    assert (contact.site, contact.external_id, contact.verified) == (site, "user-42", True)


@pytest.mark.parametrize(
    "identity",
    [
        {"user_id": "user-42", "name": "Ann Lee", "email": "ann@example.com"},  # unsigned
        {"user_id": "user-42", "user_hash": "0" * 64, "name": "Ann Lee", "email": "ann@example.com"},  # forged
        {"user_id": "user-42", "user_hash": "not hex at all"},
        {},
    ],
)
def test_the_identity_endpoint_refuses_an_unsigned_or_forged_identity_and_keeps_nothing(client, site, identity):
    response = post(client, site, "identity", identity)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "identity_not_verified"
    assert not Contact.objects.exists()


def test_another_sites_signature_is_refused(client, site, other_site):
    response = post(client, site, "identity", signed(other_site, "user-42"))
    assert response.status_code == 403 and not Contact.objects.exists()


def test_the_identity_endpoint_refuses_a_foreign_origin(client, site):
    response = post(client, site, "identity", signed(site, "user-42"), origin="https://evil.example")
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    assert not Contact.objects.exists()


def test_a_conversation_opened_with_a_verified_identity_is_linked_and_verified(client, site):
    identity = signed(site, "user-42", name="Ann Lee", email="ann@example.com")
    response = post(client, site, "conversations", {"name": "typed name", "identity": identity})
    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.identity_verified is True
    assert (conversation.contact.external_id, conversation.contact.site) == ("user-42", site)
    # The site's word for the name and address beats what was typed.
    assert (conversation.customer_name, conversation.customer_email) == ("Ann Lee", "ann@example.com")


def test_a_verified_identity_satisfies_a_required_email_in_the_pre_chat_form(client, site):
    site.prechat_email = Site.Field.REQUIRED
    site.save()
    identity = signed(site, "user-42", email="ann@example.com")
    assert post(client, site, "conversations", {"identity": identity}).status_code == 201
    assert post(client, site, "conversations", {"identity": {**identity, "user_hash": "0" * 64}}).status_code == 400


@pytest.mark.parametrize("user_hash", [None, "0" * 64, "forged"])
def test_a_conversation_opened_with_a_forged_identity_is_neither_linked_nor_verified(client, site, user_hash):
    Contact.objects.create(site=site, external_id="user-42", name="Ann Lee", email="ann@example.com", verified=True)
    identity = {"user_id": "user-42", "user_hash": user_hash, "name": "Mallory", "email": "mallory@example.com"}
    response = post(client, site, "conversations", {"name": "Eve", "identity": identity})
    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert (conversation.contact, conversation.identity_verified) == (None, False)
    # Nothing of the forged identity is used: the name typed in the form stays, the claimed address is not taken.
    assert (conversation.customer_name, conversation.customer_email) == ("Eve", "")
    contact = Contact.objects.get()
    assert (contact.name, contact.email) == ("Ann Lee", "ann@example.com")  # the real user's details untouched


def test_a_left_message_with_a_verified_identity_joins_the_customers_conversations(client, site):
    identity = signed(site, "user-42", name="Ann Lee", email="ann@example.com")
    response = post(client, site, "messages", {"content": "Call me back please.", "identity": identity})
    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.identity_verified and conversation.contact.external_id == "user-42"
    assert conversation.customer_email == "ann@example.com"
    listed = post(client, site, "identity", identity).json()["conversations"]
    assert [c["id"] for c in listed] == [str(conversation.id)] and listed[0]["preview"] == "Call me back please."


def test_the_identity_endpoint_lists_only_that_customers_conversations_and_their_tokens_open_only_them(
    client, site, other_site
):
    ann = signed(site, "user-42", name="Ann Lee")
    bob = signed(site, "user-7", name="Bob")
    first = post(client, site, "conversations", {"identity": ann}).json()
    second = post(client, site, "conversations", {"identity": ann}).json()
    bobs = post(client, site, "conversations", {"identity": bob}).json()
    anonymous = post(client, site, "conversations", {"name": "Ann Lee"}).json()  # same name, not signed: not hers
    forged = post(client, site, "conversations", {"identity": {**ann, "user_hash": "0" * 64}}).json()
    # The same user id on another site is another site's user.
    elsewhere = post(client, other_site, "conversations", {"identity": signed(other_site, "user-42")}).json()
    services.message_post_customer(conversation_id=second["id"], content="Where is my parcel?")
    conversation = Conversation.objects.get(pk=second["id"])
    services.note_post(conversation_id=conversation.id, agent=None, content="private: VIP")

    body = post(client, site, "identity", ann).json()
    listed = body["conversations"]
    assert [c["id"] for c in listed] == [second["id"], first["id"]]  # the newest first
    assert listed[0]["preview"] == "Where is my parcel?" and listed[0]["status"] == "bot"
    assert all("VIP" not in c["preview"] for c in listed)  # a private note is never a preview
    assert listed[0]["created_at"] and "secret" not in listed[0]

    for entry in listed:
        assert conversation_get_for_customer(conversation_id=entry["id"], secret=entry["token"]).pk
    for stranger in (bobs, anonymous, forged, elsewhere):
        for entry in listed:
            with pytest.raises(ConversationAccessDenied):
                conversation_get_for_customer(conversation_id=stranger["id"], secret=entry["token"])
    assert {c["id"] for c in post(client, site, "identity", bob).json()["conversations"]} == {bobs["id"]}


def test_the_list_is_capped_at_the_newest_twenty(client, site):
    site.conversations_per_ip = 50  # the per-address limit (6 per 12 h by default) is not what this is about
    site.save()
    identity = signed(site, "user-42")
    opened = [post(client, site, "conversations", {"identity": identity}).json()["id"] for _ in range(22)]
    listed = post(client, site, "identity", identity).json()["conversations"]
    assert [c["id"] for c in listed] == list(reversed(opened))[:20]


def test_a_bad_email_from_the_site_does_not_break_the_identity(client, site):
    response = post(client, site, "identity", signed(site, "user-42", name="Ann", email="not an address"))
    assert response.status_code == 200
    assert response.json()["contact"]["email"] == "" and Contact.objects.get().verified


def test_the_preview_is_the_last_visible_message_cut_short(client, site):
    identity = signed(site, "user-42")
    opened = post(client, site, "conversations", {"identity": identity}).json()
    services.message_post_customer(conversation_id=opened["id"], content="first question")
    conversation = Conversation.objects.get(pk=opened["id"])
    Message.objects.create(
        conversation=conversation, seq=conversation.last_seq + 1, role=Message.Role.BOT, content="word " * 100
    )
    preview = post(client, site, "identity", identity).json()["conversations"][0]["preview"]
    assert preview.startswith("word word") and preview.endswith("…") and len(preview) <= 141


def test_the_hosted_chat_page_shows_the_widget_of_the_site_a_link_names(client, site, other_site):
    for chosen in (site, other_site):
        page = client.get(f"/?site={chosen.key}").content.decode()
        assert f'data-site-key="{chosen.key}"' in page
    # An unknown or malformed key falls back to the first active site, as without one.
    fallback = client.get("/?site=<script>").content.decode()
    assert client.get("/").status_code == 200 and '<script>"' not in fallback
    assert fallback.count("data-site-key=") == 1


def test_the_site_admin_shows_the_identity_secret_read_only_with_how_to_sign(client, site, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-123456")
    client.force_login(admin)
    page = client.get(f"/admin/chat/site/{site.pk}/change/").content.decode()
    assert site.identity_secret in page and "HMAC-SHA256" in page
    assert 'name="identity_secret"' not in page  # shown, never an input
    secret = site.identity_secret
    client.post(f"/admin/chat/site/{site.pk}/change/", {"name": "Shop", "identity_secret": "chosen"})
    site.refresh_from_db()
    assert site.identity_secret == secret
