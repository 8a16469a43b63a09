"""Attachments: the type told by the bytes (real files made with Pillow), the size limit, thumbnails, storage; the
widget's upload and the downloads only the conversation's customer and its staff get; the console's upload; and
what the bot is told of a file."""

import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from chat import selectors, services, session_cache
from chat.attachments import FileRefused, display_name, file_check, sniff
from chat.models import Attachment, Conversation, Message, Site
from chat.serializers import message_to_dict
from helpdesk.limits import body_limit
from helpdesk.selectors import staff_messages_page

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"
PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 4


def image_bytes(fmt: str = "PNG", size=(800, 600), mode: str = "RGB") -> bytes:
    image = Image.new(mode, size, "red" if mode != "1" else 1)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def upload(name: str, content: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cache.clear()  # rate limits and the session cache
    yield Path(settings.MEDIA_ROOT)
    cache.clear()


@pytest.fixture
def no_reply(monkeypatch):
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)


@pytest.fixture
def site():
    return Site.objects.create(name="Shop", allowed_origins=SHOP)


@pytest.fixture
def conversation(site):
    conversation, secret = services.conversation_start(site=site)
    conversation.secret = secret
    return conversation


def agent_with_console(username: str = "ann"):
    user = get_user_model().objects.create_user(username, password="pw-123456")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    return user


# --- What a file is -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_each_allowed_image_is_recognised_by_its_bytes_with_its_size_and_a_thumbnail(fmt, content_type):
    checked = file_check(upload("holiday", image_bytes(fmt)))
    try:
        assert (checked.content_type, checked.width, checked.height) == (content_type, 800, 600)
        thumbnail = Image.open(io.BytesIO(checked.thumbnail))
        assert thumbnail.format == "JPEG" and max(thumbnail.size) == 320 and thumbnail.size == (320, 240)
        assert checked.name == "holiday" + checked.kind.extensions[0]
    finally:
        checked.close()


def test_a_program_renamed_to_png_is_refused_as_what_it_is():
    with pytest.raises(FileRefused) as refused:
        file_check(upload("photo.png", EXE_BYTES, "image/png"))
    assert refused.value.code == "file_type_not_allowed"
    assert str(refused.value).startswith("This file type is not allowed: a Windows program.")


