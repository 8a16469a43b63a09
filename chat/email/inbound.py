"""A customer's reply email, however it arrived (Mailgun's webhook, the SMTP receiver): parsed, checked, routed.

It lands in the conversation its reply address names (chat.email.addresses) as the customer's message, through the
same service as a chat message: the console and the widget see it through the usual broadcasts, a resolved
conversation reopens, and one with the bot goes to the team. Mail from anyone but the conversation's customer is
dropped (logged and counted), and a redelivered email (same Message-ID) is stored once.
"""

import email
import email.policy
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

from chat import services
from chat.email.addresses import conversation_id_from_recipients
from chat.email.outbound import customer_email_address
from chat.email.quotes import reply_text
from chat.email.suppression import email_normalize, email_suppress
from chat.metrics import EMAILS_INBOUND
from chat.models import Conversation

logger = logging.getLogger(__name__)


@dataclass
class InboundEmail:
    recipients: list[str]
    senders: list[str]  # the From address and the envelope sender: either may be the customer's
    subject: str = ""
    text: str = ""  # the body as text (text/plain preferred, else the HTML's text), quotes not yet stripped
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)


class _HtmlText(HTMLParser):
    """HTML to plain text: block elements become line breaks; scripts, styles and quoted history (blockquote,
    Gmail's and Outlook's quote containers) are left out."""

    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "ul", "ol"}
    SKIP = {"script", "style", "head", "title", "blockquote"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        quote = "gmail_quote" in classes or "moz-cite-prefix" in classes or dict(attrs).get("id") == "divRplyFwdMsg"
        if tag in self.SKIP or (quote and tag == "div"):
            self.skipping.append(tag)
        elif tag in self.BLOCKS and not self.skipping:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()
        elif tag in self.BLOCKS and not self.skipping:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    return re.sub(r"\n[ \t]*\n[\n \t]*", "\n\n", "\n".join(line.strip() for line in text.split("\n"))).strip()


def _addresses(*values: str) -> list[str]:
    return [address for _name, address in getaddresses([v for v in values if v]) if address]


def inbound_from_bytes(raw: bytes, *, mail_from: str = "", rcpt_tos: list[str] | None = None) -> InboundEmail:
    """An email as received over SMTP (its bytes and envelope)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text = ""
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        try:
            content = body.get_content()
        except (LookupError, ValueError):  # an unknown charset: read what can be read
            content = body.get_payload(decode=True).decode("utf-8", "replace")
        text = html_to_text(content) if body.get_content_type() == "text/html" else content
    recipients = list(rcpt_tos or []) or _addresses(str(message.get("To", "")), str(message.get("Cc", "")))
    return InboundEmail(
        recipients=recipients,
        senders=_addresses(str(message.get("From", "")), mail_from),
        subject=str(message.get("Subject", "")),
        text=text,
        message_id=str(message.get("Message-ID", "")).strip(),
        in_reply_to=str(message.get("In-Reply-To", "")).strip(),
        references=str(message.get("References", "")).split(),
    )


def inbound_from_mailgun(fields) -> InboundEmail:
    """An email as Mailgun's inbound route posts it (form fields; body-plain, else body-html)."""
    text = fields.get("body-plain") or ""
    if not text.strip() and fields.get("body-html"):
        text = html_to_text(fields.get("body-html"))
    return InboundEmail(
        recipients=_addresses(fields.get("recipient", "")),
        senders=_addresses(fields.get("from", ""), fields.get("sender", "")),
        subject=fields.get("subject", ""),
        text=text,
        message_id=(fields.get("Message-Id") or fields.get("message-id") or "").strip(),
        in_reply_to=(fields.get("In-Reply-To") or "").strip(),
        references=(fields.get("References") or "").split(),
    )


def message_client_id(message_id: str, text: str) -> str:
    """The stored message's client_id: the same email delivered twice is stored once."""
    basis = message_id or text
    return "email:" + hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()[:40]


def _outcome(outcome: str, mail: InboundEmail, conversation_id: uuid.UUID | None = None) -> str:
    EMAILS_INBOUND.labels(outcome=outcome).inc()
    if outcome in ("posted", "duplicate"):
        logger.info("inbound email %s: %s for conversation %s", mail.message_id, outcome, conversation_id)
    else:
        logger.warning("inbound email %s from %s dropped: %s", mail.message_id, mail.senders, outcome)
    return outcome


def inbound_route(mail: InboundEmail) -> str:
    """Put a reply email where it belongs; returns the outcome (posted, duplicate, unknown_address,
    sender_mismatch, empty, rejected, unsubscribed)."""
    conversation_id = conversation_id_from_recipients(mail.recipients)
    if conversation_id is None:
        return _outcome("unknown_address", mail)
    conversation = Conversation.objects.select_related("contact").filter(pk=conversation_id).first()
    if conversation is None:
        return _outcome("unknown_address", mail)
    customer = email_normalize(customer_email_address(conversation))
    if not customer or customer not in {email_normalize(s) for s in mail.senders}:
        return _outcome("sender_mismatch", mail, conversation_id)
    if mail.subject.strip().lower() == "unsubscribe":  # the mailto of List-Unsubscribe
        email_suppress(address=customer)
        return _outcome("unsubscribed", mail, conversation_id)
    content = reply_text(mail.text)
    if not content:
        return _outcome("empty", mail, conversation_id)
    try:
        _message, created = services.message_post_customer(
            conversation_id=conversation.id,
            content=content,
            client_id=message_client_id(mail.message_id, content),
            via="email",
        )
    except services.MessageRejected as exc:
        logger.warning("inbound email for %s refused: %s", conversation_id, exc)
        return _outcome("rejected", mail, conversation_id)
    return _outcome("posted" if created else "duplicate", mail, conversation_id)


def sender_of(mail: InboundEmail) -> str:
    return parseaddr(mail.senders[0])[1] if mail.senders else ""
