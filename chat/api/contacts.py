"""Contacts for integrations (scope `contacts`): list, read, create and update the customers known beyond one
conversation, and link a conversation to one. Writes go through chat.services.contacts.

A contact made here is never verified: only the site's signature verifies one (chat.identity). Conversations are
linked only if the key may read them (chat.api.selectors.conversations_visible), as the read endpoints would.
"""

import datetime
import math
import re
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest
from ninja import Field, Path, Query, Router, Schema, Status
from pydantic import field_validator, model_validator

from chat import services
from chat.api import selectors
from chat.api.auth import ApiKeyAuth
from chat.api.errors import ApiError
from chat.api.pagination import PageIn, PageOut, paginate
from chat.api.read_schemas import SITE_KEY_PATTERN, ConversationOut
from chat.api.schemas import ErrorOut, RequestBody, whole_number
from chat.models import ApiKey, Contact
from chat.services.base import storable

contacts_auth = ApiKeyAuth(ApiKey.Scope.CONTACTS)
router = Router(auth=contacts_auth, tags=["contacts"])

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut}
ERRORS_404 = {**ERRORS, 404: ErrorOut}
ERRORS_WRITE = {**ERRORS_404, 409: ErrorOut, 413: ErrorOut}  # 413: a body over REQUEST_BODY_LIMIT_API
# No NUL (PostgreSQL text cannot hold it); an email as the services accept one (they check it again).
EXTERNAL_ID_PATTERN = r"^[^\x00]{0,128}$"
TEXT_PATTERN = r"^[^\x00]*$"
EMAIL_PATTERN = (
    r"^$|^[A-Za-z0-9_%+\-]+(\.[A-Za-z0-9_%+\-]+)*@([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"
)
LANGUAGE_PATTERN = r"^$|^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$"
IDENTIFYING = ("external_id", "name", "email", "phone")
# What makes a value identify someone: a character that survives storage (not a space, not a control character).
VISIBLE = r"[^\s\x00-\x1f\x7f]"
STATUS_BY_CODE = {"contact_exists": 409, "unknown_contact": 404}


class ContactOut(Schema):
    id: int
    site: str | None = Field(..., description="The key of the site whose user this is; null for none.")
    external_id: str | None = Field(..., description="The site's (or your) id for the customer.")
    name: str
    email: str
    phone: str
    language: str
    verified: bool = Field(..., description="The site signed this user's id (identity verification); never set here.")
    attributes: dict[str, Any]
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @staticmethod
    def resolve_site(obj: Contact) -> str | None:
        return obj.site.key if obj.site_id else None

    @staticmethod
    def resolve_external_id(obj: Contact) -> str | None:
        return obj.external_id or None


class ContactPage(PageOut):
    items: list[ContactOut]


class ContactFilters(Schema):
    email: str = Field(None, pattern=r"^[^\x00]{1,254}$", description="Exactly this email (any case).")
    external_id: str = Field(None, pattern=r"^[^\x00]{1,128}$", description="Exactly this external id.")
    site: str = Field(None, pattern=SITE_KEY_PATTERN, description="A site key.")
    verified: bool = Field(None, description="Only verified (or only unverified) contacts.")


class ContactFields(RequestBody):
    name: str | None = Field(None, max_length=120, pattern=TEXT_PATTERN)
    email: str | None = Field(None, max_length=254, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=40, pattern=TEXT_PATTERN)
    language: str | None = Field(None, max_length=16, pattern=LANGUAGE_PATTERN, description="e.g. en, zh-CN.")
    external_id: str | None = Field(
        None, pattern=EXTERNAL_ID_PATTERN, description="Your id for the customer (per site)."
    )
    attributes: dict[str, Any] | None = Field(
        None, description="Facts you keep about the customer (plan, orders), a JSON object under 8 KB; replaced whole."
    )

    @field_validator("attributes")
    @classmethod
    def attributes_storable(cls, value):
        # PostgreSQL's jsonb holds no NUL character, and UTF-8 no unpaired surrogate: both are cleaned as text is.
        return _storable_json(value)


