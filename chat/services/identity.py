"""Conversations of verified customers: opened by (or linked to) a site's signed-in user whose signature
chat.identity checked. Call these only with a chat.identity.VerifiedIdentity, never with what a page merely claims."""

import uuid

from django.db import transaction

from chat.identity import VerifiedIdentity
from chat.models import Contact, Conversation, Site
from chat.services.contacts import contact_identify
from chat.services.conversations import conversation_start


def identity_contact(*, site: Site, identity: VerifiedIdentity) -> Contact:
    """The site's verified contact for this signed-in user (made on first sight, its name and email refreshed)."""
    return contact_identify(site=site, external_id=identity.user_id, name=identity.name, email=identity.email)


@transaction.atomic
def conversation_identity_verified(*, conversation_id: uuid.UUID, contact: Contact) -> Conversation:
    """Mark a conversation as opened by this verified contact."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    conversation.contact = contact
    conversation.identity_verified = True
    conversation.save(update_fields=["contact", "identity_verified", "updated_at"])
    return conversation


@transaction.atomic
def conversation_start_verified(*, site: Site, identity: VerifiedIdentity, **fields) -> tuple[Conversation, str]:
    """Open a conversation (chat.services.conversation_start, same fields) for a verified customer: linked to their
    contact and marked verified; the name and email the site signed for replace what the form said."""
    contact = identity_contact(site=site, identity=identity)
    fields["customer_name"] = contact.name or fields.get("customer_name", "")
    fields["customer_email"] = contact.email or fields.get("customer_email", "")
    conversation, secret = conversation_start(site=site, **fields)
    return conversation_identity_verified(conversation_id=conversation.id, contact=contact), secret
