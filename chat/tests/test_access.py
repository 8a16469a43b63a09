"""Signed access tokens (chat.access) and contacts (chat.services.contacts)."""

import urllib.parse

import pytest
import time_machine
from django.core import signing

from chat import services
from chat.access import conversation_access_token, conversation_reopen_link
from chat.models import Contact, Site
from chat.selectors import ConversationAccessDenied, conversation_get_for_customer

pytestmark = pytest.mark.django_db


def test_an_access_token_opens_its_own_conversation_and_no_other():
    mine, secret = services.conversation_start()
    other, _ = services.conversation_start()
    token = conversation_access_token(mine.id)
    assert conversation_get_for_customer(conversation_id=mine.id, secret=token) == mine
    assert conversation_get_for_customer(conversation_id=mine.id, secret=secret) == mine  # the secret still works
    with pytest.raises(ConversationAccessDenied):
        conversation_get_for_customer(conversation_id=other.id, secret=token)


def test_a_tampered_or_differently_salted_token_is_refused():
    conversation, _ = services.conversation_start()
    token = conversation_access_token(conversation.id)
    value, _, signature = token.rpartition(":")
    forged = f"{value}:{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}"
    other_salt = signing.dumps(conversation.id.hex, salt="some.other.purpose")
    for credential in (forged, other_salt, ":", "a:b:c", conversation.id.hex + ":x"):
        with pytest.raises(ConversationAccessDenied):
            conversation_get_for_customer(conversation_id=conversation.id, secret=credential)


def test_an_access_token_expires(settings):
    settings.CHAT_ACCESS_TOKEN_MAX_AGE = 3600
    conversation, _ = services.conversation_start()
    with time_machine.travel("2026-01-01 12:00:00 +0000", tick=False):
        token = conversation_access_token(conversation.id)
    with time_machine.travel("2026-01-01 12:59:00 +0000", tick=False):
        assert conversation_get_for_customer(conversation_id=conversation.id, secret=token) == conversation
    with time_machine.travel("2026-01-01 13:01:00 +0000", tick=False):
        with pytest.raises(ConversationAccessDenied):
            conversation_get_for_customer(conversation_id=conversation.id, secret=token)


def test_the_reopen_link_carries_the_site_and_a_working_token_in_the_fragment(settings):
    settings.HELPDESK_PUBLIC_URL = "https://help.example.com"
    site = Site.objects.create(name="Shop")
    conversation, _ = services.conversation_start(site=site)
    link = urllib.parse.urlsplit(conversation_reopen_link(conversation))
    assert (link.scheme, link.netloc, link.path) == ("https", "help.example.com", "/")
    assert urllib.parse.parse_qs(link.query) == {"site": [site.key]}
    fragment = urllib.parse.parse_qs(link.fragment)
    assert fragment["hd-conversation"] == [str(conversation.id)]
    assert (
        conversation_get_for_customer(conversation_id=conversation.id, secret=fragment["hd-token"][0]) == conversation
    )


def test_sites_made_before_identity_verification_get_secrets_of_their_own():
    first, second = Site.objects.create(name="A"), Site.objects.create(name="B")
    assert len(first.identity_secret) == 64 and first.identity_secret != second.identity_secret


def test_a_contact_is_cleaned_and_refused_when_invalid():
    contact = services.contact_create(
        name=" Ann\x07 ", email="ann@example.com", language="zh-CN", attributes={"plan": 1}
    )
    assert (contact.name, contact.email, contact.verified) == ("Ann", "ann@example.com", False)
    for bad in ({"email": "not-an-email"}, {"name": "x" * 121}, {"attributes": ["a"]}, {"phone": 5}):
        with pytest.raises(services.ActionRefused):
            services.contact_create(**bad)
    with pytest.raises(services.ActionRefused) as refused:
        services.contact_update(contact_id=contact.pk, nickname="A")
    assert refused.value.code == "invalid_contact"


def test_one_contact_per_site_user_and_a_changed_external_id_is_no_longer_verified():
    site = Site.objects.create(name="Shop")
    verified = services.contact_identify(site=site, external_id="u-1", name="Ann", email="ann@example.com")
    again = services.contact_identify(site=site, external_id="u-1", email="ann@new.example.com")
    assert again.pk == verified.pk and again.verified and again.email == "ann@new.example.com" and again.name == "Ann"
    with pytest.raises(services.ActionRefused) as refused:
        services.contact_create(site=site, external_id="u-1")
    assert refused.value.code == "contact_exists"
    changed = services.contact_update(contact_id=verified.pk, external_id="u-2")
    assert not changed.verified and Contact.objects.get(pk=verified.pk).external_id == "u-2"


def test_a_conversation_linked_to_a_contact_by_hand_is_not_verified():
    contact = services.contact_create(name="Ann")
    conversation, _ = services.conversation_start()
    services.conversation_contact_link(conversation_id=conversation.id, contact_id=contact.pk)
    conversation.refresh_from_db()
    assert conversation.contact_id == contact.pk and not conversation.identity_verified
    with pytest.raises(services.ActionRefused):
        services.conversation_contact_link(conversation_id=conversation.id, contact_id=contact.pk + 999)


def test_relinking_a_verified_conversation_to_another_contact_drops_its_verification():
    site = Site.objects.create(name="Shop")
    ann = services.contact_identify(site=site, external_id="u-1", name="Ann")
    conversation, _ = services.conversation_start(site=site)
    conversation.contact, conversation.identity_verified = ann, True
    conversation.save()
    services.conversation_contact_link(conversation_id=conversation.id, contact_id=services.contact_create(name="B").pk)
    conversation.refresh_from_db()
    assert not conversation.identity_verified


def test_contact_attributes_are_cleaned_for_the_database():
    contact = services.contact_create(attributes={"note\x00": "a\x00b", "list": ["\ud800x", 1.5, None, True]})
    contact.refresh_from_db()
    assert contact.attributes == {"note": "ab", "list": ["\ufffdx", 1.5, None, True]}
    with pytest.raises(services.ActionRefused):
        services.contact_create(attributes={"n": float("nan")})
