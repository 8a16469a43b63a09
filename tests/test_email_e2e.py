"""Email both ways on the whole stack (issue 17, done-when 1): a customer hands off to an agent and leaves; the
agent's reply reaches a real SMTP server (aiosmtpd, here); its link opens the conversation in a browser's widget;
a reply to the email, sent with smtplib to `manage.py email_receive` running as its own process, shows up stripped
of its quoted history in the agent's console and in the customer's widget."""

import asyncio
import re
import smtplib
import sys
import uuid
from email.message import EmailMessage

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat.models import Conversation, Message
from tests import stack
from tests.smtp_server import body_text, smtp_start

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOMAIN = "reply.acme.test"


@pytest.fixture
def smtp():
    controller, inbox = smtp_start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def email_stack(production_env, logs_dir, smtp, site):
    """daphne (answering and sending email in its own process) and `manage.py email_receive`, both pointed at the
    test SMTP server and the test database; returns the site's URL, the inbox and the receiver's port."""
    controller, inbox = smtp
    port, receive_port = stack.free_port(), stack.free_port()
    env = {
        **production_env,
        "GENERATION_BACKEND": "inprocess",  # the email task runs in daphne's own pool: no Celery worker needed
        "EMAIL_URL": f"smtp://127.0.0.1:{controller.port}",
        "DEFAULT_FROM_EMAIL": "support@acme.test",
        "COMPANY_NAME": "Acme",
        "EMAIL_INBOUND_DOMAIN": DOMAIN,
        "EMAIL_REPLY_DELAY": "1",
        "HELPDESK_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    web, base_url = stack.start_web(env, logs_dir, port=port, name="daphne-email")
    args = [sys.executable, "manage.py", "email_receive", "--host", "127.0.0.1", "--port", str(receive_port)]
    receiver = stack.Process("email-receive", args, env, logs_dir)
    try:
        receiver.wait_for_log("listening on", timeout=60)
        yield base_url, inbox, receive_port
    finally:
        receiver.stop()
        web.stop()


@database_sync_to_async
def make_agent() -> None:
    user = get_user_model().objects.create_user("ann", password="ann-pass-123", first_name="Ann")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))


async def test_an_offline_customer_gets_the_reply_by_email_opens_its_link_and_answers_by_email(browser, email_stack):
    base_url, inbox, receive_port = email_stack
    await make_agent()
    agent_ctx = await browser.new_context(viewport={"width": 1200, "height": 760})
    agent = await agent_ctx.new_page()
    await agent.goto(base_url + "/console/")
    await agent.fill("#id_username", "ann")
    await agent.fill("#id_password", "ann-pass-123")
    await agent.click("button[type=submit]")
    await agent.wait_for_selector("#connection:has-text('Online')")

    # The customer gives an address, asks for a person, and leaves before anyone answers.
    customer_ctx = await browser.new_context()
    customer = await customer_ctx.new_page()
    await customer.goto(base_url + "/")
    await customer.fill(".hd-prechat input[name=name]", "Ola")
    await customer.fill(".hd-prechat input[name=email]", "ola@example.no")
    await customer.click(".hd-prechat button[type=submit]")
    await customer.wait_for_selector(".hd-status:has-text('Online')")
    await customer.fill(".hd-input", "I want to talk to a human please, my sofa arrived broken")
    await customer.keyboard.press("Enter")
    await customer.wait_for_selector(".hd-status:has-text('Waiting for an agent')")
    await customer_ctx.close()

    await agent.wait_for_selector("#queue button", timeout=10_000)
    await agent.click("#queue button")
    await agent.click("#btn-claim")
    await agent.wait_for_selector("#conv-status:has-text('agent')")
    await agent.fill("#reply-input", "Sorry about that! A replacement ships tomorrow.")
    await agent.keyboard.press("Enter")

    # The email: sent by daphne's pool after EMAIL_REPLY_DELAY, received by the SMTP server of this test.
    [email] = await database_sync_to_async(inbox.wait_for)(1, 30)
    conversation = await database_sync_to_async(Conversation.objects.get)()
    assert email["To"] == "ola@example.no" and email["From"] == "Acme <support@acme.test>"
    assert re.fullmatch(rf"reply\+{conversation.id.hex}\.[0-9a-f]{{16}}@{re.escape(DOMAIN)}", email["Reply-To"])
    text = body_text(email)
    assert "A replacement ships tomorrow." in text
    link = re.search(rf"{re.escape(base_url)}/\S*#\S+", text).group(0)
    # Marked as emailed in the transaction that sent it, which commits just after the server took the email.
    for _ in range(50):
        reply = await database_sync_to_async(Message.objects.get)(conversation=conversation, role="agent")
        if reply.emailed_at is not None:
            break
        await asyncio.sleep(0.1)
    assert reply.emailed_at is not None

    # The link opens this conversation in the widget of a browser that never saw it.
    linked_ctx = await browser.new_context()
    linked = await linked_ctx.new_page()
    await linked.goto(link)
    await linked.wait_for_selector(".hd-msg--agent:has-text('A replacement ships tomorrow')", timeout=15_000)
    await linked.wait_for_selector(".hd-msg--customer:has-text('my sofa arrived broken')")

    # The customer answers the email; their client quotes ours below the answer.
    answer = EmailMessage()
    answer["From"], answer["To"] = "Ola <ola@example.no>", email["Reply-To"]
    answer["Subject"] = f"Re: {email['Subject']}"
    answer["Message-ID"], answer["In-Reply-To"] = f"<{uuid.uuid4().hex}@mail.example.no>", email["Message-ID"]
    answer.set_content(
        "Great, tomorrow works for me.\n\n"
        "On Thu, Dec 3, 2026 at 12:00 PM Acme <support@acme.test> wrote:\n> Sorry about that! A replacement ships"
        " tomorrow.\n"
    )
    with smtplib.SMTP("127.0.0.1", receive_port, timeout=10) as client:
        client.send_message(answer)

    await agent.wait_for_selector("#conv-log .msg--customer:has-text('tomorrow works for me')", timeout=15_000)
    await agent.wait_for_selector("#conv-log .msg--customer:has-text('tomorrow works for me') .msg__via")
    await linked.wait_for_selector(".hd-msg--customer:has-text('tomorrow works for me')", timeout=15_000)
    assert "wrote:" not in await agent.text_content("#conv-log")
    stored = await database_sync_to_async(Message.objects.filter(conversation=conversation, via="email").get)()
    assert stored.content == "Great, tomorrow works for me."
    await linked_ctx.close()
    await agent_ctx.close()
