"""Webhooks post to public addresses only (SSRF): refused when saved and when sent, connected to the checked address,
and the admin shows a status and a generic outcome, never the receiver's answer."""

import socket

import pytest

from chat import dispatch
from helpdesk import webhook_destinations
from helpdesk.models import Webhook, WebhookDelivery
from helpdesk.webhook_destinations import address_public
from helpdesk.webhooks import webhook_event_emit
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver():
    made = WebhookReceiver(then=200)
    yield made
    made.close()


@pytest.fixture
def deliveries_now(in_process_generation):
    settings = in_process_generation
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_TIMEOUT = 2.0
    return settings


def deliver(webhook: Webhook) -> WebhookDelivery:
    (delivery,) = webhook_event_emit(event=Webhook.Event.RATED, data={"rating": {"score": 5, "comment": ""}})
    assert dispatch.in_process_wait(timeout=20)
    delivery.refresh_from_db()
    return delivery


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_local_private_and_special_addresses_are_not_public(address):
    assert not address_public(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_internet_addresses_are_public(address):
    assert address_public(address)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "https://192.168.0.10/hook",
        "http://[::1]:9000/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_the_admin_refuses_to_save_a_webhook_to_a_non_public_address(admin_client, url):
    response = admin_client.post(
        "/admin/helpdesk/webhook/add/", {"name": "Internal", "url": url, "events": [], "is_active": "on"}
    )
    assert response.status_code == 200  # the form again, with the reason
    assert "private or local network address" in response.content.decode()
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_intranet_receivers_can_be_allowed_by_the_setting(admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    response = admin_client.post(
        "/admin/helpdesk/webhook/add/",
        {"name": "Intranet", "url": "http://10.0.0.5/hook", "events": [], "is_active": "on"},
    )
    assert response.status_code == 302
    assert Webhook.objects.get().url == "http://10.0.0.5/hook"


@pytest.mark.django_db(transaction=True)
def test_a_delivery_to_a_loopback_receiver_is_refused_and_nothing_is_sent(deliveries_now, receiver):
    # Saved before the rule, or a name that resolved elsewhere then: the delivery checks again.
    webhook = Webhook.objects.create(name="CRM", url=receiver.url)
    delivery = deliver(webhook)
    assert receiver.received == []
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.last_status_code is None
    assert "private or local network address" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_a_name_resolving_to_a_public_and_a_private_address_is_refused(deliveries_now, receiver, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "hooks.example.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = receiver.url.split(":")[2].split("/")[0]
    delivery = deliver(Webhook.objects.create(name="CRM", url=f"http://hooks.example.test:{port}/hook"))
    assert receiver.received == [] and "127.0.0.1" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_the_connection_goes_to_the_checked_address_not_to_a_second_dns_answer(deliveries_now, receiver, monkeypatch):
    """DNS rebinding: the name resolves to an allowed address when checked, then to loopback. The request must go
    to the address that was checked (here nobody listens there), never to loopback."""
    real = socket.getaddrinfo
    answers = iter([["127.0.0.2"]])  # the first answer; every later one is loopback

    def resolve(host, port, *args, **kwargs):
        if host == "rebind.example.test":
            address = next(answers, ["127.0.0.1"])[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    # Only 127.0.0.2 counts as public here, so the check passes once and would refuse loopback.
    monkeypatch.setattr(webhook_destinations, "address_public", lambda address: address == "127.0.0.2")
    port = receiver.url.split(":")[2].split("/")[0]
    delivery = deliver(Webhook.objects.create(name="CRM", url=f"http://rebind.example.test:{port}/hook"))
    assert receiver.received == []
    assert delivery.last_error == "Could not connect to the receiver."


@pytest.mark.django_db(transaction=True)
def test_the_request_carries_the_webhooks_host_name_while_connecting_to_its_address(
    deliveries_now, receiver, monkeypatch
):
    deliveries_now.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "intranet.example.test":  # a name no real resolver knows: only the check's lookup can find it
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(webhook_destinations.socket, "getaddrinfo", resolve)
    port = receiver.url.split(":")[2].split("/")[0]
    delivery = deliver(Webhook.objects.create(name="CRM", url=f"http://intranet.example.test:{port}/hook"))
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED, delivery.last_error
    assert receiver.received[0].headers["Host"] == f"intranet.example.test:{port}"


@pytest.mark.django_db(transaction=True)
def test_the_admin_shows_the_status_code_and_a_generic_outcome_not_the_receivers_answer(deliveries_now, admin_client):
    deliveries_now.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    leaky = WebhookReceiver(then=500, body=b"Traceback: password=hunter2 at db.internal:5432")
    try:
        delivery = deliver(Webhook.objects.create(name="CRM", url=leaky.url))
    finally:
        leaky.close()
    assert delivery.last_status_code == 500
    assert delivery.last_error == "HTTP 500 Internal Server Error"
    page = admin_client.get(f"/admin/helpdesk/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert "500" in page and "hunter2" not in page and "db.internal" not in page
