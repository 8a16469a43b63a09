"""The customer emails through a real SMTP server (aiosmtpd): an agent's reply to a customer who is away, the
acknowledgement of a left message, the transcript; their headers, languages, unsubscribe and suppression."""

import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from chat import dispatch, presence, services
from chat.email import outbound
from chat.email.addresses import conversation_id_from_address, conversation_id_from_recipients, reply_address
from chat.email.suppression import email_suppressed, unsubscribe_token
from chat.models import EmailSuppression, HandoffReason, Message
from chat.selectors import conversation_get_for_customer
from tests.smtp_server import body_html, body_text, smtp_settings, smtp_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp(settings):
    controller, inbox = smtp_start()
    smtp_settings(settings, controller.port)
    settings.COMPANY_NAME = "Acme"
    settings.DEFAULT_FROM_EMAIL = "support@acme.test"
    settings.EMAIL_INBOUND_DOMAIN = "reply.acme.test"
    settings.HELPDESK_PUBLIC_URL = "https://help.acme.test"
    yield inbox
    controller.stop()


@pytest.fixture
def enqueued(monkeypatch):
    """The email tasks queued (name, delay, args) instead of run."""
    calls = []
    monkeypatch.setattr(dispatch, "task_enqueue", lambda task, *args: calls.append((task.name, 0, args)))
    monkeypatch.setattr(
        dispatch, "task_enqueue_later", lambda task, delay, *args: calls.append((task.name, delay, args))
    )
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)
    return calls


def agent_conversation(django_user_model, language="en", email="ann@example.com", name="Ann"):
    agent = django_user_model.objects.create_user(f"bob-{uuid.uuid4().hex[:6]}", first_name="Bob")
    conversation, _ = services.conversation_start(language=language, customer_name=name, customer_email=email)
    services.message_post_customer(conversation_id=conversation.id, content="My sofa arrived broken")
    services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    services.conversation_assign(conversation_id=conversation.id, agent=agent, expected_status="queued")
    conversation.refresh_from_db()
    return conversation, agent


def test_an_agent_reply_is_emailed_with_the_thread_reply_to_unsubscribe_and_a_link_that_opens_it(
    smtp, enqueued, django_user_model
):
    conversation, agent = agent_conversation(django_user_model)
    reply = services.message_post_agent(conversation_id=conversation.id, agent=agent, content="We'll send a new one.")
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 1

    [email] = smtp.wait_for(1)
    assert email["To"] == "ann@example.com"
    assert email["From"] == "Acme <support@acme.test>"
    assert email["Subject"] == "New reply from Acme"
    assert conversation_id_from_address(email["Reply-To"]) == conversation.id
    thread = f"<conversation.{conversation.id.hex}@reply.acme.test>"
    assert email["In-Reply-To"] == thread and email["References"] == thread
    assert email["Message-ID"].endswith("@reply.acme.test>") and email["Message-ID"] != thread
    unsubscribe = email["List-Unsubscribe"]
    assert re.search(r"<https://help\.acme\.test/email/unsubscribe/[^>]+/>", unsubscribe)
    assert f"<mailto:{reply_address(conversation.id)}?subject=unsubscribe>" in unsubscribe
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    text, html = body_text(email), body_html(email)
    for body in (text, html):
        assert "We'll send a new one." in body or "We&#x27;ll send a new one." in body
        assert "Bob" in body and "My sofa arrived broken" not in body  # only what the customer has not seen
    link = re.search(r"https://help\.acme\.test/\S*#\S+", text).group(0)
    fragment = parse_qs(urlsplit(link).fragment)
    assert fragment["hd-conversation"] == [str(conversation.id)]
    assert (
        conversation_get_for_customer(conversation_id=conversation.id, secret=fragment["hd-token"][0]) == conversation
    )
    assert link.replace("&", "&amp;") in html

    reply.refresh_from_db()
    assert reply.emailed_at is not None
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 0  # once only
    assert len(smtp.messages) == 1


def test_a_chinese_conversation_is_emailed_in_chinese(smtp, enqueued, django_user_model):
    conversation, agent = agent_conversation(django_user_model, language="zh-CN", name="王芳")
    services.message_post_agent(conversation_id=conversation.id, agent=agent, content="我们会补发一个新的。")
    outbound.agent_replies_email(conversation_id=conversation.id)
    [email] = smtp.wait_for(1)
    assert email["Subject"] == "Acme 回复了您"
    text = body_text(email)
    assert "王芳,您好" in text and "打开对话" in text and "我们会补发一个新的。" in text and "退订" in text
    assert 'lang="zh"' in body_html(email)


