"""The customer profile: every conversation of one email address (whatever its case) with its agent, rating and
ticket, the totals, and the staff's notes, added through customer_note_add (validated, CSRF-protected); console
users only."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client

from chat.models import Conversation, Rating, Site
from chat.tests.test_queries import queries_exactly
from helpdesk import customers
from helpdesk.models import CustomerNote, Ticket

pytestmark = pytest.mark.django_db


def user_in(group: str | None, username: str):
    user = get_user_model().objects.create_user(username, password="pw-123456")
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def world():
    ann = user_in("agent", "ann")
    shop = Site.objects.create(name="Shop")

    def conversation(**fields):
        return Conversation.objects.create(secret_hash="0" * 64, site=shop, **fields)

    first = conversation(customer_name="Li Wei", customer_email="Li.Wei@Example.com", status="resolved", assignee=ann)
    second = conversation(customer_name="李伟", customer_email="li.wei@example.com", status="agent", assignee=ann)
    third = conversation(customer_email="li.wei@example.com")
    Rating.objects.create(conversation=first, score=2, comment="Took too long")
    Rating.objects.create(conversation=second, score=5, comment="很好")
    Ticket.objects.create(conversation=first, subject="Refund", status="resolved")
    conversation(customer_name="Someone else", customer_email="other@example.com")
    return {"ann": ann, "conversations": [first, second, third]}


def test_the_key_is_the_email_address_in_lower_case():
    assert customers.customer_key("  Li.Wei@Example.COM ") == "li.wei@example.com"
    assert customers.customer_key("not an email") == ""
    assert customers.customer_key("") == ""


def test_the_profile_lists_every_conversation_of_the_email_whatever_its_case(world):
    CustomerNote.objects.create(customer_email="li.wei@example.com", body="Prefers email", author=world["ann"])
    # The totals, the names, the conversations (with site, assignee, rating and ticket), the notes.
    with queries_exactly(4):
        profile = customers.customer_profile(email="LI.WEI@example.com")
        assert [c.ticket.status for c in profile.conversations if hasattr(c, "ticket")] == ["resolved"]
        assert [c.rating.score for c in profile.conversations if hasattr(c, "rating")] == [5, 2]
    first, second, third = world["conversations"]
    assert [c.pk for c in profile.conversations] == [third.pk, second.pk, first.pk]
    assert profile.key == "li.wei@example.com" and profile.names == ["Li Wei", "李伟"]
    assert (profile.total, profile.rated, profile.rating_average) == (3, 2, 3.5)
    assert [note.body for note in profile.notes] == ["Prefers email"]
    assert customers.customer_profile(email="nobody") is None


def test_a_note_is_validated_and_kept_under_the_customer_key(world):
    note = customers.customer_note_add(agent=world["ann"], email=" Li.Wei@Example.com", body="  VIP since 2023\x00 ")
    assert (note.customer_email, note.body, note.author) == ("li.wei@example.com", "VIP since 2023", world["ann"])
    for email, body, code in [
        ("li.wei@example.com", "   ", "empty"),
        ("li.wei@example.com", "x" * (customers.NOTE_MAX_CHARS + 1), "too_long"),
        ("li.wei", "Fine", "email"),
    ]:
        with pytest.raises(ValidationError) as refused:
            customers.customer_note_add(agent=world["ann"], email=email, body=body)
        assert refused.value.code == code
    assert CustomerNote.objects.count() == 1


def test_the_page_is_for_console_users_only(client, world):
    response = client.get("/console/customers/?email=li.wei@example.com")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(user_in(None, "visitor"))
    assert client.get("/console/customers/?email=li.wei@example.com").status_code == 403
    assert client.post("/console/customers/", {"email": "li.wei@example.com", "body": "x"}).status_code == 403
    assert not CustomerNote.objects.exists()


def test_the_page_shows_the_conversations_ratings_tickets_and_notes(client, world):
    CustomerNote.objects.create(customer_email="li.wei@example.com", body="<b>Loyal</b> buyer", author=world["ann"])
    client.force_login(world["ann"])
    response = client.get("/console/customers/", {"email": "Li.Wei@example.com"})
    page = response.content.decode()
    assert response.status_code == 200
    for conversation in world["conversations"]:
        assert f'data-conversation="{conversation.pk}"' in page
        assert f'href="/console/#c={conversation.pk}"' in page
    assert "other@example.com" not in page and "Someone else" not in page
    assert "Li Wei, 李伟" in page and "很好" in page and "Took too long" in page and "Resolved" in page
    assert '<span class="kpi__value" id="customer-rating">3.5 ★</span>' in page
    assert "&lt;b&gt;Loyal&lt;/b&gt; buyer" in page
    assert client.get("/console/customers/", {"email": "nonsense"}).status_code == 400


def test_an_agent_adds_a_note_through_the_form_with_its_csrf_token(world):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(world["ann"])
    assert browser.post("/console/customers/", {"email": "li.wei@example.com", "body": "No token"}).status_code == 403
    page = browser.get("/console/customers/", {"email": "li.wei@example.com"})
    token = page.context["csrf_token"]
    response = browser.post(
        "/console/customers/", {"email": "li.wei@example.com", "body": "Call after 6 pm", "csrfmiddlewaretoken": token}
    )
    assert (
        response.status_code == 302 and response["Location"] == "/console/customers/?email=li.wei%40example.com#notes"
    )
    note = CustomerNote.objects.get()
    assert (note.body, note.author, note.customer_email) == ("Call after 6 pm", world["ann"], "li.wei@example.com")
    assert "Call after 6 pm" in browser.get(response["Location"]).content.decode()
    empty = browser.post(
        "/console/customers/", {"email": "li.wei@example.com", "body": " ", "csrfmiddlewaretoken": token}
    )
    assert empty.status_code == 400 and "Write the note first." in empty.content.decode()
