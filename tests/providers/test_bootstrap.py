"""Providers and routing settings from the environment on first run (``OPENAI_API_KEY``,
``GROK_API_KEY``, … and ours).

``providers_bootstrap_from_env`` applies each value once: running it again changes nothing, an
operator's later edit stands until the environment's value itself changes, and a bad value is an
error naming its variable with nothing applied. ``runplatform`` runs it (the last test starts the
real platform with ``OPENAI_API_KEY`` set and calls the provider it made through ``/v1``).
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from apps.core.crypto import decrypt
from apps.core.models import AppliedSetting
from apps.providers.bootstrap import ENV_VARIABLES, BootstrapError, providers_bootstrap_from_env
from apps.providers.models import LlmModel, Provider, ProviderKind, RoutingSettings
from apps.providers.services import provider_delete, provider_update, routing_settings_update
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.django_db

OPENAI_KEY = "sk-env-bootstrap-secret-0001"
GROK_KEY = "xai-env-bootstrap-secret-0002"

# An earlier version's .env recipe, as a user would copy it.
SEED_RECIPE = {
    "OPENAI_ENABLED": "true",
    "OPENAI_API_KEY": OPENAI_KEY,
    "OPENAI_DEFAULT_MODEL": "gpt-4-turbo-preview",
    "GROK_ENABLED": "false",
    "GROK_API_KEY": GROK_KEY,
    "GROK_BASE_URL": "https://api.x.ai/v1",
    "OLLAMA_ENABLED": "true",
    "OLLAMA_HOST": "http://ollama:11434",
    "OLLAMA_DEFAULT_MODEL": "llama2",
    "LLM_DEFAULT_PROVIDER": "openai",
    "LLM_ENABLE_FALLBACK": "true",
    "LLM_LOAD_BALANCING": "round-robin",
}


def snapshot() -> dict:
    routing = RoutingSettings.objects.first()
    return {
        "providers": sorted(
            Provider.objects.values_list(
                "name", "kind", "base_url", "enabled", "api_key_encrypted", "updated_at"
            )
        ),
        "models": sorted(LlmModel.objects.values_list("provider__name", "name", "updated_at")),
        "routing": routing
        and (
            routing.strategy,
            routing.fallback_enabled,
            routing.default_provider_id,
            routing.updated_at,
        ),
        "applied": sorted(AppliedSetting.objects.values_list("name", "digest")),
    }


def test_the_seed_recipe_makes_its_providers_and_settings_and_a_second_run_changes_nothing():
    first = providers_bootstrap_from_env(environ=SEED_RECIPE)

    providers = {provider.name: provider for provider in Provider.objects.all()}
    assert set(providers) == {"openai", "xai", "ollama"}
    assert providers["openai"].kind == ProviderKind.OPENAI and providers["openai"].enabled
    assert providers["xai"].kind == ProviderKind.XAI and not providers["xai"].enabled
    assert providers["xai"].base_url == "https://api.x.ai/v1"
    assert providers["ollama"].kind == ProviderKind.OLLAMA
    assert providers["ollama"].base_url == "http://ollama:11434/v1"
    assert not providers["ollama"].has_api_key
    # Keys are stored encrypted, through the same service as the API's.
    for name, key in (("openai", OPENAI_KEY), ("xai", GROK_KEY)):
        assert key not in providers[name].api_key_encrypted
        assert decrypt(providers[name].api_key_encrypted) == key
    assert sorted(LlmModel.objects.values_list("provider__name", "name")) == [
        ("ollama", "llama2"),
        ("openai", "gpt-4-turbo-preview"),
    ]
    routing = RoutingSettings.objects.get()
    assert routing.strategy == "round-robin" and routing.fallback_enabled
    assert routing.default_provider == providers["openai"]
    assert "provider openai: created, model gpt-4-turbo-preview created" in first.lines
    # No value is kept in the clear, only digests.
    assert all(OPENAI_KEY not in digest for _, digest in snapshot()["applied"])

    before = snapshot()
    second = providers_bootstrap_from_env(environ=SEED_RECIPE)

    assert snapshot() == before  # nothing duplicated, nothing even saved again
    assert second.lines == [
        "provider openai: unchanged",
        "provider xai: unchanged",
        "provider ollama: unchanged",
        "routing settings: unchanged",
    ]


def test_an_operators_edits_stand_until_the_environment_value_changes():
    environ = {"OPENAI_API_KEY": OPENAI_KEY, "LLM_LOAD_BALANCING": "round-robin"}
    providers_bootstrap_from_env(environ=environ)
    openai = Provider.objects.get(name="openai")
    provider_update(provider=openai, api_key="sk-set-by-an-operator", enabled=False)
    routing_settings_update(strategy="weighted")

    providers_bootstrap_from_env(environ=environ)  # a restart with the same environment

    openai.refresh_from_db()
    assert decrypt(openai.api_key_encrypted) == "sk-set-by-an-operator" and not openai.enabled
    assert RoutingSettings.objects.get().strategy == "weighted"

    report = providers_bootstrap_from_env(
        environ={"OPENAI_API_KEY": "sk-rotated-0003", "LLM_LOAD_BALANCING": "least_latency"}
    )

    openai.refresh_from_db()
    assert decrypt(openai.api_key_encrypted) == "sk-rotated-0003"
    assert not openai.enabled  # no variable set it: the operator's value stays
    assert RoutingSettings.objects.get().strategy == "least-latency"
    assert report.lines == [
        "provider openai: api key set",
        "routing settings: strategy = least-latency",
    ]


def test_a_new_base_url_takes_the_environments_key_along():
    providers_bootstrap_from_env(environ={"OPENAI_API_KEY": OPENAI_KEY})
    providers_bootstrap_from_env(
        environ={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "https://proxy.example/v1/"}
    )
    openai = Provider.objects.get(name="openai")
    assert openai.base_url == "https://proxy.example/v1"
    assert decrypt(openai.api_key_encrypted) == OPENAI_KEY


def test_a_provider_deleted_by_an_operator_comes_back_only_with_a_new_key():
    providers_bootstrap_from_env(environ={"XAI_API_KEY": GROK_KEY})
    provider_delete(provider=Provider.objects.get(name="xai"))

    report = providers_bootstrap_from_env(environ={"XAI_API_KEY": GROK_KEY})
    assert not Provider.objects.filter(name="xai").exists()
    assert report.lines == ["provider xai: deleted since it was created here; left deleted"]

    providers_bootstrap_from_env(environ={"GROK_API_KEY": "xai-new-key-0004"})
    assert decrypt(Provider.objects.get(name="xai").api_key_encrypted) == "xai-new-key-0004"


def test_removing_a_variable_changes_nothing_and_setting_it_again_applies_it():
    providers_bootstrap_from_env(environ={"LLM_ENABLE_FALLBACK": "false"})
    routing_settings_update(fallback_enabled=True)
    providers_bootstrap_from_env(environ={})
    assert RoutingSettings.objects.get().fallback_enabled

    providers_bootstrap_from_env(environ={"LLM_ENABLE_FALLBACK": "false"})
    assert not RoutingSettings.objects.get().fallback_enabled


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ollama", "http://ollama:11434/v1"),
        ("127.0.0.1:11500", "http://127.0.0.1:11500/v1"),
        ("https://gpu.example", "https://gpu.example/v1"),
        ("http://[::1]:11434/v1/", "http://[::1]:11434/v1"),
    ],
)
def test_ollama_host_follows_ollamas_own_convention(value, expected):
    providers_bootstrap_from_env(environ={"OLLAMA_URL": value})
    assert Provider.objects.get(name="ollama").base_url == expected


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"LLM_LOAD_BALANCING": "fastest"}, "LLM_LOAD_BALANCING"),
        ({"LLM_ENABLE_FALLBACK": "maybe"}, "LLM_ENABLE_FALLBACK"),
        ({"GROK_API_KEY": GROK_KEY, "GROK_ENABLED": "sometimes"}, "GROK_ENABLED"),
        ({"LLM_DEFAULT_PROVIDER": "anthropic"}, "LLM_DEFAULT_PROVIDER"),
        ({"OLLAMA_HOST": "ftp://ollama"}, "OLLAMA_HOST"),
        ({"XAI_API_KEY": "xai-line\nbreak"}, "XAI_API_KEY"),
        ({"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "not a url"}, "OPENAI_BASE_URL"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable_and_nothing_is_applied(environ, variable):
    with pytest.raises(BootstrapError) as raised:
        providers_bootstrap_from_env(environ={"OPENAI_API_KEY": OPENAI_KEY, **environ})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable}: ")
    assert OPENAI_KEY not in str(raised.value)
    assert not Provider.objects.exists() and not AppliedSetting.objects.exists()


def test_the_command_says_what_it_did_without_the_key(monkeypatch):
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("LLM_LOAD_BALANCING", "random")
    out = io.StringIO()
    call_command("bootstrap_providers", stdout=out)
    assert out.getvalue().splitlines() == [
        "Environment: provider openai: created",
        "Environment: routing settings: strategy = random",
    ]

    monkeypatch.setenv("LLM_LOAD_BALANCING", "fastest")
    with pytest.raises(Exception, match="LLM_LOAD_BALANCING: 'fastest' is not a strategy"):
        call_command("bootstrap_providers", stdout=out)


# --- make run, for real ----------------------------------------------------------------------


@pytest.fixture
def platform_with_openai(tmp_path) -> Iterator[tuple]:
    from tests.core.test_runplatform import Platform

    upstream = FakeUpstream(name="bootstrap").start()
    platform = Platform(tmp_path / "var")
    platform.server.env |= {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": upstream.base_url,
        "OPENAI_DEFAULT_MODEL": "fake-model",
        "LLM_LOAD_BALANCING": "round-robin",
    }
    try:
        yield platform.start(), upstream
    finally:
        platform.stop()
        upstream.stop()


def manage(platform, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=platform.server.env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return result.stdout


@pytest.mark.slow
def test_make_run_with_openai_api_key_set_gives_a_working_openai_provider(platform_with_openai):
    platform, upstream = platform_with_openai
    output = platform.output()
    assert "Environment: provider openai: created, model fake-model created" in output

    script = (
        "from apps.providers.models import Provider;"
        "from apps.core.crypto import decrypt;"
        "p = Provider.objects.get(name='openai');"
        f"print(p.kind, p.base_url, p.api_key_encrypted != {OPENAI_KEY!r},"
        f" decrypt(p.api_key_encrypted) == {OPENAI_KEY!r})"
    )
    assert manage(platform, "shell", "-v", "0", "-c", script).split() == [
        "openai",
        upstream.base_url,
        "True",
        "True",
    ]
    key = manage(platform, "create_api_key", "admin", "--name", "t").strip().splitlines()[-1]
    answer = httpx.post(
        f"{platform.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"].startswith("Hello from bootstrap")
    # The key went to the provider and nowhere else: not the output (logs included), not a
    # file in var/ (the database holds it encrypted, Redis never sees it).
    assert upstream.stats()["last_request"]["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert OPENAI_KEY not in platform.output()
    files = [path for path in platform.var_dir.rglob("*") if path.is_file()]
    assert any(path.name == "db.sqlite3" for path in files)
    for path in files:
        assert OPENAI_KEY.encode() not in path.read_bytes(), path
