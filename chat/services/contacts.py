"""Contacts: customers known beyond one conversation (chat.models.Contact).

A site's signed-in user becomes a verified contact through chat.identity (contact_identify); staff and integrations
create and update contacts through the agent API. Conversations point at their contact.
"""

import json
import math
import uuid

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from chat.models import Contact, Conversation, Site
from chat.services.base import storable
from chat.services.errors import ActionRefused
from inference.language import language_tag_clean

# The most a contact's free-form attributes may take, as JSON.
ATTRIBUTES_MAX_BYTES = 8192
_LIMITS = {"external_id": 128, "name": 120, "phone": 40}


def _storable_json(value):
    """A JSON value as PostgreSQL's jsonb takes it: text without NULs or unpaired surrogates, finite numbers."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(key)): _storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ActionRefused("invalid_contact", "attributes must hold finite numbers only.")
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ActionRefused("invalid_contact", "attributes must be JSON.")


def _clean(fields: dict) -> dict:
    """The fields as stored: text without control characters and within its length, a valid email (or none), a
    language tag, attributes a small JSON object. ActionRefused("invalid_contact" / "invalid_email") otherwise."""
    cleaned = {}
    for key, value in fields.items():
        if key == "attributes":
            if value is None:
                value = {}
            value = _storable_json(value) if isinstance(value, dict) else value
            if not isinstance(value, dict) or len(json.dumps(value, ensure_ascii=False)) > ATTRIBUTES_MAX_BYTES:
                raise ActionRefused(
                    "invalid_contact", f"attributes must be a JSON object under {ATTRIBUTES_MAX_BYTES} bytes."
                )
            cleaned[key] = value
            continue
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ActionRefused("invalid_contact", f"{key} must be text.")
        value = storable(value).strip()
        if key == "email" and value:
            try:
                validate_email(value)
            except ValidationError:
                raise ActionRefused("invalid_email", "That email address is not valid.") from None
            value = value[:254]
        elif key == "language":
            value = language_tag_clean(value) if value else ""
        elif key in _LIMITS:
            if len(value) > _LIMITS[key]:
                raise ActionRefused("invalid_contact", f"{key} is longer than {_LIMITS[key]} characters.")
        cleaned[key] = value
    return cleaned


def contact_create(
    *,
    site: Site | None = None,
    external_id: str = "",
    name: str = "",
    email: str = "",
    phone: str = "",
    language: str = "",
    attributes: dict | None = None,
) -> Contact:
    """A new contact (not verified: only the site's signature verifies, chat.identity). ActionRefused
    ("contact_exists") when the site already has a contact with this external id."""
    fields = _clean(
        dict(external_id=external_id, name=name, email=email, phone=phone, language=language, attributes=attributes)
    )
    try:
        with transaction.atomic():
            return Contact.objects.create(site=site, **fields)
    except IntegrityError:
        raise ActionRefused("contact_exists", "This site already has a contact with that external id.") from None


@transaction.atomic
def contact_update(*, contact_id: int, **changes) -> Contact:
    """Change some of a contact's name, email, phone, language, attributes (replaced whole) or external id."""
    unknown = set(changes) - {"external_id", "name", "email", "phone", "language", "attributes"}
    if unknown:
        raise ActionRefused("invalid_contact", f"Unknown contact fields: {', '.join(sorted(unknown))}.")
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    fields = _clean(changes)
    if "external_id" in fields and fields["external_id"] != contact.external_id:
        contact.verified = False  # a new id is only claimed until the site signs it
        fields["verified"] = False
    for key, value in fields.items():
        setattr(contact, key, value)
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError:
        raise ActionRefused("contact_exists", "This site already has a contact with that external id.") from None
    return contact


def contact_identify(*, site: Site, external_id: str, name: str = "", email: str = "") -> Contact:
    """The verified contact of a site's signed-in user (made on first sight); the name and email the site passes
    replace the stored ones. Call only after chat.identity checked the signature."""
    fields = _clean({"external_id": external_id, "name": name, "email": email})
    if not fields["external_id"]:
        raise ActionRefused("invalid_contact", "A verified identity needs a user id.")
    updates = {k: v for k, v in fields.items() if k != "external_id" and v}
    for _attempt in range(2):
        try:
            with transaction.atomic():
                contact, created = Contact.objects.select_for_update().get_or_create(
                    site=site, external_id=fields["external_id"], defaults={**updates, "verified": True}
                )
                if not created:
                    changed = {k: v for k, v in updates.items() if getattr(contact, k) != v}
                    if changed or not contact.verified:
                        for key, value in changed.items():
                            setattr(contact, key, value)
                        contact.verified = True
                        contact.save()
                return contact
        except IntegrityError:  # two first sightings at once: the other one made it
            continue
    return Contact.objects.get(site=site, external_id=fields["external_id"])


@transaction.atomic
def conversation_contact_link(*, conversation_id: uuid.UUID, contact_id: int | None) -> Conversation:
    """Point a conversation at a contact (None: unlink). Verification is the site's to give, so a link made this way
    never marks the conversation verified."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if contact_id is not None and not Contact.objects.filter(pk=contact_id).exists():
        raise ActionRefused("unknown_contact", "There is no such contact.")
    if conversation.contact_id != contact_id:
        # The site's signature verified the old contact, not this one: a verified customer's list (chat.identity)
        # must not gain a conversation someone else linked to them.
        conversation.identity_verified = False
    conversation.contact_id = contact_id
    conversation.save(update_fields=["contact", "identity_verified", "updated_at"])
    return conversation
