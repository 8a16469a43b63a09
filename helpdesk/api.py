"""The REST API, assembled: chat's endpoints (the bot, conversations, keys) and the staff side's (tickets).

Served under /api/v1/ (the helpdesk's own API) and /v1/ (OpenAI-compatible), described at /api/openapi.json
with interactive docs at /api/docs (Swagger UI from the django-ninja package: nothing comes from a CDN).
"""

from django.conf import settings
from ninja import NinjaAPI

from chat.api.chat import router as chat_router
from chat.api.contacts import router as contacts_router
from chat.api.errors import exception_handlers_install
from chat.api.keys_router import router as keys_router
from chat.api.openai import router as openai_router
from chat.api.read import router as read_router
from helpdesk.api_agent import router as agent_router
from helpdesk.api_agent import shared_paths_install
from helpdesk.api_export import router as export_router
from helpdesk.api_reports import router as reports_router
from helpdesk.api_tickets import router as tickets_router

api = NinjaAPI(
    title=f"{settings.COMPANY_NAME} helpdesk API",
    version="1",
    description=(
        "Talk to the support bot, read conversations, messages, tickets and ratings. Authenticate with an API key "
        "created by staff in the admin: `Authorization: Bearer hd_...`. A `read` key reads the widget's "
        "conversations (with their tickets and ratings) and the API sessions made with it; other keys' sessions "
        "answer 404. An `admin` key reads everything. An `agent` key acts as the staff member chosen on it "
        '("acts as"), with that member\'s permissions, checked on every request: it replies, writes notes, claims, '
        "assigns, transfers, hands back, resolves and reopens conversations and edits tickets, as the console does "
        "(the same events and webhooks follow; 409 with the reason when the conversation's state does not allow it). "
        "A `contacts` key creates, reads and updates contacts and links conversations to them. Errors are "
        '`{"error": {"code": "...", "message": "..."}}`; 429 answers carry `Retry-After`.'
    ),
    docs_url="api/docs",
    openapi_url="api/openapi.json",
    urls_namespace="api",
)
exception_handlers_install(api)
shared_paths_install(read_router=read_router, tickets_router=tickets_router)
api.add_router("api/v1/", chat_router)
api.add_router("v1/", openai_router)
api.add_router("api/v1/", read_router)
api.add_router("api/v1/", keys_router)
api.add_router("api/v1/", tickets_router)
api.add_router("api/v1/", export_router)
api.add_router("api/v1/", reports_router)
api.add_router("api/v1/", agent_router)
api.add_router("api/v1/", contacts_router)
