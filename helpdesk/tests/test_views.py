import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_admin_requires_login(client):
    response = client.get("/admin/chat/conversation/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_metrics_are_exported_to_loopback(client):
    client.get("/healthz")
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "django_http_requests_total_by_view_transport_method_total" in body


def test_metrics_are_refused_to_others_without_the_token(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403  # the token is required then
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200 and b"django_http_requests" in response.content


def test_staff_pages_share_one_frame_with_their_links_and_sign_out(admin_client):
    pages = {url: admin_client.get(url).content.decode() for url in ("/console/", "/playground/")}
    for url, page in pages.items():
        assert 'aria-label="Staff pages"' in page and 'href="/admin/">Admin</a>' in page
        assert f'href="{url}" aria-current="page"' in page  # the page shows where the agent is
        assert 'action="/accounts/logout/"' in page and "csrfmiddlewaretoken" in page
    assert admin_client.post("/accounts/logout/")["Location"] == "/accounts/login/"
    assert admin_client.get("/console/").status_code == 302  # signed out


def test_an_agent_without_staff_rights_sees_only_the_console_link(client, django_user_model):
    from django.contrib.auth.models import Permission

    agent = django_user_model.objects.create_user("agent9", password="pw-agent-123")
    agent.user_permissions.add(Permission.objects.get(codename="use_console"))
    client.login(username="agent9", password="pw-agent-123")
    page = client.get("/console/").content.decode()
    assert 'href="/console/"' in page and 'href="/playground/"' not in page and 'href="/admin/"' not in page
