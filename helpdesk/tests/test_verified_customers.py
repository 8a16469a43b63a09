"""Verified customers on the staff side: the console's conversation and queue entries say who is verified (with the
site's own user id), and the customer profile opens by contact."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from chat import services
from chat.identity import VerifiedIdentity
from chat.models import Contact, Site
from helpdesk import customers
from helpdesk.selectors import conversation_for_staff, queue_entry

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    return Site.objects.create(name="Shop")


@pytest.fixture
def agent():
    user = get_user_model().objects.create_user("ann", password="pw-123456")
    user.groups.add(Group.objects.get(name="agent"))
    return user


def verified_conversation(site, user_id="user-42", email="li.wei@example.com"):
    identity = VerifiedIdentity(user_id=user_id, name="Li Wei", email=email)
    conversation, _secret = services.conversation_start_verified(site=site, identity=identity)
    return conversation


def test_the_console_shows_a_verified_customer_with_the_sites_user_id(shop):
    verified = verified_conversation(shop)
    anonymous, _secret = services.conversation_start(site=shop, customer_name="Li Wei")
    for conversation in (verified, anonymous):
        services.conversation_hand_off(conversation_id=conversation.id, reason="customer_request")

    staff = conversation_for_staff(conversation_id=verified.id)
    assert staff["identity_verified"] is True
    assert {k: staff["contact"][k] for k in ("external_id", "verified", "email")} == {
        "external_id": "user-42",
        "verified": True,
        "email": "li.wei@example.com",
    }
    entry = queue_entry(conversation_id=verified.id)
    assert entry["identity_verified"] is True and entry["contact"]["external_id"] == "user-42"

    assert conversation_for_staff(conversation_id=anonymous.id)["identity_verified"] is False
    assert conversation_for_staff(conversation_id=anonymous.id)["contact"] is None
    assert queue_entry(conversation_id=anonymous.id)["identity_verified"] is False


def test_a_contact_linked_by_staff_is_shown_but_not_as_verified(shop):
    conversation, _secret = services.conversation_start(site=shop)
    contact = services.contact_create(site=shop, external_id="crm-9", name="Li Wei")
    services.conversation_contact_link(conversation_id=conversation.id, contact_id=contact.pk)
    staff = conversation_for_staff(conversation_id=conversation.id)
    assert staff["identity_verified"] is False and staff["contact"]["external_id"] == "crm-9"
    assert staff["contact"]["verified"] is False


def test_the_profile_by_contact_lists_its_conversations_and_those_of_its_email(shop):
    mine = verified_conversation(shop)
    by_email, _secret = services.conversation_start(site=shop, customer_email="Li.Wei@example.com")
    verified_conversation(shop, user_id="user-7", email="bob@example.com")  # another user
    contact = Contact.objects.get(external_id="user-42")

    profile = customers.customer_profile(contact_id=contact.pk)
    assert profile.contact == contact and profile.key == "li.wei@example.com"
    assert {c.pk for c in profile.conversations} == {mine.pk, by_email.pk}  # not the other user's
    assert customers.customer_profile(contact_id=contact.pk + 1000) is None
    assert customers.customer_profile(contact_id="1 OR 1=1") is None


def test_a_contact_without_email_has_a_profile_of_its_conversations_only(shop):
    conversation = verified_conversation(shop, email="")
    contact = Contact.objects.get()
    profile = customers.customer_profile(contact_id=contact.pk)
    assert [c.pk for c in profile.conversations] == [conversation.pk] and profile.notes == [] and profile.key == ""


def test_the_profile_page_opens_by_contact(client, shop, agent):
    verified_conversation(shop)
    contact = Contact.objects.get()
    client.force_login(agent)
    response = client.get("/console/customers/", {"contact": contact.pk})
    page = response.content.decode()
    assert response.status_code == 200
    assert "· verified · user-42" in page and "li.wei@example.com" in page
    missing = client.get("/console/customers/", {"contact": contact.pk + 1000})
    assert missing.status_code == 404 and "There is no such contact." in missing.content.decode()
