import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_admin_requires_login(client):
    response = client.get("/admin/chat/conversation/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_metrics_are_exported(client):
    client.get("/healthz")
    body = client.get("/metrics").content.decode()
    assert "django_http_requests_total_by_view_transport_method_total" in body
