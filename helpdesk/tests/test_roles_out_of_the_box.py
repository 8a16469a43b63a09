"""The roles work out of the box: a user put in the manager or admin group (in code or in the admin's user form)
becomes staff and signs in to the admin with no other step; a fresh manager reaches the console, the reports, the
knowledge gaps and the playground, a fresh agent the console and their own reports; the admin links to the staff
pages each user may open; and the demo's canned responses and fallback rules are seeded once."""

import importlib
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from helpdesk.management.commands import demo_seed
from helpdesk.models import CannedResponse
from helpdesk.roles import DEFAULT_ROLES
from inference import selectors as bot_selectors
from inference.fallback import rule_answer
from inference.models import FallbackRule

pytestmark = pytest.mark.django_db

PASSWORD = "pw-roles-123"


def fresh(username: str, role: str | None = None):
    """A new user as an operator makes one: no staff flag ticked, then put in the role's group."""
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=PASSWORD)
    return client


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_joining_a_staff_role_makes_the_user_staff(role):
    user = fresh("meg", role)
    assert user.is_staff  # the caller's object too
    user.refresh_from_db()
    assert user.is_staff
    assert signed_in(user).get("/admin/").status_code == 200


def test_joining_from_the_group_side_makes_the_users_staff():
    meg, max_ = fresh("meg"), fresh("max")
    Group.objects.get(name="manager").user_set.add(meg, max_)
    assert set(get_user_model().objects.filter(is_staff=True).values_list("username", flat=True)) == {"meg", "max"}


def test_an_agent_does_not_become_staff():
    agent = fresh("ann", "agent")
    agent.refresh_from_db()
    assert not agent.is_staff
    assert signed_in(agent).get("/console/").status_code == 200


def test_saving_a_manager_without_the_staff_flag_keeps_it():
    meg = fresh("meg", "manager")
    meg.is_staff = False
    meg.save()
    meg.refresh_from_db()
    assert meg.is_staff


def test_a_manager_made_in_the_admin_user_form_signs_in_to_the_admin():
    """The operator's path: the admin's user form, the manager group chosen, "staff" left unticked."""
    boss = fresh("boss", "admin")
    meg = fresh("meg")
    manager = Group.objects.get(name="manager")
    form = {
        "username": "meg",
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "groups": [manager.pk],
        "date_joined_0": "2025-01-01",
        "date_joined_1": "09:00:00",
        "initial-date_joined_0": "2025-01-01",
        "initial-date_joined_1": "09:00:00",
    }
    response = signed_in(boss).post(f"/admin/auth/user/{meg.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    meg.refresh_from_db()
    assert meg.is_staff and list(meg.groups.all()) == [manager]
    assert signed_in(meg).get("/admin/").status_code == 200


STAFF_PAGES = {"/console/": 200, "/reports/": 200, "/console/gaps/": 200, "/playground/": 200}
AGENT_PAGES = {"/console/": 200, "/reports/": 200, "/console/gaps/": 403, "/playground/": 403}


def test_a_fresh_manager_reaches_the_console_reports_gaps_and_playground():
    client = signed_in(fresh("meg", "manager"))
    assert {path: client.get(path).status_code for path in STAFF_PAGES} == STAFF_PAGES


def test_a_fresh_agent_reaches_the_console_and_their_reports_only():
    client = signed_in(fresh("ann", "agent"))
    assert {path: client.get(path).status_code for path in AGENT_PAGES} == AGENT_PAGES


def admin_links(client: Client) -> list[str]:
    page = client.get("/admin/").content.decode()
    nav = re.search(r'<nav id="helpdesk-links".*?</nav>', page, re.S)
    return re.findall(r">([^<]+)</a>", nav.group(0)) if nav else []


def test_the_admin_links_to_the_staff_pages_each_user_may_open():
    everything = ["Console", "Playground", "Reports", "Knowledge gaps", "Invite a teammate"]
    assert admin_links(signed_in(fresh("boss", "admin"))) == everything
    assert admin_links(signed_in(fresh("meg", "manager"))) == everything
    clerk = get_user_model().objects.create_user("clerk", password=PASSWORD, is_staff=True)
    assert admin_links(signed_in(clerk)) == []  # staff with no role: none of the pages would open
    # Each link leads where it says.
    page = signed_in(get_user_model().objects.get(username="meg")).get("/admin/").content.decode()
    for path in ("/console/", "/playground/", "/reports/", "/console/gaps/", "/invite/"):
        assert f'href="{path}"' in page
    # The admin's own pages still render with the override: its sign-in page and a changelist.
    assert "Django administration" in Client().get("/admin/login/").content.decode()
    assert signed_in(get_user_model().objects.get(username="boss")).get("/admin/auth/user/").status_code == 200


def test_the_roles_table_holds_what_migration_0011_grants():
    grants = importlib.import_module("helpdesk.migrations.0011_manager_invites_and_knowledge").GRANTS
    for role, codes in grants.items():
        assert set(codes) <= set(DEFAULT_ROLES[role])
    held = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="manager").permissions.all()}
    assert set(grants["manager"]) <= held


