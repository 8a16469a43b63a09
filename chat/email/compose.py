"""Building a customer email: templates (text and HTML), sender, Reply-To, thread and unsubscribe headers."""

import uuid
from email.utils import formataddr, make_msgid, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from chat.access import conversation_reopen_link
from chat.email.addresses import reply_address
from chat.email.suppression import unsubscribe_url
from chat.email.texts import texts
from chat.models import Conversation, Message
from chat.strings import language_code


def sender() -> str:
    """DEFAULT_FROM_EMAIL, named after the company unless it names itself."""
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((name or settings.COMPANY_NAME, address))


def thread_id(conversation_id: uuid.UUID) -> str:
    """The Message-ID every email of the conversation refers to, so mail clients show them as one thread."""
    return f"<conversation.{uuid.UUID(str(conversation_id)).hex}@{settings.EMAIL_INBOUND_DOMAIN}>"


def message_lines(conversation: Conversation, messages: list[Message], words: dict) -> list[dict]:
    """Messages as the templates show them: who (from the customer's side), what, when."""
    lines = []
    for message in messages:
        if message.role == Message.Role.CUSTOMER:
            who = words["you"]
        elif message.role == Message.Role.BOT:
            who = words["assistant"]
        elif message.role == Message.Role.AGENT:
            who = (message.author.first_name if message.author_id else "") or words["support"]
        else:
            who = ""
        # A file is named, never attached: it is fetched from the conversation, where only its customer may.
        files = [attachment.name for attachment in message.attachments.all()]
        lines.append(
            {"who": who, "content": message.content, "files": files, "at": message.created_at, "role": message.role}
        )
    return lines


def customer_email_build(
    *, conversation: Conversation, kind: str, to: str, messages: list[Message]
) -> EmailMultiAlternatives:
    """The email of `kind` (agent_reply, left_message, transcript; templates/email/<kind>.txt and .html) about
    `messages`, to the customer at `to`, in the conversation's language."""
    company = settings.COMPANY_NAME
    words = texts(conversation.language, company=company, name=conversation.customer_name)
    unsubscribe = unsubscribe_url(to)
    reply_to = reply_address(conversation.id)
    context = {
        "t": words,
        "lang": language_code(conversation.language),
        "company": company,
        "customer_name": conversation.customer_name,
        "messages": message_lines(conversation, messages, words),
        "reopen_link": conversation_reopen_link(conversation),
        "unsubscribe_url": unsubscribe,
    }
    root = thread_id(conversation.id)
    headers = {
        "Message-ID": make_msgid(idstring=f"{kind}.{conversation.id.hex}", domain=settings.EMAIL_INBOUND_DOMAIN),
        "In-Reply-To": root,
        "References": root,
        # RFC 2369 and RFC 8058: mail providers show an unsubscribe button that POSTs to the link (one click); the
        # mailto goes to the reply address, whose "unsubscribe" subject the inbound side understands.
        "List-Unsubscribe": f"<{unsubscribe}>, <mailto:{reply_to}?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated" if kind != "agent_reply" else "no",
    }
    email = EmailMultiAlternatives(
        subject=words[f"{kind}_subject"],
        body=render_to_string(f"email/{kind}.txt", context),
        from_email=sender(),
        to=[to],
        reply_to=[reply_to],
        headers=headers,
    )
    email.attach_alternative(render_to_string(f"email/{kind}.html", context), "text/html")
    return email