@pytest.mark.parametrize(
    "content",
    [b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>\x00", b"PK\x03\x04" + b"\x00" * 64],
)
def test_svg_and_archives_are_refused(content):
    with pytest.raises(FileRefused) as refused:
        file_check(upload("file.png", content, "image/png"))
    assert refused.value.code == "file_type_not_allowed"


def test_utf8_text_is_plain_text_and_binary_with_nuls_is_not():
    checked = file_check(upload("notes.md", "Order 42: 沙发 arrived broken\n".encode()))
    assert (checked.content_type, checked.name) == ("text/plain", "notes.md.txt")
    checked.close()
    with pytest.raises(FileRefused):
        file_check(upload("notes.txt", b"text\x00with a nul"))
    with pytest.raises(FileRefused):
        file_check(upload("notes.txt", b"\xff\xfe not utf-8 \xc3\x28"))


def test_a_damaged_image_is_refused():
    broken = image_bytes("PNG")[:200]
    with pytest.raises(FileRefused) as refused:
        file_check(upload("broken.png", broken))
    assert refused.value.code == "file_invalid"


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    bomb = image_bytes("PNG", size=(10_000, 5_000), mode="1")  # 50 megapixels in a few kilobytes
    assert len(bomb) < 200_000
    with pytest.raises(FileRefused) as refused:
        file_check(upload("bomb.png", bomb))
    assert refused.value.code == "image_too_large"


def test_an_upload_over_the_limit_is_refused_while_it_is_read(settings):
    settings.ATTACHMENT_MAX_BYTES = 100_000
    read = []

    class EndlessUpload:  # 2 GB if anyone read it all
        name = "huge.txt"

        def chunks(self, size):
            for _ in range(2**31 // size):
                read.append(size)
                yield b"a" * size

    with pytest.raises(FileRefused) as refused:
        file_check(EndlessUpload())
    assert refused.value.code == "file_too_large" and "limit is 97.7 KB" in str(refused.value)
    assert sum(read) <= 100_000 + 64 * 1024  # stopped at the first chunk past the limit


def test_sniffing_reads_magic_bytes_only():
    assert sniff(b"%PDF-1.7").content_type == "application/pdf"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ").content_type == "image/webp"
    assert sniff(b"GIF89a").content_type == "image/gif"
    assert sniff(b"hello") is None


def test_display_names_lose_paths_and_control_characters_and_say_what_the_file_is():
    checked = file_check(upload("x", PDF_BYTES))
    kind = checked.kind
    checked.close()
    assert display_name("../../etc/scan.png", kind) == "scan.pdf"
    assert display_name('C:\\Users\\me\\in"voice\x07.pdf', kind) == "invoice.pdf"
    assert display_name("", kind) == "file.pdf"
    assert display_name("a" * 300 + ".pdf", kind) == "a" * 116 + ".pdf"


# --- Storing: the service -----------------------------------------------------------------------------------------


def test_a_png_name_with_pdf_content_is_stored_as_a_pdf(conversation, no_reply, media):
    message, created = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("scan.png", PDF_BYTES, "image/png"), caption="My invoice"
    )
    attachment = Attachment.objects.get()
    assert created and message.content == "My invoice" and attachment.message == message
    assert (attachment.content_type, attachment.name, attachment.size) == (
        "application/pdf",
        "scan.pdf",
        len(PDF_BYTES),
    )
    assert not attachment.thumbnail and attachment.width is None
    assert Path(attachment.file.path).read_bytes() == PDF_BYTES
    assert stored_files(media) == [Path(attachment.file.path)]
    assert "scan" not in attachment.file.name  # stored under its id, never the sender's name


def test_an_image_is_stored_with_its_thumbnail(conversation, no_reply, media):
    message, _ = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("sofa.jpg", image_bytes("JPEG", (1200, 900)))
    )
    attachment = message.attachments.get()
    assert message.content == "" and (attachment.width, attachment.height) == (1200, 900)
    with attachment.thumbnail.open("rb") as thumb:
        assert Image.open(thumb).size == (320, 240)
    assert len(stored_files(media)) == 2


def test_a_file_too_large_is_refused_and_nothing_is_stored(conversation, no_reply, media, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    with pytest.raises(services.MessageRejected) as refused:
        services.attachment_post_customer(conversation_id=conversation.id, upload=upload("log.txt", b"x" * 1001))
    assert refused.value.code == "file_too_large"
    assert not Attachment.objects.exists() and not Message.objects.filter(conversation=conversation).exists()
    assert stored_files(media) == []


def test_a_refused_message_leaves_no_file_behind(conversation, no_reply, media, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    with pytest.raises(services.MessageRejected) as refused:
        services.attachment_post_customer(
            conversation_id=conversation.id, upload=upload("a.pdf", PDF_BYTES), caption="far too long a caption"
        )
    assert refused.value.code == "message_too_long"
    assert stored_files(media) == [] and not Attachment.objects.exists()


def test_a_resend_with_the_same_client_id_is_stored_once(conversation, no_reply, media):
    first, created = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("a.pdf", PDF_BYTES), client_id="c1"
    )
    again, created_again = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("a.pdf", PDF_BYTES), client_id="c1"
    )
    assert created and not created_again and again.pk == first.pk
    assert Attachment.objects.count() == 1 and len(stored_files(media)) == 1


def test_the_message_is_broadcast_with_its_attachments(conversation, no_reply, django_capture_on_commit_callbacks):
    sent = []
    from chat import broadcast

    original = broadcast.group_send
    broadcast.group_send = lambda group, event: sent.append(event)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.attachment_post_customer(
                conversation_id=conversation.id, upload=upload("sofa.png", image_bytes()), caption="Look"
            )
    finally:
        broadcast.group_send = original
    [event] = [e for e in sent if e["type"] == "chat.message"]
    [data] = event["message"]["attachments"]
    attachment = Attachment.objects.get()
    assert data == {
        "id": str(attachment.id),
        "name": "sofa.png",
        "content_type": "image/png",
        "size": attachment.size,
        "width": 800,
        "height": 600,
        "is_image": True,
        "url": f"/widget/v1/conversations/{conversation.id}/attachments/{attachment.id}",
        "thumbnail_url": f"/widget/v1/conversations/{conversation.id}/attachments/{attachment.id}?thumb=1",
    }


