"""The widget's identity endpoint: a site's signed-in user, proven by the site's signature (chat.identity), gets
their verified contact and their earlier conversations, each with a token that opens it (chat.access)."""

from django.http import HttpRequest, JsonResponse

from chat import identity, services
from chat.http import BadRequest
from chat.models import Site
from chat.views import _body, widget_endpoint


@widget_endpoint
def identity_check(request: HttpRequest, site: Site) -> JsonResponse:
    """POST {user_id, user_hash, name, email}: the verified contact and its conversations, the newest first (at
    most chat.identity.CONVERSATIONS_LISTED); 403 identity_not_verified when the signature is absent or wrong."""
    verified = identity.identity_from_request(site, _body(request))
    if verified is None:
        raise BadRequest(403, "identity_not_verified", "This identity is not signed with the site's identity secret.")
    try:
        contact = services.identity_contact(site=site, identity=verified)
    except services.ActionRefused as exc:
        raise BadRequest(400, exc.code, str(exc)) from None
    conversations = identity.contact_conversations(contact)
    return JsonResponse(
        {
            "verified": True,
            "contact": identity.contact_to_widget_dict(contact),
            "conversations": [identity.conversation_summary(c) for c in conversations],
        }
    )
