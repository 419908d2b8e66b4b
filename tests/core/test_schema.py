import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_served_and_versioned():
    response = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/me" in schema["paths"]
    assert all(
        path.startswith(("/api/v1/", "/api/streaming/", "/health")) for path in schema["paths"]
    )


def test_interactive_docs_use_packaged_assets_not_a_cdn():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page