def test_messages_are_listed_with_their_attachments_for_the_customer_and_the_staff(conversation, no_reply):
    services.message_post_customer(conversation_id=conversation.id, content="hello")
    services.attachment_post_customer(conversation_id=conversation.id, upload=upload("a.pdf", PDF_BYTES))
    listed = [message_to_dict(m) for m in selectors.messages_visible_to_customer(conversation=conversation)]
    assert "attachments" not in listed[0] and listed[1]["attachments"][0]["name"] == "a.pdf"
    page, _more = staff_messages_page(conversation_id=conversation.id)
    assert [m.get("attachments", [{}])[0].get("name") for m in page] == [None, "a.pdf"]


def test_only_the_assigned_agent_sends_a_file_and_a_refusal_stores_nothing(conversation, media):
    ann, bob = agent_with_console("ann"), agent_with_console("bob")
    Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.AGENT, assignee=ann)
    with pytest.raises(services.ActionRefused):
        services.attachment_post_agent(conversation_id=conversation.id, agent=bob, upload=upload("a.pdf", PDF_BYTES))
    assert stored_files(media) == []
    message = services.attachment_post_agent(
        conversation_id=conversation.id, agent=ann, upload=upload("label.pdf", PDF_BYTES), caption="Your return label"
    )
    assert (
        message.role == Message.Role.AGENT and message.author == ann and message.attachments.get().name == "label.pdf"
    )


# --- What the bot is told -----------------------------------------------------------------------------------------


def test_the_bots_prompt_names_the_file_and_its_type_and_says_it_cannot_see_it(
    conversation, fake_engine, ungrounded, no_reply
):
    from chat.reply import reply_generate

    message, _ = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("sofa.jpg", image_bytes("JPEG")), caption="Is this covered?"
    )
    reply = reply_generate(customer_message_id=message.pk)
    turns, _params = fake_engine.calls[-1]
    assert turns[-1].role == "user"
    assert turns[-1].content == (
        "Is this covered?\n[The customer attached a file: sofa.jpg (image/jpeg). You cannot see it.]"
    )
    assert reply.content == "Hello there!"
    # The session cache holds the same words as the database.
    cached, hit = session_cache.turns_before(conversation_id=conversation.id, seq=message.seq + 1)
    assert hit and cached[-1][1] == turns[-1].content


def test_a_file_without_a_word_gets_a_fixed_honest_reply_not_a_generated_one(site, fake_engine, ungrounded, no_reply):
    from chat.reply import reply_generate

    for language, expected in (("en", "I can't open or look at files"), ("zh", "我无法打开或查看文件")):
        conversation, _ = services.conversation_start(site=site, language=language)
        message, _ = services.attachment_post_customer(
            conversation_id=conversation.id, upload=upload("sofa.jpg", image_bytes("JPEG"))
        )
        reply = reply_generate(customer_message_id=message.pk)
        assert expected in reply.content and "“sofa.jpg”" in reply.content
        assert reply.grounding == "attachment" and reply.state == Message.State.COMPLETE
    assert fake_engine.calls == []  # no model was asked to describe a picture it was not shown


def test_a_file_without_a_word_is_still_in_the_history_of_the_next_reply(
    conversation, fake_engine, ungrounded, no_reply
):
    from chat.reply import reply_generate

    services.attachment_post_customer(conversation_id=conversation.id, upload=upload("receipt.pdf", PDF_BYTES))
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="Can I get a refund?")
    reply_generate(customer_message_id=message.pk)
    turns, _params = fake_engine.calls[-1]
    said = [turn.content for turn in turns if turn.role == "user"]
    assert said[-2:] == [
        "[The customer attached a file: receipt.pdf (application/pdf). You cannot see it.]",
        "Can I get a refund?",
    ]


