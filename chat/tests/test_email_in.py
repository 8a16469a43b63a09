"""A customer's reply email lands in its conversation: through Mailgun's signed webhook and through the self-hosted
SMTP receiver (a real aiosmtpd server, spoken to with smtplib); forged, stale, replayed or misaddressed mail does
not."""

import hashlib
import hmac
import smtplib
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat import services
from chat.email.addresses import reply_address
from chat.email.smtp_receiver import smtp_receiver
from chat.email.suppression import email_suppressed
from chat.models import Conversation, HandoffReason, Message
from chat.serializers import attachments_prefetch, staff_message_to_dict
from chat.tests.test_attachments import EXE_BYTES, PDF_BYTES, image_bytes
from tests.smtp_server import free_port

KEY = "key-mailgun-test-0123456789"


@pytest.fixture
def inbound(settings, monkeypatch):
    settings.EMAIL_INBOUND_DOMAIN = "reply.acme.test"
    settings.EMAIL_INBOUND_SIGNING_KEY = KEY
    replies = []
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: replies.append(kw))
    return replies


def conversation_with_agent(django_user_model, email="ann@example.com"):
    agent = django_user_model.objects.create_user(f"bob-{uuid.uuid4().hex[:6]}")
    conversation, _ = services.conversation_start(language="en", customer_name="Ann", customer_email=email)
    services.message_post_customer(conversation_id=conversation.id, content="Where is my parcel?")
    services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    services.conversation_assign(conversation_id=conversation.id, agent=agent, expected_status="queued")
    return conversation, agent


def signed(timestamp: int | None = None, token: str | None = None, key: str = KEY) -> dict:
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


def mailgun_post(conversation, *, body="Thanks, it arrived!", sender="ann@example.com", message_id=None, **sig):
    fields = {
        "recipient": reply_address(conversation.id),
        "sender": sender,
        "from": f"Ann <{sender}>",
        "subject": "Re: New reply from Acme",
        "body-plain": f"{body}\n\nOn Tue, Dec 3, 2026 at 10:00 AM Acme <support@acme.test> wrote:\n> Hello Ann\n",
        "Message-Id": message_id or f"<{uuid.uuid4().hex}@mail.example.com>",
        **(sig or signed()),
    }
    return Client(enforce_csrf_checks=True).post("/email/inbound/mailgun", fields)


def customer_messages(conversation) -> list[Message]:
    return list(conversation.messages.filter(role=Message.Role.CUSTOMER).order_by("seq"))