def test_the_reply_is_not_emailed_while_the_customer_has_the_chat_open_nor_if_they_read_it_there(
    smtp, enqueued, django_user_model
):
    conversation, agent = agent_conversation(django_user_model)
    presence.customer_connected(conversation.id)
    services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Are you there?")
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 0
    presence.customer_disconnected(conversation.id)  # they read it, then left
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 0
    # A reply after they left is emailed, alone.
    services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Here is your refund.")
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 1
    [email] = smtp.wait_for(1)
    assert "Here is your refund." in body_text(email) and "Are you there?" not in body_text(email)


def test_a_socket_that_died_with_its_server_stops_counting_once_its_lease_runs_out(
    smtp, enqueued, monkeypatch, django_user_model
):
    monkeypatch.setattr(presence, "ONLINE_TTL_S", 1)
    conversation, agent = agent_conversation(django_user_model)
    presence.customer_connected(conversation.id)  # and never disconnected: its server was killed
    services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Still there?")
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 0
    time.sleep(1.5)  # no ping renewed the lease
    assert not presence.customer_online(conversation.id)
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 1
    assert "Still there?" in body_text(smtp.wait_for(1)[0])


def test_an_agent_reply_queues_the_email_after_the_delay_only_when_the_customer_has_an_address(
    settings, enqueued, django_user_model, django_capture_on_commit_callbacks
):
    settings.EMAIL_REPLY_DELAY = 42
    conversation, agent = agent_conversation(django_user_model)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Hi")
    assert ("chat.tasks.agent_reply_email_task", 42, (str(conversation.id),)) in enqueued
    enqueued.clear()
    anonymous, agent = agent_conversation(django_user_model, email="")
    with django_capture_on_commit_callbacks(execute=True):
        services.message_post_agent(conversation_id=anonymous.id, agent=agent, content="Hi")
    assert [c for c in enqueued if c[0] == "chat.tasks.agent_reply_email_task"] == []
    assert outbound.agent_replies_email(conversation_id=anonymous.id) == 0  # and the task would send nothing


def test_a_left_message_is_acknowledged_once(smtp, enqueued, django_capture_on_commit_callbacks):
    from chat.models import Site

    site = Site.objects.create(name="Shop")
    with django_capture_on_commit_callbacks(execute=True):
        conversation, _ = services.message_leave(
            site=site, content="Do you ship to Norway?", customer_name="", customer_email="ola@example.no"
        )
    assert ("chat.tasks.left_message_ack_task", 0, (str(conversation.id),)) in enqueued
    assert outbound.left_message_acknowledge(conversation_id=conversation.id) is True
    assert outbound.left_message_acknowledge(conversation_id=conversation.id) is False
    [email] = smtp.wait_for(1)
    assert email["To"] == "ola@example.no" and email["Subject"] == "We received your message (Acme)"
    assert "Do you ship to Norway?" in body_text(email) and body_text(email).startswith("Hello,")


def test_the_transcript_has_what_the_customer_saw_and_never_private_notes(smtp, enqueued, django_user_model):
    conversation, agent = agent_conversation(django_user_model)
    services.message_post_agent(conversation_id=conversation.id, agent=agent, content="A new sofa is on its way")
    services.note_post(conversation_id=conversation.id, agent=agent, content="PRIVATE: refund approved")
    assert outbound.transcript_request(conversation_id=conversation.id) == "ann@example.com"
    assert enqueued[-1] == ("chat.tasks.transcript_email_task", 0, (str(conversation.id),))
    assert outbound.transcript_email(conversation_id=conversation.id) is True
    [email] = smtp.wait_for(1)
    text = body_text(email)
    assert email["Subject"] == "Your conversation with Acme"
    assert "My sofa arrived broken" in text and "A new sofa is on its way" in text
    assert "PRIVATE" not in text and "PRIVATE" not in body_html(email)


def test_the_transcript_needs_an_address_and_is_limited(enqueued, django_user_model):
    conversation, _agent = agent_conversation(django_user_model, email="")
    with pytest.raises(services.ActionRefused) as refused:
        outbound.transcript_request(conversation_id=conversation.id)
    assert refused.value.code == "no_email"
    services.conversation_contact_set(conversation_id=conversation.id, name="Ann", email="ann@example.com")
    for _ in range(outbound.TRANSCRIPTS_PER_HOUR):
        outbound.transcript_request(conversation_id=conversation.id)
    with pytest.raises(services.ActionRefused) as refused:
        outbound.transcript_request(conversation_id=conversation.id)
    assert refused.value.code == "rate_limited"


