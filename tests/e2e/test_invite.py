"""Inviting a manager, in real Chromium against daphne: an admin follows the admin's "Invite a teammate" link, invites
a manager, copies the link; the new manager opens it, chooses a password, lands signed in on the reports and opens
the console, with no other step. The screenshots are kept in artifacts/invite.png and invite-accept.png."""

import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from helpdesk.models import Invitation
from helpdesk.roles import roles_sync
from tests import stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "boss-pass-123"
NEW_PASSWORD = "violet-harbour-42"


@pytest.fixture(scope="module")
def invite_server(production_env, logs_dir):
    """daphne on the test database; inviting needs no worker and no model. Emails go to its output (consolemail)."""
    web, base_url = stack.start_web(
        {**production_env, "GENERATION_BACKEND": "inprocess"}, logs_dir, name="daphne-invite"
    )
    yield base_url
    web.stop()


@database_sync_to_async
def seed() -> None:
    roles_sync(group_model=Group, permission_model=Permission)
    boss = get_user_model().objects.create_user("boss", password=PASSWORD)
    boss.groups.add(Group.objects.get(name="admin"))  # the staff flag follows the role


@database_sync_to_async
def newcomer() -> dict:
    user = get_user_model().objects.get(username="nina")
    invitation = Invitation.objects.get()
    return {
        "staff": user.is_staff,
        "groups": list(user.groups.values_list("name", flat=True)),
        "accepted_user": invitation.accepted_user_id == user.pk,
    }


async def test_an_invited_manager_signs_up_and_reaches_the_reports_and_the_console(
    browser, invite_server, artifacts_dir
):
    await seed()
    base = invite_server

    # The admin signs in, and the admin's header links to the invitation page.
    admin_context = await browser.new_context(viewport={"width": 1280, "height": 860})
    await admin_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await admin_context.new_page()
    await page.goto(f"{base}/accounts/login/?next=/admin/")
    await page.fill("#id_username", "boss")
    await page.fill("#id_password", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url == f"{base}/admin/"
    links = page.locator("#helpdesk-links a")
    assert await links.all_text_contents() == [
        "Console",
        "Playground",
        "Reports",
        "Knowledge gaps",
        "Invite a teammate",
    ]
    async with page.expect_navigation():
        await page.click("#helpdesk-links a:text('Invite a teammate')")
    assert page.url == f"{base}/invite/"

    # The invitation: a manager, by email; the link is shown once, with a button that copies it.
    await page.fill("#id_email", "nina@example.com")
    await page.select_option("#id_role", "manager")
    async with page.expect_navigation():
        await page.click("#invite-form button[type=submit]")
    link = await page.input_value("#invite-link")
    assert re.fullmatch(rf"{re.escape(base)}/invite/[A-Za-z0-9_-]{{40,}}/", link)
    assert "Invitation emailed to nina@example.com as manager." in await page.text_content("#invite-result")
    await page.click("#invite-copy")
    await page.locator("#invite-copy:text('Copied')").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == link
    assert await page.locator("#invite-pending tr[data-email='nina@example.com']").count() == 1
    await page.screenshot(path=str(artifacts_dir / "invite.png"), full_page=True)

    # The new manager, in a browser of their own, opens the link and chooses a password.
    manager_context = await browser.new_context(viewport={"width": 1280, "height": 860})
    invitee = await manager_context.new_page()
    response = await invitee.goto(link)
    assert response.status == 200
    assert await invitee.input_value("#id_username") == "nina"
    await invitee.fill("#id_name", "Nina Berg")
    await invitee.fill("#id_password1", NEW_PASSWORD)
    await invitee.fill("#id_password2", NEW_PASSWORD)
    await invitee.screenshot(path=str(artifacts_dir / "invite-accept.png"), full_page=True)
    async with invitee.expect_navigation():
        await invitee.click("#invitation-accept button[type=submit]")

    # Signed in on the reports, and the console opens: no staff box, no group to tick, no second sign-in.
    assert invitee.url == f"{base}/reports/"
    assert await invitee.text_content(".top__user") == "nina"
    console = await invitee.goto(f"{base}/console/")
    assert console.status == 200 and invitee.url == f"{base}/console/"
    assert await invitee.locator("nav.top__nav a[href='/reports/']").count() == 1
    assert (await invitee.goto(f"{base}/console/gaps/")).status == 200
    assert (await invitee.goto(f"{base}/admin/")).status == 200 and invitee.url == f"{base}/admin/"
    assert await newcomer() == {"staff": True, "groups": ["manager"], "accepted_user": True}

    # The link worked once.
    used = await (await manager_context.new_page()).goto(link)
    assert used.status == 410
    await admin_context.close()
    await manager_context.close()