@pytest.mark.django_db
def test_a_signed_mailgun_reply_is_stored_stripped_as_an_email_message(inbound, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    response = mailgun_post(conversation)
    assert response.status_code == 200 and response.json() == {"status": "posted"}
    last = customer_messages(conversation)[-1]
    assert (last.content, last.via) == ("Thanks, it arrived!", "email")
    assert inbound == []  # with an agent: no bot reply


@pytest.mark.django_db
def test_a_bad_stale_or_replayed_mailgun_signature_is_refused(inbound, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    assert mailgun_post(conversation, **signed(key="wrong-key")).status_code == 403
    assert mailgun_post(conversation, **signed(timestamp=int(time.time()) - 3600)).status_code == 403
    once = signed()
    assert mailgun_post(conversation, **once).status_code == 200
    replay = mailgun_post(conversation, body="Again", **once)
    assert replay.status_code == 403 and replay.json()["error"]["code"] == "replayed"
    assert [m.content for m in customer_messages(conversation)] == ["Where is my parcel?", "Thanks, it arrived!"]


@pytest.mark.django_db
def test_without_a_signing_key_the_webhook_refuses_everything(inbound, settings, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    settings.EMAIL_INBOUND_SIGNING_KEY = ""
    assert mailgun_post(conversation, **signed(key="")).status_code == 403
    assert len(customer_messages(conversation)) == 1


@pytest.mark.django_db
def test_mail_from_another_sender_or_to_a_forged_address_is_dropped(inbound, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    response = mailgun_post(conversation, sender="mallory@evil.test")
    assert response.status_code == 200 and response.json()["status"] == "sender_mismatch"
    forged = {
        "recipient": f"reply+{conversation.id.hex}.0000000000000000@reply.acme.test",
        "sender": "ann@example.com",
        "body-plain": "hi",
        **signed(),
    }
    assert Client().post("/email/inbound/mailgun", forged).json()["status"] == "unknown_address"
    assert len(customer_messages(conversation)) == 1


@pytest.mark.django_db
def test_the_same_email_delivered_twice_is_stored_once(inbound, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    assert mailgun_post(conversation, message_id="<same@mail.example.com>").json()["status"] == "posted"
    assert mailgun_post(conversation, message_id="<same@mail.example.com>").json()["status"] == "duplicate"
    assert len(customer_messages(conversation)) == 2


@pytest.mark.django_db
def test_a_reply_to_a_bot_conversation_goes_to_the_team_not_the_bot(inbound):
    conversation, _ = services.conversation_start(language="en", customer_email="ann@example.com")
    assert mailgun_post(conversation).json()["status"] == "posted"
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.QUEUED
    assert conversation.handoff_reason == HandoffReason.CUSTOMER_REQUEST
    assert inbound == []


@pytest.mark.django_db
def test_a_reply_reopens_a_resolved_conversation(inbound, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    services.conversation_resolve(conversation_id=conversation.id)
    assert mailgun_post(conversation).json()["status"] == "posted"
    conversation.refresh_from_db()
    assert conversation.status != Conversation.Status.RESOLVED


@pytest.mark.django_db
def test_an_unsubscribe_mail_to_the_reply_address_suppresses_the_sender(inbound, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    fields = {
        "recipient": reply_address(conversation.id),
        "sender": "ann@example.com",
        "subject": "unsubscribe",
        "body-plain": "",
        **signed(),
    }
    assert Client().post("/email/inbound/mailgun", fields).json()["status"] == "unsubscribed"
    assert email_suppressed("ann@example.com") and len(customer_messages(conversation)) == 1


@pytest.fixture
def receiver(inbound):
    controller = smtp_receiver("127.0.0.1", free_port())
    controller.start()
    yield controller
    controller.stop()


def reply_email(to: str, *, html: bool = False, sender: str = "ann@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"Ann <{sender}>", to, "Re: New reply from Acme"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@mail.example.com>"
    if html:  # HTML only, as some clients send: Gmail's quote container and the blockquote are dropped
        quote = "<div class='gmail_quote'>在 2026年12月3日 写道:<blockquote>您好</blockquote></div>"
        message.set_content(f"<div dir='ltr'>好的,<b>谢谢</b>!</div>{quote}", subtype="html")
    else:
        message.set_content("Got it, thanks.\n\n-----Original Message-----\nFrom: Acme\nSent: today\n\nHello")
    return message


@pytest.mark.django_db(transaction=True)
def test_the_smtp_receiver_takes_replies_for_reply_addresses_only(receiver, django_user_model):
    conversation, _ = conversation_with_agent(django_user_model)
    with smtplib.SMTP(receiver.hostname, receiver.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(reply_email("someone@reply.acme.test"))
        assert refused.value.recipients["someone@reply.acme.test"][0] == 550
        with pytest.raises(smtplib.SMTPRecipientsRefused):  # a valid-looking address with a forged signature
            smtp.send_message(reply_email(f"reply+{conversation.id.hex}.0123456789abcdef@reply.acme.test"))
        smtp.send_message(reply_email(reply_address(conversation.id)))
        smtp.send_message(reply_email(reply_address(conversation.id), html=True))
    contents = [(m.content, m.via) for m in customer_messages(conversation)]
    assert contents == [("Where is my parcel?", ""), ("Got it, thanks.", "email"), ("好的,谢谢!", "email")]


@pytest.mark.django_db(transaction=True)
def test_the_smtp_receiver_refuses_mail_over_the_size_limit(settings, inbound, django_user_model):
    settings.EMAIL_INBOUND_MAX_BYTES = 2000
    controller = smtp_receiver("127.0.0.1", free_port())
    controller.start()
    try:
        conversation, _ = conversation_with_agent(django_user_model)
        message = reply_email(reply_address(conversation.id))
        message.set_content("x" * 5000)
        with smtplib.SMTP(controller.hostname, controller.port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPException):
                smtp.send_message(message)
    finally:
        controller.stop()
    assert len(customer_messages(conversation)) == 1


@pytest.mark.django_db(transaction=True)
def test_the_embedded_server_receives_replies_itself_and_a_taken_port_is_no_crash(inbound, django_user_model):
    from helpdesk.asgi import embedded_email_receiver_start

    port = free_port()
    receiver = embedded_email_receiver_start(port)
    assert receiver is not None
    try:
        assert embedded_email_receiver_start(port) is None  # a second server on the same port: logged, not fatal
        conversation, _ = conversation_with_agent(django_user_model)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(reply_email(reply_address(conversation.id)))
    finally:
        receiver.stop()
    assert [(m.content, m.via) for m in customer_messages(conversation)][-1] == ("Got it, thanks.", "email")


# --- Files in reply emails --------------------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cache.clear()  # rate limits
    yield Path(settings.MEDIA_ROOT)
    cache.clear()


def stored_attachments(conversation) -> list[tuple[str, str]]:
    message = customer_messages(conversation)[-1]
    return [(a.name, a.content_type) for a in message.attachments.order_by("name")]


def email_with_files(to: str) -> EmailMessage:
    """As Gmail sends a pasted screenshot and two attached files: multipart/mixed around multipart/related (the
    text and HTML bodies, then the inline image), then the attachments."""
    message = reply_email(to)
    message.set_content("Here is the damage, and the receipt.\n\nOn Tue, 3 Dec 2026, Acme wrote:\n> Hello")
    message.add_alternative("<p>Here is the damage, and the receipt.</p><img src='cid:shot'>", subtype="html")
    html = message.get_payload()[1]
    html.add_related(image_bytes("PNG", (40, 30)), "image", "png", cid="<shot>", filename="image001.png")
    message.add_attachment(PDF_BYTES, "application", "pdf", filename="receipt.pdf")
    message.add_attachment(EXE_BYTES, "application", "octet-stream", filename="setup.exe")
    return message


@pytest.mark.django_db(transaction=True)
def test_files_of_an_email_through_the_smtp_receiver_are_kept_and_a_refused_one_is_named(
    receiver, media, django_user_model
):
    conversation, _ = conversation_with_agent(django_user_model)
    with smtplib.SMTP(receiver.hostname, receiver.port, timeout=10) as smtp:
        smtp.send_message(email_with_files(reply_address(conversation.id)))
    last = customer_messages(conversation)[-1]
    assert last.via == "email"
    assert (
        last.content
        == "Here is the damage, and the receipt.\n\n[Not attached: setup.exe (this type of file is not accepted)]"
    )
    assert stored_attachments(conversation) == [("image001.png", "image/png"), ("receipt.pdf", "application/pdf")]
    image = last.attachments.get(content_type="image/png")
    assert (image.width, image.height) == (40, 30) and image.thumbnail.name
    assert (media / image.file.name).read_bytes() == image_bytes("PNG", (40, 30))
    # The console shows them as it shows the widget's.
    shown = Message.objects.prefetch_related(attachments_prefetch()).get(pk=last.pk)
    assert [a["name"] for a in staff_message_to_dict(shown)["attachments"]] == ["image001.png", "receipt.pdf"]


@pytest.mark.django_db
def test_files_posted_by_mailgun_are_kept_in_order_and_one_over_the_limit_is_named(
    inbound, media, settings, django_user_model
):
    settings.ATTACHMENT_MAX_BYTES = 50_000
    conversation, _ = conversation_with_agent(django_user_model)
    fields = {
        "recipient": reply_address(conversation.id),
        "sender": "ann@example.com",
        "from": "Ann <ann@example.com>",
        "subject": "Re: New reply from Acme",
        "body-plain": "",  # only files: stored without text
        "attachment-count": "2",
        "attachment-1": SimpleUploadedFile("scan.pdf", PDF_BYTES, "application/pdf"),
        "attachment-2": SimpleUploadedFile("huge.png", image_bytes("PNG", (900, 900)) + b"\0" * 60_000, "image/png"),
        **signed(),
    }
    response = Client().post("/email/inbound/mailgun", fields)
    assert response.status_code == 200 and response.json() == {"status": "posted"}
    last = customer_messages(conversation)[-1]
    assert last.content == "[Not attached: huge.png (over the 48.8 KB limit)]"
    assert stored_attachments(conversation) == [("scan.pdf", "application/pdf")]


@pytest.mark.django_db
def test_past_ten_files_an_email_names_the_rest_and_a_chinese_conversation_reads_it_in_chinese(
    inbound, media, django_user_model
):
    conversation, _ = conversation_with_agent(django_user_model)
    Conversation.objects.filter(pk=conversation.pk).update(language="zh-CN")
    files = {f"attachment-{n}": SimpleUploadedFile(f"p{n:02}.png", image_bytes("PNG", (8, 8))) for n in range(1, 13)}
    fields = {"recipient": reply_address(conversation.id), "sender": "ann@example.com", "body-plain": "照片", **files}
    assert Client().post("/email/inbound/mailgun", {**fields, **signed()}).json() == {"status": "posted"}
    last = customer_messages(conversation)[-1]
    assert [a.name for a in last.attachments.order_by("name")] == [f"p{n:02}.png" for n in range(1, 11)]
    assert last.content == "照片\n\n[未附上:p11.png(一封邮件中的文件过多)]\n\n[未附上:p12.png(一封邮件中的文件过多)]"


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_email_is_deferred_not_dropped_and_lands_when_sent_again(
    receiver, media, monkeypatch, django_user_model
):
    conversation, _ = conversation_with_agent(django_user_model)
    cache.clear()
    monkeypatch.setattr("chat.services.messages.MESSAGES_PER_MINUTE_DEFAULT", 1)  # no site: the API's default
    services.message_post_customer(conversation_id=conversation.id, content="One more thing")  # uses the minute
    email = reply_email(reply_address(conversation.id))
    with smtplib.SMTP(receiver.hostname, receiver.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            smtp.send_message(email)
    assert deferred.value.smtp_code == 451  # the sending server keeps it and tries again
    assert customer_messages(conversation)[-1].content == "One more thing"
    response = Client().post(
        "/email/inbound/mailgun",
        {"recipient": reply_address(conversation.id), "sender": "ann@example.com", "body-plain": "Hi", **signed()},
    )
    assert response.status_code == 503 and response.json()["error"]["code"] == "deferred"  # Mailgun retries

    cache.clear()  # the minute is over
    with smtplib.SMTP(receiver.hostname, receiver.port, timeout=10) as smtp:
        smtp.send_message(email)
    assert customer_messages(conversation)[-1].content == "Got it, thanks."


@pytest.mark.django_db
def test_a_long_email_is_cut_not_dropped_and_keeps_the_line_naming_a_file_not_kept(
    inbound, media, settings, django_user_model
):
    settings.CHAT_MAX_MESSAGE_CHARS = 200
    conversation, _ = conversation_with_agent(django_user_model)
    fields = {
        "recipient": reply_address(conversation.id),
        "sender": "ann@example.com",
        "body-plain": "word " * 100,
        "attachment-1": SimpleUploadedFile("tool.exe", EXE_BYTES),
        **signed(),
    }
    assert Client().post("/email/inbound/mailgun", fields).json() == {"status": "posted"}
    content = customer_messages(conversation)[-1].content
    note = "[Not attached: tool.exe (this type of file is not accepted)]"
    assert len(content) == 200 and content.endswith("…\n\n" + note) and content.startswith("word word")