class ContactIn(ContactFields):
    """A new contact: at least one of external_id, name, email and phone."""

    site: str | None = Field(None, pattern=SITE_KEY_PATTERN, description="The key of the site whose user this is.")

    model_config = {
        **RequestBody.model_config,
        "json_schema_extra": {
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string", "pattern": VISIBLE}}}
                for name in IDENTIFYING
            ]
        },
    }

    @model_validator(mode="after")
    def identifies_someone(self):
        if not any(re.search(VISIBLE, getattr(self, name) or "") for name in IDENTIFYING):
            raise ValueError(f"give at least one of {', '.join(IDENTIFYING)}, not empty")
        return self


class ContactPatch(ContactFields):
    """The fields to change; a field left out (or null) stays as it is, "" empties it."""


class ContactLinkIn(RequestBody):
    contact_id: whole_number(ge=1, le=2**63 - 1) | None = Field(
        ..., description="The contact; null unlinks the conversation."
    )


def _storable_json(value):
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(key): _storable_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):  # NaN or Infinity: Python reads them, JSON has none
        raise ValueError("numbers must be finite")
    return value


def _refused(exc: services.ActionRefused) -> ApiError:
    return ApiError(STATUS_BY_CODE.get(exc.code, 400), exc.code, str(exc))


def _contact_or_404(contact_id: int) -> Contact:
    contact = selectors.contact_find(contact_id=contact_id)
    if contact is None:
        raise ApiError(404, "not_found", "There is no contact with this id.")
    return contact


ContactId = Path(..., ge=1, le=2**63 - 1, description="The contact's id.")


@router.get("/contacts", response={200: ContactPage, **ERRORS}, summary="List contacts")
def contacts_list(request: HttpRequest, filters: Query[ContactFilters], paging: Query[PageIn]):
    """Contacts matching every filter given, newest first."""
    return paginate(request, selectors.contacts_filter(**filters.dict()), paging)


@router.post("/contacts", response={201: ContactOut, **ERRORS_WRITE}, summary="Create a contact")
def contact_create(request: HttpRequest, payload: ContactIn):
    """A new contact, not verified. 409 `contact_exists` if the site has one with this external id; 404
    `unknown_site` for a site key that is not one."""
    fields = payload.model_dump(exclude_none=True)
    site = None
    if "site" in fields:
        site = selectors.site_find(key=fields.pop("site"))
        if site is None:
            raise ApiError(404, "unknown_site", "There is no site with this key.")
    try:
        contact = services.contact_create(site=site, **fields)
    except services.ActionRefused as exc:
        raise _refused(exc) from exc
    return Status(201, selectors.contact_find(contact_id=contact.pk))


@router.get("/contacts/{contact_id}", response={200: ContactOut, **ERRORS_404}, summary="A contact")
def contact_detail(request: HttpRequest, contact_id: int = ContactId):
    """One contact, with the attributes kept about them."""
    return _contact_or_404(contact_id)


@router.patch("/contacts/{contact_id}", response={200: ContactOut, **ERRORS_WRITE}, summary="Update a contact")
def contact_update(request: HttpRequest, payload: ContactPatch, contact_id: int = ContactId):
    """Change some of a contact's fields. A new external id makes a verified contact unverified until the site
    signs it again."""
    _contact_or_404(contact_id)
    try:
        services.contact_update(contact_id=contact_id, **payload.model_dump(exclude_none=True))
    except services.ActionRefused as exc:
        raise _refused(exc) from exc
    except ObjectDoesNotExist:  # deleted meanwhile
        raise ApiError(404, "not_found", "There is no contact with this id.") from None
    return _contact_or_404(contact_id)


@router.post(
    "/conversations/{conversation_id}/contact",
    response={200: ConversationOut, **ERRORS_WRITE},
    summary="Link a conversation to a contact",
)
def conversation_contact_link(request: HttpRequest, conversation_id: str, payload: ContactLinkIn):
    """The conversation is this contact's from now on (its profile shows it); null unlinks it. The link never makes
    the conversation verified. 404 for a conversation the key may not read, or no such contact."""
    conversation = selectors.conversation_find(conversation_id=conversation_id, visible_to=request.auth)
    if conversation is None:
        raise ApiError(404, "not_found", "There is no conversation with this id.")
    try:
        services.conversation_contact_link(conversation_id=conversation.id, contact_id=payload.contact_id)
    except services.ActionRefused as exc:
        raise _refused(exc) from exc
    except ObjectDoesNotExist:
        raise ApiError(404, "not_found", "There is no conversation with this id.") from None
    return selectors.conversation_find(conversation_id=conversation_id, visible_to=request.auth)
