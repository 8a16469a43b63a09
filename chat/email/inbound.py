"""A customer's reply email, however it arrived (Mailgun's webhook, the SMTP receiver): parsed, checked, routed.

It lands in the conversation its reply address names (chat.email.addresses) as the customer's message, through the
same service as a chat message: the console and the widget see it through the usual broadcasts, a resolved
conversation reopens, and one with the bot goes to the team. Mail from anyone but the conversation's customer is
dropped (logged and counted), and a redelivered email (same Message-ID) is stored once.

Its files (attachments and inline images) go through the widget's checks (chat.attachments) and are kept with the
message; one that is not kept (a type not allowed, too large, past INBOUND_MAX_FILES) is named under the text, so the
agent and the customer both see what did not arrive. A rate limit defers the email ("deferred": the SMTP receiver
answers 451 and the webhook 503, and the sender tries again later) rather than dropping it.
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

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from chat import services, strings
from chat.attachments import CheckedFile, FileRefused, file_check, size_text
from chat.email.addresses import conversation_id_from_recipients
from chat.email.outbound import customer_email_address
from chat.email.quotes import reply_text
from chat.email.suppression import email_normalize, email_suppress
from chat.metrics import EMAILS_INBOUND
from chat.models import Conversation

# Files kept from one email; the rest are named as not attached.
INBOUND_MAX_FILES = 10

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
    files: list = field(default_factory=list)  # uploaded files (name and bytes), attachments and inline images


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
        files=_mime_files(message, body),
        recipients=recipients,
        senders=_addresses(str(message.get("From", "")), mail_from),
        subject=str(message.get("Subject", "")),
        text=text,
        message_id=str(message.get("Message-ID", "")).strip(),
        in_reply_to=str(message.get("In-Reply-To", "")).strip(),
        references=str(message.get("References", "")).split(),
    )


def _mime_files(message, body) -> list[SimpleUploadedFile]:
    """The email's files: every leaf part but the body that has a file name or is not text (a pasted screenshot,
    an attached PDF), in order. The text and HTML versions of the body are not files."""
    files = []
    for part in message.walk():
        if part.is_multipart() or part is body:
            continue
        name = part.get_filename() or ""
        if not name and (part.get_content_maintype() == "text" or part.get_content_type() == "message/rfc822"):
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            files.append(SimpleUploadedFile(name or "attachment", data, part.get_content_type()))
    return files


def inbound_from_mailgun(fields, files=None) -> InboundEmail:
    """An email as Mailgun's inbound route posts it (form fields, body-plain else body-html; its files as
    attachment-1, attachment-2, ...)."""
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
        files=[files[key] for key in sorted(files or {}, key=_attachment_number) if key.startswith("attachment-")],
    )


def _attachment_number(key: str) -> int:
    number = key.rpartition("-")[2]
    return int(number) if number.isdigit() else 0


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
    sender_mismatch, empty, rejected, unsubscribed, or deferred: refused for now by a rate limit, to be sent again)."""
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
    kept, not_kept = files_checked(mail.files, language=conversation.language)
    try:
        content = _content(reply_text(mail.text), not_kept)
        if not content and not kept:
            return _outcome("empty", mail, conversation_id)
        client_id = message_client_id(mail.message_id, content)
        if kept:
            _message, created = services.attachments_post_customer(
                conversation_id=conversation.id, files=kept, caption=content, client_id=client_id, via="email"
            )
        else:
            _message, created = services.message_post_customer(
                conversation_id=conversation.id, content=content, client_id=client_id, via="email"
            )
    except services.MessageRejected as exc:
        logger.warning("inbound email for %s refused: %s", conversation_id, exc)
        return _outcome("deferred" if exc.retry_after else "rejected", mail, conversation_id)
    finally:
        for checked in kept:
            checked.close()
    return _outcome("posted" if created else "duplicate", mail, conversation_id)


def _content(text: str, not_kept: list[str]) -> str:
    """The message's text: the email's own words, cut to CHAT_MAX_MESSAGE_CHARS with room for the lines naming the
    files not kept (a long email is cut, not refused)."""
    notes = "\n\n".join(not_kept)
    room = settings.CHAT_MAX_MESSAGE_CHARS - (len(notes) + 2 if notes else 0)
    if len(text) > room:
        text = text[: max(room - 1, 0)].rstrip() + "…"
    return "\n\n".join(part for part in (text, notes) if part)[: settings.CHAT_MAX_MESSAGE_CHARS]


def files_checked(files, *, language: str) -> tuple[list[CheckedFile], list[str]]:
    """The email's files that pass the widget's checks (open: the caller closes them), and a line naming each
    other one and why it was not kept. Empty files are left out without a word."""
    kept: list[CheckedFile] = []
    not_kept: list[str] = []
    for upload in files:
        name = getattr(upload, "name", "") or "attachment"
        if len(kept) >= INBOUND_MAX_FILES:
            reason = strings.text("email_file_count", language)
        else:
            try:
                kept.append(file_check(upload))
                continue
            except FileRefused as exc:
                if exc.code == "file_empty":
                    continue
                reason = _refusal_reason(exc.code, language)
        not_kept.append(strings.text("email_file_not_kept", language, name=name[:120], reason=reason))
    return kept, not_kept


def _refusal_reason(code: str, language: str) -> str:
    if code == "file_type_not_allowed":
        return strings.text("email_file_type", language)
    if code == "file_too_large":
        return strings.text("email_file_size", language, limit=size_text(settings.ATTACHMENT_MAX_BYTES))
    return strings.text("email_file_invalid", language)


def sender_of(mail: InboundEmail) -> str:
    return parseaddr(mail.senders[0])[1] if mail.senders else ""
