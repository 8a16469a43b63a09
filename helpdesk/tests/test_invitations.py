"""Inviting teammates (helpdesk.invitations): the link is emailed and shown once, only its SHA-256 is stored, it
works once and until it expires or is revoked, and accepting it makes a staff account in the role, signed in and
sent where the role works. Managers invite agents and managers; only admins invite admins."""

import datetime
import hashlib
import re
import socket

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.utils import timezone

from helpdesk import invitations
from helpdesk.models import Invitation

pytestmark = pytest.mark.django_db

PASSWORD = "pw-invite-123"
NEW_PASSWORD = "violet-harbour-42"


def member(username: str, role: str):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    return user


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    assert client.login(username=user.get_username(), password=PASSWORD)
    return client


@pytest.fixture
def boss():
    return member("boss", "admin")


@pytest.fixture
def meg():
    return member("meg", "manager")


def invite(client: Client, email: str, role: str):
    return client.post("/invite/", {"email": email, "role": role})


def shown_link(client: Client) -> str:
    """The link the invitation page shows (once) after an invitation was made."""
    page = client.get("/invite/").content.decode()
    found = re.search(r'id="invite-link" readonly value="([^"]+)"', page)
    assert found, "no invitation link on the page"
    return found.group(1)


def accept(client: Client, path: str, username: str = "nina", password: str = NEW_PASSWORD, name: str = "Nina Berg"):
    return client.post(path, {"username": username, "name": name, "password1": password, "password2": password})


def path_of(link: str) -> str:
    return link.removeprefix("http://testserver")


def test_the_token_is_stored_only_as_its_sha256(boss):
    invitation, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    stored = Invitation.objects.filter(pk=invitation.pk).values().get()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(stored.values())
    assert len(token) >= 40  # 32 random bytes, URL-safe


def test_an_invitation_is_emailed_and_its_link_shown_once_to_copy(boss):
    client = signed_in(boss)
    response = invite(client, "nina@example.com", "manager")
    assert response.status_code == 302 and response["Location"] == "/invite/"

    page = client.get("/invite/").content.decode()
    link = re.search(r'id="invite-link" readonly value="([^"]+)"', page).group(1)
    assert re.fullmatch(r"http://testserver/invite/[A-Za-z0-9_-]{40,}/", link)
    assert 'id="invite-copy"' in page and "Invitation emailed to nina@example.com as manager." in page
    assert 'data-email="nina@example.com"' in page  # listed as pending
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["nina@example.com"] and link in email.body and "as manager" in email.body
    # Shown once: the page does not show it again, and the database cannot give it back.
    assert "invite-link" not in client.get("/invite/").content.decode()
    assert Invitation.objects.get().token_hash == hashlib.sha256(link.split("/")[-2].encode()).hexdigest()


