"""The self-hosted way in: a small SMTP server (aiosmtpd) for the reply addresses (`manage.py email_receive`).

Point the MX of EMAIL_INBOUND_DOMAIN at it (port 25, through a firewall or proxy as you like). It accepts mail only
for valid reply addresses (550 for anything else, so it is no open relay), at most EMAIL_INBOUND_MAX_BYTES each,
and hands each email to chat.email.inbound. A database outage or a rate limit answers 451 so the sending server
tries again.
"""

import asyncio
import logging

from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import close_old_connections

from chat.email.addresses import conversation_id_from_address
from chat.email.inbound import inbound_from_bytes, inbound_route
from chat.outages import backend_unavailable

logger = logging.getLogger(__name__)


def _route(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
    close_old_connections()
    try:
        return inbound_route(inbound_from_bytes(raw, mail_from=mail_from, rcpt_tos=rcpt_tos))
    finally:
        close_old_connections()


class InboundHandler:
    """aiosmtpd's hooks: recipients checked at RCPT, the email routed at DATA (in a thread: the ORM is sync)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if conversation_id_from_address(address) is None:
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        try:
            outcome = await asyncio.to_thread(_route, raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception as exc:
            if backend_unavailable(exc):
                return "451 4.3.0 Temporarily unable to accept the message; try again later"
            logger.exception("could not handle an inbound email")
            return "554 5.3.0 The message could not be handled"
        if outcome == "deferred":  # a rate limit: the sending server tries again later
            return "451 4.7.1 Too many messages in this conversation for now; try again later"
        return f"250 OK {outcome}"


def smtp_receiver(host: str, port: int) -> Controller:
    """The SMTP server (not started): call start() and stop()."""
    return Controller(
        InboundHandler(),
        hostname=host,
        port=port,
        data_size_limit=settings.EMAIL_INBOUND_MAX_BYTES,
        server_hostname=settings.EMAIL_INBOUND_DOMAIN,
        ident="helpdesk email_receive",
    )
