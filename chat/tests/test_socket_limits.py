"""The customer socket's limits: frames per type, sockets per address, the Host, and origins that tell nothing about
which conversations exist."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat import services
from chat.consumers import CLOSE_ACCESS_DENIED
from chat.frame_limits import CLOSE_AFTER_REFUSALS, CLOSE_POLICY_VIOLATION, CUSTOMER_FRAME_LIMITS
from chat.metrics import RATE_LIMITED
from chat.models import Message, Site
from helpdesk.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ungrounded")]

OWN = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
UNKNOWN_ID = "8d8a4fd5-6a89-4e5e-a1bb-2a7b1c2b7d10"


async def socket(conversation_id, headers=OWN, client=("203.0.113.7", 50000)):
    communicator = WebsocketCommunicator(application, f"/ws/chat/{conversation_id}/", headers=headers)
    communicator.scope["client"] = client  # read when the application starts, on the first send
    connected, _ = await communicator.connect()
    return communicator, connected


async def said_hello(conversation_id, secret, headers=OWN):
    communicator, connected = await socket(conversation_id, headers)
    assert connected
    await communicator.send_json_to({"type": "hello", "secret": secret})
    assert (await communicator.receive_json_from())["type"] == "ready"
    while not await communicator.receive_nothing(0.1):
        await communicator.receive_json_from()
    return communicator


async def frames_until(communicator, frame_type: str, timeout: float = 5) -> list[dict]:
    frames = []
    while True:
        frames.append(await communicator.receive_json_from(timeout))
        if frames[-1]["type"] == frame_type:
            return frames


@pytest.fixture
def conversation():
    return services.conversation_start(language="en")


def refusals(limit: str) -> float:
    return RATE_LIMITED.labels(channel="socket", limit=limit)._value.get()


async def test_contact_frames_past_their_limit_are_refused_and_write_nothing(conversation):
    conv, secret = conversation
    communicator = await said_hello(conv.id, secret)
    allowed = CUSTOMER_FRAME_LIMITS["contact"].count
    before = refusals("contact")
    for n in range(allowed):
        await communicator.send_json_to({"type": "contact", "name": "Ann", "email": f"ann{n}@example.com"})
        assert (await frames_until(communicator, "contact_saved"))[-1]["type"] == "contact_saved"
    await communicator.send_json_to({"type": "contact", "name": "Ann", "email": "flood@example.com"})
    refused = (await frames_until(communicator, "error"))[-1]
    assert refused["code"] == "rate_limited" and refused["for"] == "contact"
    assert 1 <= refused["retry_after"] <= CUSTOMER_FRAME_LIMITS["contact"].per_s
    assert refusals("contact") == before + 1
    await database_sync_to_async(conv.refresh_from_db)()
    assert conv.customer_email == f"ann{allowed - 1}@example.com"
    system = await database_sync_to_async(Message.objects.filter(conversation=conv, role="system").count)()
    assert system == allowed
    await communicator.send_json_to({"type": "ping"})
    assert (await frames_until(communicator, "pong"))[-1] == {"type": "pong"}  # other types keep their own budget
    await communicator.disconnect()


async def test_typing_past_its_limit_is_refused_then_sustained_abuse_closes_1008(conversation):
    conv, secret = conversation
    communicator = await said_hello(conv.id, secret)
    allowed = CUSTOMER_FRAME_LIMITS["typing"].count
    for _ in range(allowed):
        await communicator.send_json_to({"type": "typing", "on": True})
    assert await communicator.receive_nothing(0.3)  # typing is relayed to the staff, not echoed
    codes = []
    for _ in range(CLOSE_AFTER_REFUSALS):
        await communicator.send_json_to({"type": "typing", "on": True})
        frame = await communicator.receive_json_from()
        codes.append((frame["code"], frame["for"]))
    assert codes == [("rate_limited", "typing")] * CLOSE_AFTER_REFUSALS
    assert (await communicator.receive_output())["code"] == CLOSE_POLICY_VIOLATION


async def test_unknown_and_malformed_frames_share_a_limit_too(conversation):
    conv, secret = conversation
    communicator = await said_hello(conv.id, secret)
    codes = []
    for n in range(CUSTOMER_FRAME_LIMITS["*"].count + 1):
        await communicator.send_to(text_data="{not json" if n % 2 else '{"type": "launch"}')
        codes.append((await communicator.receive_json_from())["code"])
    assert codes[-1] == "rate_limited" and "rate_limited" not in codes[:-1]
    await communicator.disconnect()


async def test_one_address_holds_at_most_the_configured_number_of_sockets(conversation, settings):
    settings.CHAT_MAX_SOCKETS_PER_ADDRESS = 3
    conv, _secret = conversation
    held = []
    for _ in range(3):
        communicator, connected = await socket(conv.id)
        assert connected
        held.append(communicator)
    _refused, connected = await socket(conv.id)
    assert not connected
    _other, connected = await socket(conv.id, client=("198.51.100.9", 40000))
    assert connected  # another address has its own count
    await held.pop().disconnect()
    again, connected = await socket(conv.id)
    assert connected  # a closed socket frees its place
    for communicator in [*held, again, _other]:
        await communicator.disconnect()


@pytest.mark.parametrize(
    "headers",
    [
        [(b"origin", b"http://evil.example"), (b"host", b"evil.example")],  # a forged pair: Host not allowed
        [(b"host", b"evil.example")],
        [(b"origin", b"http://127.0.0.1:8000")],  # no Host at all
    ],
)
async def test_a_socket_whose_host_is_not_allowed_is_refused(conversation, headers):
    conv, _secret = conversation
    _communicator, connected = await socket(conv.id, headers)
    assert not connected


async def test_the_helpdesks_own_page_counts_only_under_its_own_scheme_and_port(conversation):
    conv, _secret = conversation
    for origin, expected in [
        (b"http://127.0.0.1:8000", True),
        (b"https://127.0.0.1:8000", False),  # the helpdesk is served over plain http here
        (b"http://127.0.0.1:9000", False),
        (b"http://127.0.0.1", False),
    ]:
        communicator, connected = await socket(conv.id, [(b"origin", origin), (b"host", b"127.0.0.1:8000")])
        assert connected is expected, origin
        if connected:
            await communicator.disconnect()


@pytest.fixture
def two_sites():
    shop = Site.objects.create(name="Shop", allowed_origins="https://shop.example.com")
    other = Site.objects.create(name="Other", allowed_origins="https://other.example.com")
    conversation, secret = services.conversation_start(site=shop, language="en")
    return shop, other, conversation, secret


def origin_headers(origin: bytes) -> list:
    return [(b"origin", origin), (b"host", b"127.0.0.1:8000")]


async def test_the_handshake_answers_alike_for_known_and_unknown_conversations(two_sites):
    _shop, _other, conv, _secret = two_sites
    for origin, expected in [
        (b"https://evil.example", False),  # no site allows it: refused for every id
        (b"https://other.example.com", True),  # some site allows it: accepted for every id, judged at hello
        (b"https://shop.example.com", True),
    ]:
        answers = []
        for conversation_id in (conv.id, UNKNOWN_ID):
            communicator, connected = await socket(conversation_id, origin_headers(origin))
            answers.append(connected)
            if connected:
                await communicator.disconnect()
        assert answers == [expected, expected], origin


async def hello_answer(conversation_id, secret, origin: bytes) -> tuple[dict, dict]:
    communicator, connected = await socket(conversation_id, origin_headers(origin))
    assert connected
    await communicator.send_json_to({"type": "hello", "secret": secret})
    return await communicator.receive_json_from(), await communicator.receive_output()


async def test_another_sites_page_is_refused_at_hello_exactly_like_a_wrong_secret(two_sites):
    _shop, _other, conv, secret = two_sites
    wrong_site = await hello_answer(conv.id, secret, b"https://other.example.com")
    wrong_secret = await hello_answer(conv.id, "guess", b"https://shop.example.com")
    unknown = await hello_answer(UNKNOWN_ID, secret, b"https://other.example.com")
    assert wrong_site == wrong_secret == unknown
    assert wrong_site[0]["code"] == "access_denied" and wrong_site[1]["code"] == CLOSE_ACCESS_DENIED
    communicator, _connected = await socket(conv.id, origin_headers(b"https://shop.example.com"))
    await communicator.send_json_to({"type": "hello", "secret": secret})
    assert (await communicator.receive_json_from())["type"] == "ready"
    await communicator.disconnect()