def test_the_link_is_shown_when_the_mail_server_refuses(boss, settings):
    """A mail server that is down: the invitation stands, the page says so and shows the link to pass on."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    client = signed_in(boss)
    assert invite(client, "nina@example.com", "agent").status_code == 302
    page = client.get("/invite/").content.decode()
    assert "could not be sent: pass the link on" in page and 'id="invite-link"' in page
    assert Invitation.objects.filter(email="nina@example.com").exists()


@pytest.mark.parametrize(("role", "landing"), [("agent", "/console/"), ("manager", "/reports/"), ("admin", "/admin/")])
def test_accepting_makes_a_signed_in_staff_account_in_the_role(boss, role, landing):
    signed_in_boss = signed_in(boss)
    invite(signed_in_boss, "nina@example.com", role)
    path = path_of(shown_link(signed_in_boss))

    newcomer = Client()
    form = newcomer.get(path)
    assert form.status_code == 200
    assert 'value="nina"' in form.content.decode()  # the username suggested from the address
    response = accept(newcomer, path)
    assert response.status_code == 302 and response["Location"] == landing

    user = get_user_model().objects.get(username="nina")
    assert user.is_staff and user.email == "nina@example.com"
    assert (user.first_name, user.last_name) == ("Nina", "Berg")
    assert list(user.groups.values_list("name", flat=True)) == [role]
    assert user.check_password(NEW_PASSWORD)
    invitation = Invitation.objects.get()
    assert invitation.accepted_user == user and invitation.accepted_at is not None
    assert newcomer.get(landing).status_code == 200  # signed in, and the role opens its page


def test_a_link_works_once(boss):
    _, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    assert accept(Client(), f"/invite/{token}/").status_code == 302

    again = Client().get(f"/invite/{token}/")
    assert again.status_code == 410 and "used already" in again.content.decode()
    assert accept(Client(), f"/invite/{token}/", username="nina2").status_code == 410
    assert not get_user_model().objects.filter(username="nina2").exists()
    with pytest.raises(invitations.InvitationRefused) as refused:
        invitations.invitation_accept(
            token=token, teammate=invitations.NewTeammate(username="nina3", name="N", password=NEW_PASSWORD)
        )
    assert refused.value.code == "accepted"


def test_an_invitation_expires_after_the_configured_time(boss, settings):
    settings.INVITATION_TTL = 3600
    before = timezone.now()
    invitation, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    assert before + datetime.timedelta(hours=1) <= invitation.expires_at <= timezone.now() + datetime.timedelta(hours=1)
    assert Client().get(f"/invite/{token}/").status_code == 200

    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    page = Client().get(f"/invite/{token}/")
    assert page.status_code == 410 and "It has expired." in page.content.decode()
    assert accept(Client(), f"/invite/{token}/").status_code == 410
    assert not get_user_model().objects.filter(username="nina").exists()


def test_a_revoked_or_unknown_link_gives_a_clear_page(boss):
    invitation, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    assert invitations.invitations_revoke(invitation_ids=[invitation.pk]) == 1
    page = Client().get(f"/invite/{token}/")
    assert page.status_code == 410 and "withdrawn" in page.content.decode()

    unknown = Client().get("/invite/not-a-real-token/")
    assert unknown.status_code == 404 and "not valid" in unknown.content.decode()


def test_invitations_are_revoked_in_the_admin(boss):
    invitation, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    client = signed_in(boss)
    assert client.get("/admin/helpdesk/invitation/").status_code == 200
    assert client.get("/admin/helpdesk/invitation/add/").status_code == 403  # made on the invitation page only
    response = client.post(
        "/admin/helpdesk/invitation/", {"action": "revoke_selected", "_selected_action": [invitation.pk]}
    )
    assert response.status_code == 302
    assert Invitation.objects.get().revoked_at is not None
    assert Client().get(f"/invite/{token}/").status_code == 410


def test_inviting_the_same_address_again_replaces_the_earlier_link(boss):
    _, first = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    _, second = invitations.invitation_create(email="Nina@Example.com", role="manager", invited_by=boss)
    assert Client().get(f"/invite/{first}/").status_code == 410
    assert Client().get(f"/invite/{second}/").status_code == 200


def test_a_manager_may_invite_agents_and_managers_but_not_admins(meg):
    client = signed_in(meg)
    page = client.get("/invite/").content.decode()
    assert '<option value="agent"' in page and '<option value="manager"' in page
    assert '<option value="admin"' not in page

    refused = invite(client, "eve@example.com", "admin")
    assert refused.status_code == 400
    assert not Invitation.objects.exists() and mail.outbox == []
    with pytest.raises(invitations.InvitationRefused) as caught:
        invitations.invitation_create(email="eve@example.com", role="admin", invited_by=meg)
    assert caught.value.code == "role_refused"

    assert invite(client, "ann@example.com", "agent").status_code == 302
    assert Invitation.objects.get().role == "agent"


def test_an_admin_may_invite_an_admin(boss):
    assert invite(signed_in(boss), "eve@example.com", "admin").status_code == 302
    assert Invitation.objects.get().role == "admin"


def test_only_those_who_may_invite_open_the_invitation_page():
    agent = member("ann", "agent")
    assert signed_in(agent).get("/invite/").status_code == 403
    assert invite(signed_in(agent), "eve@example.com", "agent").status_code == 403
    anonymous = Client().get("/invite/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert not Invitation.objects.exists()


def test_an_address_with_an_account_is_not_invited(boss):
    get_user_model().objects.create_user("nina", email="nina@example.com")
    response = invite(signed_in(boss), "NINA@example.com", "agent")
    assert response.status_code == 400 and "already has an account" in response.content.decode()
    assert not Invitation.objects.exists()


def test_the_password_validators_apply_to_the_new_password(boss):
    _, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    for weak in ("short1", "password123", "12345678901", "nina@example.com"):
        response = accept(Client(), f"/invite/{token}/", password=weak)
        assert response.status_code == 400, weak
    assert not get_user_model().objects.filter(username="nina").exists()
    mismatch = Client().post(
        f"/invite/{token}/",
        {"username": "nina", "name": "Nina", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
    )
    assert mismatch.status_code == 400
    assert accept(Client(), f"/invite/{token}/").status_code == 302  # the link still works after the refusals


def test_a_taken_username_is_refused_and_the_link_stays_usable(boss):
    _, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    response = accept(Client(), f"/invite/{token}/", username="BOSS")
    assert response.status_code == 400 and "already exists" in response.content.decode()
    with pytest.raises(invitations.InvitationRefused) as caught:  # the same, when two newcomers race for a name
        invitations.invitation_accept(
            token=token, teammate=invitations.NewTeammate(username="boss", name="N", password=NEW_PASSWORD)
        )
    assert caught.value.code == "username_taken"
    assert Invitation.objects.get().accepted_at is None
    assert accept(Client(), f"/invite/{token}/", username="nina.b").status_code == 302


def test_the_invitation_pages_keep_csrf_protection(boss):
    _, token = invitations.invitation_create(email="nina@example.com", role="agent", invited_by=boss)
    strict = Client(enforce_csrf_checks=True)
    assert accept(strict, f"/invite/{token}/").status_code == 403
    assert invite(signed_in(boss, enforce_csrf_checks=True), "eve@example.com", "agent").status_code == 403
    assert not get_user_model().objects.filter(username="nina").exists()
    assert Invitation.objects.count() == 1