def test_the_unsubscribe_page_confirms_then_suppresses_and_suppressed_addresses_get_nothing(
    smtp, enqueued, django_user_model
):
    conversation, agent = agent_conversation(django_user_model, email="Ann@Example.com")
    path = f"/email/unsubscribe/{unsubscribe_token('ann@example.com')}/"
    page = Client().get(path)
    assert page.status_code == 200 and "ann@example.com" in page.content.decode()
    assert not email_suppressed("ann@example.com")  # a GET (a link scanner, say) changes nothing
    assert Client(enforce_csrf_checks=True).post(path).status_code == 200
    assert email_suppressed("ANN@example.com")

    services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Hello?")
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 0
    assert outbound.transcript_email(conversation_id=conversation.id) is False
    with pytest.raises(services.ActionRefused):
        outbound.transcript_request(conversation_id=conversation.id)
    assert smtp.messages == []


def test_one_click_unsubscribe_works_and_a_forged_token_is_refused():
    token = unsubscribe_token("ola@example.no")
    response = Client(enforce_csrf_checks=True).post(
        f"/email/unsubscribe/{token}/", "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200 and EmailSuppression.objects.filter(email="ola@example.no").exists()
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert Client().post(f"/email/unsubscribe/{forged}/").status_code == 404
    assert EmailSuppression.objects.count() == 1


def test_reply_addresses_are_signed_and_a_forged_one_routes_nowhere(settings):
    settings.EMAIL_INBOUND_DOMAIN = "reply.acme.test"
    conversation_id = uuid.uuid4()
    address = reply_address(conversation_id)
    assert re.fullmatch(r"reply\+[0-9a-f]{32}\.[0-9a-f]{16}@reply\.acme\.test", address)
    assert conversation_id_from_address(address) == conversation_id
    assert conversation_id_from_address(address.upper()) == conversation_id  # mail systems may change the case
    assert conversation_id_from_recipients(f"Someone <x@y.test>, Acme <{address}>") == conversation_id
    other = uuid.uuid4().hex
    local, domain = address.split("@")
    assert conversation_id_from_address(f"reply+{other}.{local.split('.')[1]}@{domain}") is None  # id swapped
    assert conversation_id_from_address(f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}") is None
    assert conversation_id_from_address(f"{local}@elsewhere.test") is None
    assert conversation_id_from_address(f"reply+{conversation_id.hex}@{domain}") is None  # unsigned
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert conversation_id_from_address(address) is None


def test_sender_names_itself_after_the_company_unless_from_has_a_name(settings):
    from chat.email.compose import sender

    settings.COMPANY_NAME, settings.DEFAULT_FROM_EMAIL = "Acme", "help@acme.test"
    assert sender() == "Acme <help@acme.test>"
    settings.DEFAULT_FROM_EMAIL = "Acme Care <care@acme.test>"
    assert sender() == "Acme Care <care@acme.test>"


def test_agent_reply_rows_are_marked_in_the_same_transaction_as_the_send(smtp, enqueued, django_user_model, settings):
    """A send that fails leaves the replies unmarked, so the task's retry emails them."""
    conversation, agent = agent_conversation(django_user_model)
    services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Hello")
    settings.EMAIL_PORT = 1  # nothing listens there
    with pytest.raises(OSError):
        outbound.agent_replies_email(conversation_id=conversation.id)
    assert Message.objects.filter(conversation=conversation, emailed_at__isnull=False).count() == 0


def test_a_file_the_agent_sent_is_named_in_the_email_and_the_transcript_never_attached(
    smtp, enqueued, django_user_model
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    conversation, agent = agent_conversation(django_user_model)
    services.attachment_post_agent(
        conversation_id=conversation.id, agent=agent, upload=SimpleUploadedFile("label.pdf", b"%PDF-1.4\n%%EOF\n")
    )
    assert outbound.agent_replies_email(conversation_id=conversation.id) == 1
    assert outbound.transcript_email(conversation_id=conversation.id) is True
    for email in smtp.wait_for(2):
        assert "label.pdf" in body_text(email) and "label.pdf" in body_html(email)
        assert not [part for part in email.walk() if part.get_filename()]  # named, never sent along