# --- The demo's canned responses and fallback rules ---------------------------------------------------------------


def test_demo_seed_writes_both_languages_once():
    call_command("demo_seed", "--if-empty", stdout=open("/dev/null", "w"))
    assert CannedResponse.objects.count() == len(demo_seed.CANNED_RESPONSES) == 8
    assert FallbackRule.objects.count() == len(demo_seed.FALLBACK_RULES)
    assert set(FallbackRule.objects.values_list("language", flat=True)) == {"en", "zh"}
    assert {"greet", "greet-zh", "order", "order-zh", "refund", "refund-zh", "bye", "bye-zh"} == set(
        CannedResponse.objects.values_list("shortcut", flat=True)
    )
    call_command("demo_seed", "--if-empty", stdout=open("/dev/null", "w"))
    call_command("demo_seed", stdout=open("/dev/null", "w"))  # without the flag: adds only what is missing
    assert CannedResponse.objects.count() == 8 and FallbackRule.objects.count() == len(demo_seed.FALLBACK_RULES)


def test_demo_seed_if_empty_leaves_an_operators_own_set_alone():
    FallbackRule.objects.create(name="ours", keywords="hello", answer="Hi!")
    call_command("demo_seed", "--if-empty", stdout=open("/dev/null", "w"))
    assert not CannedResponse.objects.exists() and FallbackRule.objects.count() == 1


def test_the_demo_rules_answer_when_the_engine_cannot():
    call_command("demo_seed", "--if-empty", stdout=open("/dev/null", "w"))
    rules = bot_selectors.fallback_rules()
    assert "400-820-6688" in rule_answer("我要转人工", rules, language="zh")
    assert "1-800-555-0142" in rule_answer("Can I talk to someone, please?", rules, language="en")
    assert "9 a.m. to 6 p.m. ET" in rule_answer("What are your opening hours?", rules, language="en")
    assert "/help/returns" in rule_answer("我想退货", rules, language="zh-hans")
    assert rule_answer("Is the oak table in stock?", rules, language="en") is None


def test_the_demo_texts_state_only_what_the_demo_help_center_says():
    """Every URL, phone number and email address in the seeded texts is in the demo knowledge base."""
    articles = "\n".join(path.read_text() for path in Path(settings.BASE_DIR, "knowledge", "demo").rglob("*.md"))
    texts = [body for _, _, body in demo_seed.CANNED_RESPONSES] + [rule[4] for rule in demo_seed.FALLBACK_RULES]
    facts = re.compile(r"https?://[^\s，。）]+[^\s，。）.]|[\w.]+@[\w.]+\w|\d[\d-]{6,}\d")
    found = [fact for text in texts for fact in facts.findall(text)]
    assert len(found) >= 10
    for fact in found:
        assert fact in articles, fact