def test_the_knowledge_base_is_searched_for_the_customers_words_not_the_file_notes(monkeypatch):
    from chat import grounding
    from inference.types import ChatTurn

    searched = []
    monkeypatch.setattr(grounding, "retrieve", lambda question, **kw: searched.append(question) or _NoHits())
    note = "[The customer attached a file: sofa.jpg (image/jpeg). You cannot see it.]"
    grounding.plan(history=[ChatTurn("user", f"这个沙发能保修吗?\n{note}")], language="en", site="", engine=None)
    assert searched == ["这个沙发能保修吗?"]


class _NoHits:
    relevant = []
    best = None


# --- HTTP: the widget's upload and the downloads -----------------------------------------------------------------


def widget_upload(client, conversation, secret, file, origin=SHOP, **fields):
    headers = {"HTTP_X_CONVERSATION_SECRET": secret}
    if origin:
        headers["HTTP_ORIGIN"] = origin
    return client.post(f"/widget/v1/conversations/{conversation.id}/attachments", {"file": file, **fields}, **headers)


def test_the_customer_uploads_with_the_secret_and_gets_the_message_back(client, conversation, no_reply):
    response = widget_upload(client, conversation, conversation.secret, upload("sofa.png", image_bytes()), caption="Hi")
    assert response.status_code == 201 and response["Access-Control-Allow-Origin"] == SHOP
    message = response.json()["message"]
    assert message["role"] == "customer" and message["content"] == "Hi"
    assert message["attachments"][0]["is_image"] and message["attachments"][0]["thumbnail_url"].endswith("?thumb=1")


def test_an_upload_is_refused_clearly_for_a_bad_type_a_bad_secret_or_a_foreign_page(client, conversation, site):
    exe = widget_upload(client, conversation, conversation.secret, upload("setup.png", EXE_BYTES))
    assert exe.status_code == 415 and exe.json()["error"]["code"] == "file_type_not_allowed"
    assert exe.json()["error"]["message"].startswith("This file type is not allowed")
    _other, other_secret = services.conversation_start(site=site)
    stranger = widget_upload(client, conversation, other_secret, upload("a.pdf", PDF_BYTES))
    assert stranger.status_code == 404
    foreign = widget_upload(
        client, conversation, conversation.secret, upload("a.pdf", PDF_BYTES), origin="https://evil.example"
    )
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    assert not Attachment.objects.exists()


def test_the_preflight_allows_the_secret_header_for_a_sites_origin_only(client, conversation):
    url = f"/widget/v1/conversations/{conversation.id}/attachments"
    ok = client.options(url, HTTP_ORIGIN=SHOP, HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-conversation-secret")
    assert ok.status_code == 204 and "X-Conversation-Secret" in ok["Access-Control-Allow-Headers"]
    assert client.options(url, HTTP_ORIGIN="https://evil.example").status_code == 403


@pytest.fixture
def sofa(conversation, no_reply):
    message, _ = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("sofa.png", image_bytes())
    )
    return message.attachments.get()


def download(client, attachment, secret=None, query=""):
    headers = {"HTTP_X_CONVERSATION_SECRET": secret} if secret else {}
    url = f"/widget/v1/conversations/{attachment.conversation_id}/attachments/{attachment.id}{query}"
    return client.get(url, HTTP_ORIGIN=SHOP, **headers)


def test_the_customer_downloads_with_the_secret_served_safely(client, conversation, sofa):
    response = download(client, sofa, conversation.secret)
    assert response.status_code == 200 and b"".join(response.streaming_content) == sofa.file.open("rb").read()
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="sofa.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert (
        "sandbox" in response["Content-Security-Policy"] and "default-src 'none'" in response["Content-Security-Policy"]
    )
    assert response["Cache-Control"].startswith("private")
    assert response["Access-Control-Allow-Origin"] == SHOP
    thumb = download(client, sofa, conversation.secret, "?thumb=1")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(b"".join(thumb.streaming_content))).size == (320, 240)


