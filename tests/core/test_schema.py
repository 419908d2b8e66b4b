import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_served_and_versioned():
    response = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/me" in schema["paths"]
    assert all(
        path.startswith(("/api/v1/", "/api/streaming/", "/v1/", "/health"))
        for path in schema["paths"]
    )


def test_the_openai_and_sse_apis_are_documented_with_their_bodies():
    schema = Client().get("/api/schema/", headers={"Accept": "application/json"}).json()
    validate_schema(schema)
    paths, components = schema["paths"], schema["components"]["schemas"]
    for path, request in (
        ("/v1/chat/completions", "ChatCompletionRequest"),
        ("/v1/completions", "CompletionRequest"),
        ("/v1/embeddings", "EmbeddingRequest"),
        ("/v1/responses", "ResponseRequest"),
        ("/api/streaming/chat", "StreamingChatRequest"),
        ("/api/streaming/generate", "StreamingGenerateRequest"),
    ):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request}"}
        assert components[request]["required"]
    assert "get" in paths["/v1/models/{id}"] and "delete" in paths["/v1/responses/{id}"]
    assert (
        "text/event-stream" in paths["/api/streaming/chat"]["post"]["responses"]["200"]["content"]
    )
    for path in (
        "/api/streaming/active",
        "/api/streaming/statistics",
        "/api/streaming/{stream_id}",
    ):
        assert path in paths


def test_interactive_docs_use_packaged_assets_not_a_cdn():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page


@pytest.mark.parametrize("query", ["", "?format=json", "?format=bogus"])
def test_schema_errors_answer_in_the_json_error_shape(query):
    from apps.accounts.services import api_key_create, api_key_revoke
    from tests.support.factories import bearer, user_create

    api_key, raw = api_key_create(user=user_create(), name="old")
    api_key_revoke(api_key=api_key)

    anonymous = Client().get("/api/schema/")
    revoked = Client().get(f"/api/schema/{query}", headers=bearer(raw))

    assert anonymous.status_code == 200, "the schema is public"
    assert revoked.status_code == (404 if query == "?format=bogus" else 401)
    assert revoked["Content-Type"] == "application/json"
    assert set(revoked.json()["error"]) == {"code", "message", "details"}
