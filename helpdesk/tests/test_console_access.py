"""Only staff with the console permission get the console page or its socket."""

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from helpdesk.asgi import application
from helpdesk.models import AgentPresence

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agent():
    user = get_user_model().objects.create_user("agent1", password="pw-agent-123")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    return user


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/console/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_signed_in_user_without_the_permission_is_refused(client):
    get_user_model().objects.create_user("customer1", password="pw-cust-123")
    client.login(username="customer1", password="pw-cust-123")
    assert client.get("/console/").status_code == 403


def test_an_agent_gets_the_console(client, agent):
    client.login(username="agent1", password="pw-agent-123")
    response = client.get("/console/")
    assert response.status_code == 200 and b"console.js" in response.content


async def test_the_console_socket_refuses_anonymous_users():
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await communicator.connect()
    assert not connected


async def test_the_console_socket_refuses_a_customer_session(client):
    from channels.db import database_sync_to_async

    await database_sync_to_async(get_user_model().objects.create_user)("customer2", password="pw-cust-123")
    await database_sync_to_async(client.login)(username="customer2", password="pw-cust-123")
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application,
        "/ws/console/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_the_console_socket_accepts_an_agent_and_sends_the_queue(client, agent):
    from channels.db import database_sync_to_async

    await database_sync_to_async(client.login)(username="agent1", password="pw-agent-123")
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application,
        "/ws/console/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from() == {"type": "presence", "status": "online", "capacity": 3}
    assert (await communicator.receive_json_from())["type"] == "queue"
    await communicator.disconnect()
    presence = await database_sync_to_async(AgentPresence.objects.get)(user=agent)
    assert presence.status == "offline" and presence.connections == 0