def test_staff_with_the_console_download_without_the_secret(conversation, sofa):
    staff = Client()
    staff.force_login(agent_with_console())
    assert download(staff, sofa).status_code == 200
    someone = Client()
    someone.force_login(get_user_model().objects.create_user("visitor"))
    assert download(someone, sofa).status_code == 404


def test_another_customer_or_nobody_gets_a_404_that_reveals_nothing(client, site, sofa):
    _other, other_secret = services.conversation_start(site=site)
    for response in (download(client, sofa, other_secret), download(client, sofa), download(client, sofa, "x:y")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_text_file_is_downloaded_not_shown(client, conversation, no_reply):
    message, _ = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("<b>page</b>.html", b"<script>alert(1)</script>")
    )
    response = download(client, message.attachments.get(), conversation.secret)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;") and ".html.txt" in response["Content-Disposition"]


def test_a_pdf_is_a_download_as_chrome_blocks_its_viewer_under_the_sandboxing_csp(client, conversation, no_reply):
    message, _ = services.attachment_post_customer(
        conversation_id=conversation.id, upload=upload("label.pdf", PDF_BYTES)
    )
    response = download(client, message.attachments.get(), conversation.secret)
    assert response["Content-Type"] == "application/pdf" and "sandbox" in response["Content-Security-Policy"]
    assert response["Content-Disposition"] == 'attachment; filename="label.pdf"'


# --- HTTP: the console's upload -----------------------------------------------------------------------------------


def test_the_assigned_agent_uploads_from_the_console_with_csrf(conversation):
    ann = agent_with_console("ann")
    Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.AGENT, assignee=ann)
    url = f"/console/conversations/{conversation.id}/attachments"
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ann)
    assert browser.post(url, {"file": upload("label.pdf", PDF_BYTES)}).status_code == 403  # no CSRF token
    browser.get("/console/")
    token = browser.cookies["csrftoken"].value
    response = browser.post(url, {"file": upload("label.pdf", PDF_BYTES), "caption": ""}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201
    assert response.json()["message"]["author"] == "ann"
    assert response.json()["message"]["attachments"][0]["name"] == "label.pdf"


def test_the_console_upload_refuses_anyone_else(client, conversation):
    url = f"/console/conversations/{conversation.id}/attachments"
    assert client.post(url, {"file": upload("a.pdf", PDF_BYTES)}).status_code == 401
    bob = agent_with_console("bob")
    client.force_login(bob)
    refused = client.post(url, {"file": upload("a.pdf", PDF_BYTES)})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert not Attachment.objects.exists()


# --- Request sizes ------------------------------------------------------------------------------------------------


def test_the_upload_addresses_take_a_full_size_file_and_nothing_else_does(settings):
    limit = settings.ATTACHMENT_MAX_BYTES + 64 * 1024
    assert body_limit("/widget/v1/conversations/7f1c2a8e-0000-4000-8000-000000000000/attachments") == limit
    assert body_limit("/console/conversations/7f1c2a8e-0000-4000-8000-000000000000/attachments") == limit
    assert body_limit("/widget/v1/sites/abc/conversations") == settings.REQUEST_BODY_LIMIT_WIDGET
    assert body_limit("/widget/v1/conversations/x/y/attachments") == settings.REQUEST_BODY_LIMIT_WIDGET
    assert body_limit("/console/") == settings.REQUEST_BODY_LIMIT_DEFAULT


def test_the_agents_summary_names_the_file_without_the_models_note_and_searches_words_only(monkeypatch):
    from chat import grounding
    from inference.types import ChatTurn

    searched = []
    monkeypatch.setattr(grounding, "retrieve", lambda question, **kw: searched.append(question) or _NoHits())
    note = "[The customer attached a file: sofa (1).jpg (image/jpeg). You cannot see it.]"
    summary = grounding.summary_from_knowledge(
        history=[ChatTurn("user", note), ChatTurn("user", f"It arrived broken\n{note}")], language="en", site=""
    )
    assert summary.splitlines()[:2] == [
        "Customer asks: It arrived broken [file: sofa (1).jpg]",
        "Before that: [file: sofa (1).jpg]",
    ]
    assert "cannot see" not in summary and searched == ["It arrived broken"]
